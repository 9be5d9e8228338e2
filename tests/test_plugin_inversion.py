"""Plug-In Inversion on the real EfficientNet-Lite0: the target's probability rises through the augmentation
ensemble, the canvas grows stage by stage, and the ensemble size follows VITAL's Table 1 per model."""
import numpy as np
import pytest
import torch

from atlas.config import DataConfig
from atlas.data import open_pool
from atlas.errors import AtlasError
from atlas.methods import METHODS, RunContext
from atlas.methods.plugin_inversion import ensemble_size
from atlas.optim import TargetRNG
from atlas.targets import Target


@pytest.fixture(scope="module")
def ctx(lite0):
    return RunContext(model=lite0, data=DataConfig(spectrum_images=8), cache_dir=None,
                      pool_factory=lambda: open_pool("bundled"))


def test_target_probability_rises(ctx):
    method = METHODS.get("plugin_inversion")
    cfg = method.config({"steps": 32, "stages": 2, "views": 2, "grow": "zoom"})
    assert cfg.canvas_sides() == [112, 224] and cfg.stage_steps() == [16, 16]
    vis = method.run(ctx, cfg, [Target.of_class(872), Target.of_class(985)], [7, 8])
    for v in vis:
        s = v.scores
        assert v.image.shape == (224, 224, 3) and v.alpha.shape == (224, 224)
        assert 0 <= v.image.min() and v.image.max() <= 1
        assert len(v.history) == 32
        assert np.mean(v.history[-3:]) > np.mean(v.history[:3])  # score = -CE rises
        assert s["prob_end"] > s["prob_start"] + 0.1 and s["logit_end"] > s["logit_start"] + 2
        assert v.info["views"] == 2 and v.info["canvas_sides"] == [112, 224]
    assert np.abs(vis[0].image - vis[1].image).mean() > 0.02


@pytest.mark.parametrize("grow", ["center", "zoom"])
def test_canvas_grows_around_the_centre_or_by_zooming(ctx, grow):
    """With lr 0 nothing moves, so the geometry shows: "center" keeps stage 1's image at the centre of new
    noise; "zoom" upsamples it to the full canvas."""
    method = METHODS.get("plugin_inversion")
    cfg = method.config({"steps": 2, "stages": 2, "views": 1, "image_size": 64, "lr": 0.0, "grow": grow})
    final = method.run(ctx, cfg, [Target.of_class(1)], [3])[0].image
    first = TargetRNG([3]).rand(1, 3, 32, 32)  # the stage-1 canvas: the target's first draw
    if grow == "center":
        assert np.allclose(final[16:48, 16:48], first[0].permute(1, 2, 0).numpy(), atol=1e-6)
        assert np.abs(final[:16] - 0.5).mean() > 0.15  # fresh uniform noise around it
    else:
        up = torch.nn.functional.interpolate(first, size=(64, 64), mode="bilinear", align_corners=False)
        assert np.allclose(final, up[0].permute(1, 2, 0).numpy(), atol=1e-6)


def test_targets_are_independent_of_their_batch(ctx):
    method = METHODS.get("plugin_inversion")
    cfg = method.config({"steps": 2, "stages": 2, "views": 2, "image_size": 64})
    alone = method.run(ctx, cfg, [Target.of_class(285)], [5])[0]
    batched = method.run(ctx, cfg, [Target.of_class(967), Target.of_class(285)], [4, 5])[1]
    assert np.abs(alone.image - batched.image).max() < 1e-3


def test_ensemble_size_per_model_and_settings_checked():
    cfg = METHODS.get("plugin_inversion").config()
    assert ensemble_size(cfg, "resnet50") == 21 and ensemble_size(cfg, "vit_l_16") == 2
    assert ensemble_size(cfg, "efficientnet_lite0") == 8
    assert ensemble_size(METHODS.get("plugin_inversion").config({"views": 3}), "resnet50") == 3
    with pytest.raises(AtlasError, match="bad settings for method plugin_inversion: need stages >= 1"):
        METHODS.get("plugin_inversion").config({"steps": 2, "stages": 4})
