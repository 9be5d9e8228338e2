"""The pieces of the image-seeded methods on the tiny model and synthetic data: seeded parameterisation,
paired crops, depth layer, attributions, masks, Otsu, the fractal noise pyramid, the lambda search,
path-similarity metrics, image targets and their slugs."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from atlas.config import config_from_mapping
from atlas.errors import AtlasError
from atlas.optim import TargetRNG
from atlas.optim.param import frequency_radius
from atlas.pipeline import make_plan
from atlas.data.seed_images import bundled_ids, seed_image_ids
from atlas.methods import image_measures as metrics
from atlas.methods.accentuation.lambda_search import LambdaChoice, bisect_lambda
from atlas.methods.accentuation.optimisation import accentuate
from atlas.models.layer_order import depth_layer
from atlas.optim import fractal_noise as noise
from atlas.optim import masks
from atlas.optim.objectives import channel_distance
from atlas.optim.param import FourierImage
from atlas.optim.transforms import PairedCrops, affine_views
from atlas.path_similarity import summarize_path_similarity
from atlas.relevance.attributions import ATTRIBUTIONS, as_maps, aumann_shapley, gradcam
from atlas.targets import Target
from conftest import tiny_handle


def smooth_images(k=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(k, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
    return x.clamp(0, 1)


# ------------------------------------------------------------------------------ parameterisation
@pytest.mark.parametrize("size", [32, 33, 224])
def test_seeded_fourier_reproduces_the_seed_at_step_0(size):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    x[0, :, :4] = 0.0  # saturated pixels survive the logit's clipping
    x[1, :, -4:] = 1.0
    assert (FourierImage.seeded(x)() - x).abs().max() < 1e-3


def test_accentuation_loop_starts_at_the_seed(tiny):
    x = smooth_images()
    out = accentuate(tiny, x, [3, 4], "relu1", lam=1.0, steps=3, rng=TargetRNG([1, 2]), crops=2)
    assert (out.result.initial - x).abs().max() < 1e-3
    assert (out.result.images - x).abs().max() > 1e-3  # and then it moves


def test_mask_channel_starts_at_the_requested_mean():
    f = FourierImage.noise(TargetRNG([0, 1]), 48).with_mask(torch.tensor([0.15, 0.8]))
    assert torch.allclose(f.mask().mean((1, 2, 3)), torch.tensor([0.15, 0.8]), atol=1e-4)
    assert f.raw().shape == (2, 4, 48, 48)


# ------------------------------------------------------------------------------ transforms
def test_paired_crops_cut_the_same_boxes_from_image_and_seed():
    x = smooth_images(2, 40)
    crops = PairedCrops(x, n=3, out_size=24, noise=0.02)
    views = crops(x.clone(), TargetRNG([5, 6]))
    assert views.shape == (6, 3, 24, 24)
    assert torch.allclose(views, crops.seed_views, atol=1e-6)  # same crops and same noise
    other = crops(torch.zeros_like(x), TargetRNG([5, 6]))
    assert not torch.allclose(other, crops.seed_views)


def test_paired_crops_are_per_target():
    x = smooth_images(2, 40)
    a = PairedCrops(x, n=2, out_size=16, noise=0.0)(x, TargetRNG([5, 6]))
    b = PairedCrops(x[1:], n=2, out_size=16, noise=0.0)(x[1:], TargetRNG([6]))
    assert torch.allclose(a[2:], b, atol=1e-6)


def test_affine_views_identity_without_randomness_and_reflection_otherwise():
    x = smooth_images(1, 32)
    ident = affine_views(2, jitter1=0, scale=(1.0, 1.0), rotate=0, shear=0, jitter2=0)(x, TargetRNG([0]))
    assert ident.shape == (2, 3, 32, 32) and torch.allclose(ident[0], x[0], atol=1e-5)
    moved = affine_views(4)(x, TargetRNG([0]))
    assert moved.shape == (4, 3, 32, 32) and (moved - x).abs().mean() > 1e-3
    assert 0 <= moved.min() and moved.max() <= 1  # reflection padding: no black borders


# ------------------------------------------------------------------------------ layers
class Reused(nn.Module):
    """A block that calls one ReLU twice (like torchvision's Bottleneck)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.relu(x)))


def test_depth_layer_counts_activation_calls_and_avoids_reused_modules(tiny):
    assert depth_layer(tiny, 0.0) == "relu1" and depth_layer(tiny, 1.0) == "relu2"
    h = tiny_handle()
    h.module.conv2 = nn.Sequential(Reused(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
    h.__post_init__()
    name = depth_layer(h, 0.5)
    assert name == "conv2.0"  # conv2.0.relu runs twice: its block is used instead
    with pytest.raises(ValueError):
        depth_layer(h, 1.5)


def test_channel_distance():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[1, :, 0, 0] = 2.0  # one position differs by ||(2,2,2)|| = 2 sqrt 3
    d = channel_distance(a, b)
    assert d[0] < 1e-5 and abs(float(d[1]) - 2 * math.sqrt(3) / 16) < 1e-4
    assert channel_distance(torch.zeros(1, 5, 7), torch.ones(1, 5, 7)).shape == (1,)


# ------------------------------------------------------------------------------ attributions
def zero_at_layer_logits(model, x, layer):
    h = model.module_at(layer).register_forward_hook(lambda m, a, o: torch.zeros_like(o))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        h.remove()


def logits_with(model, x, layer, acts):
    h = model.module_at(layer).register_forward_hook(lambda m, a, o: acts)
    try:
        with torch.no_grad():
            return model(x)
    finally:
        h.remove()


def test_aumann_shapley_is_complete(tiny):
    x = smooth_images(2)
    classes = [1, 7]
    attr = aumann_shapley(tiny, x, classes, "relu1", steps=64)
    with torch.no_grad():
        full = tiny(x)
    base = zero_at_layer_logits(tiny, x, "relu1")
    for i, c in enumerate(classes):
        gap = float(full[i, c] - base[i, c])
        assert abs(float(attr[i].sum()) - gap) < 0.02 * abs(gap) + 1e-3
    assert attr.shape == (2, 8, 16, 16)
    assert not torch.allclose(attr[0], aumann_shapley(tiny, x, [2, 7], "relu1", steps=64)[0])


def test_output_targeted_baseline_drives_the_logit_toward_zero_and_starts_the_path(tiny):
    """Attribution visualization §3.1 (ref. [28], reference gen_AS_baseline.py): the baseline is a masked copy
    of the activations (0 <= b <= a) at which the class logit is nearer zero; the Aumann-Shapley values from
    it sum to F_c(a) - F_c(b); an image's baseline does not depend on its batch."""
    from atlas.relevance.attributions import output_targeted_baseline

    x = smooth_images(3)
    with torch.no_grad():
        full = tiny(x)
    classes = [int(c) for c in full.argmax(1)]  # positive logits to drive down
    base = output_targeted_baseline(tiny, x, classes, "relu2", (40, 60), seeds=[5, 6, 7])
    acts = tiny.activations(x, ["relu2"])["relu2"]
    assert base.shape == acts.shape and (base >= 0).all() and (base <= acts + 1e-6).all()
    at_base = logits_with(tiny, x, "relu2", base)
    attr = aumann_shapley(tiny, x, classes, "relu2", steps=64, baseline=base)
    for i, c in enumerate(classes):
        assert abs(float(at_base[i, c])) < 0.9 * abs(float(full[i, c]))
        gap = float(full[i, c] - at_base[i, c])
        assert abs(float(attr[i].sum()) - gap) < 0.02 * abs(gap) + 1e-3
    alone = output_targeted_baseline(tiny, x[1:2], classes[1:2], "relu2", (40, 60), seeds=[6])
    torch.testing.assert_close(alone, base[1:2], atol=1e-5, rtol=1e-4)


def test_gradcam_is_a_non_negative_map(tiny):
    cam = gradcam(tiny, smooth_images(2), [1, 2], "relu2")
    assert cam.shape == (2, 1, 8, 8) and cam.min() >= 0
    assert set(ATTRIBUTIONS.names()) >= {"aumann_shapley", "gradcam"}


# ------------------------------------------------------------------------------ masks and Otsu
def test_collective_normalisation_keeps_a_featureless_image_masked():
    strong = torch.zeros(16, 16)
    strong[4:12, 4:12] = 5.0
    weak = torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) * 0.1
    maps = torch.stack([strong, weak])
    norm = masks.collective_normalize(maps, (50, 99))
    assert norm[0, 8, 8] == 1.0 and norm[0, 0, 0] == 0.0
    assert norm[1].max() < 0.05  # per-image min-max would have stretched it to 1
    per_image = masks.collective_normalize(weak[None], (50, 99))
    assert per_image.max() == 1.0
    with pytest.raises(ValueError):
        masks.collective_normalize(maps, (90, 10))


def test_otsu_separates_two_modes_and_beta_is_a_fraction():
    g = torch.Generator().manual_seed(0)
    h = torch.cat([torch.randn(3000, generator=g) * 0.1, 4 + torch.randn(1000, generator=g) * 0.1])
    t = masks.otsu_threshold(h, bins=200)
    assert float(h[:3000].max()) < t < float(h[3000:].min())
    beta = masks.otsu_beta(h.view(40, 100))
    assert abs(beta - 0.25) < 0.01
    assert 0 < masks.otsu_beta(torch.zeros(8, 8)) < 1  # a flat map still gives a beta inside (0, 1)


# ------------------------------------------------------------------------------ fractal noise pyramid
def radial_slope(img: torch.Tensor) -> float:
    """Log-log slope of the radially averaged |FFT| (amplitude) of (N, S, S) images."""
    size = img.shape[-1]
    amp = torch.fft.rfft2(img).abs().mean(0)
    f = frequency_radius(size, size)
    keep = (f > 2.0 / size) & (f < 0.4)
    return float(np.polyfit(np.log(f[keep].numpy()), np.log(amp[keep].numpy()), 1)[0])


def test_each_pyramid_level_falls_off_with_its_slope():
    levels, size = 5, 128
    lin = noise.linear_pyramid(TargetRNG(list(range(6))), size, levels)
    assert lin.shape == (6, levels + 1, 3, size, size)
    stds = []
    for d in range(levels + 1):
        slope = radial_slope(lin[:, d].flatten(0, 1))
        assert abs(slope + noise.level_exponent(d, levels) / 2) < 0.12, (d, slope)
        stds.append(float(lin[:, d].std()))
    assert all(a > b for a, b in zip(stds, stds[1:]))  # progressively weaker
    assert noise.level_std(0, 5) == 0.2 and abs(noise.level_std(5, 5) - 0.15) < 1e-12


def test_compose_picks_the_level_from_the_mask():
    pyramid = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(1, 6, 3, 4, 4)
    x = torch.full((1, 3, 4, 4), 9.0)
    mask = torch.tensor([0.0, 0.17, 0.5, 0.99]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = noise.compose(x, mask, pyramid)[0, 0, 0]
    expect = [0 * 1 + 0.0, 0.17 * 9 + 0.83 * 1, 0.5 * 9 + 0.5 * 3, 0.99 * 9 + 0.01 * 5]
    assert torch.allclose(out, torch.tensor(expect), atol=1e-5)


def test_finishing_the_chosen_noise_equals_choosing_from_the_finished_pyramid():
    """Attribution visualization colours and squashes only the level each pixel takes (per-pixel maps
    commute with the per-pixel choice): the composite is the one of the whole finished pyramid."""
    lin = noise.linear_pyramid(TargetRNG([0, 1]), 32, 5)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    whole = noise.compose(x, mask, noise.fractal_pyramid(TargetRNG([0, 1]), 32, 5))  # the same draws, finished
    chosen = noise.compose(x, mask, lin, finish=noise.finish_noise)
    assert torch.allclose(whole, chosen, atol=1e-6)
    assert not torch.allclose(whole, noise.compose(x, mask, lin), atol=1e-2)  # the finish matters


# ------------------------------------------------------------------------------ lambda search
def test_bisection_finds_the_requested_point_of_the_sensitive_region():
    calls = []

    def distance(lam):  # a sigmoid in log10(lambda) between 10 (lam -> 0) and 1 (lam -> inf), centred at 1e2
        calls.append(lam)
        return 1 + 9 / (1 + (lam / 100.0) ** 1.5)

    choice = bisect_lambda(distance, fraction=0.5, iters=10)
    assert len(calls) == 12 and calls[0] == 1e-6 and calls[1] == 1e6
    assert abs(math.log10(choice.lam) - 2.0) < 0.05
    assert abs(choice.normalized - 0.5) < 0.02 and choice.d_max > choice.d_chosen > choice.d_min
    assert LambdaChoice.from_json(choice.to_json()) == choice
    with pytest.raises(ValueError):
        bisect_lambda(distance, fraction=1.5)


# ------------------------------------------------------------------------------ metrics
def test_path_similarity_excludes_the_seed_and_averages_pairs():
    g = torch.Generator().manual_seed(0)
    nat = {"l": torch.randn(3, 50, generator=g)}
    image = {"l": nat["l"][1:2] * 2 + 1}  # perfectly correlated with natural image 1 (its seed)
    out = metrics.path_similarity(image, {"l": nat["l"][1:2]}, nat, exclude=1)
    assert out["to_seed"][0] == pytest.approx(1.0)
    r = metrics.pearson_matrix(nat["l"], nat["l"])
    assert out["to_natural"][0] == pytest.approx(float((r[1, 0] + r[1, 2]) / 2))
    assert out["natural"][0] == pytest.approx(float((r[0, 1] + r[0, 2] + r[1, 2]) / 3))
    alone = metrics.path_similarity(image, image, {"l": nat["l"][1:2]}, exclude=0)
    assert alone["to_natural"] == [None] and alone["natural"] == [None]
    summary = summarize_path_similarity([out, out])
    assert summary["n"] == 2 and summary["to_seed"] == pytest.approx([1.0])


def test_visualization_correlation_and_consistency():
    r = torch.randn(4, 3, 3)
    assert metrics.visualization_correlation(2 * r + 1, r) == pytest.approx(1.0)
    logits = torch.arange(10.0)
    assert metrics.classification_consistency(logits, 5) and not metrics.classification_consistency(logits, 4)


# ------------------------------------------------------------------------------ targets and planning
def test_image_target_slugs_are_stable_and_distinct():
    own = Target.of_image("chelsea", 285)
    rival = Target.of_image("chelsea", 285, toward="rival")
    assert own.slug() == "image-0285-chelsea"  # unchanged by the new field
    assert rival.slug() == "image-0285.rival-chelsea"
    tricky = Target.of_image("rival-chelsea", 285)
    assert len({own.slug(), rival.slug(), tricky.slug()}) == 3
    assert Target.from_dict(rival.to_dict()) == rival and "toward" not in own.to_dict()


def test_seed_image_ids_need_no_images():
    assert bundled_ids(285, 3) == ["chelsea", "chelsea~1", "chelsea~2"]
    assert bundled_ids(665, 3) == ["motorcycle_left", "motorcycle_right", "motorcycle_left~1"]
    assert seed_image_ids("/no/such/folder", 1, 2) == ["@0", "@1"]
    with pytest.raises(AtlasError, match="no bundled photo shows class 1"):
        bundled_ids(1, 2)


def test_plan_has_each_image_toward_its_class_and_its_rival(tmp_path):
    cfg = config_from_mapping({"preset": "demo", "classes": [285, 665], "methods": ["accentuation", "maco"],
                               "targets": {"images": 2, "concepts": 0, "random_neurons": 0, "layers": []}, "store": str(tmp_path / "s")})
    plan = make_plan(cfg)
    acc = [j for j in plan.jobs if j.method == "accentuation"]
    assert len(acc) == 2 * 2 * 2 and all(j.target.kind == "image" for j in acc)
    assert {j.target.toward for j in acc} == {None, "rival"}
    assert {j.target.image for j in acc} == {"chelsea", "chelsea~1", "motorcycle_left", "motorcycle_right"}
    assert all(j.target.kind == "class" for j in plan.jobs if j.method == "maco")
    assert len({j.key for j in plan.jobs}) == len(plan.jobs) and not plan.skipped
    none = make_plan(config_from_mapping({"preset": "demo", "targets": {"images": 0}}))
    assert not [j for j in none.jobs if j.target.kind == "image"]
    folder = make_plan(config_from_mapping({"preset": "demo", "classes": [1], "data": {"pool": "/no/such"},
                                            "methods": ["attribution_vis"], "targets": {"images": 1}}))
    assert [j.target.image for j in folder.jobs] == ["@0"]  # planned offline, resolved when run
    assert [s.target.toward for s in folder.skipped] == ["rival"]  # attribution_vis: own class only
    assert "own class" in folder.skipped[0].reason


def test_bad_settings_are_one_line_errors():
    from atlas.methods import METHODS

    with pytest.raises(AtlasError, match="unknown attribution method 'gradcan'; did you mean 'gradcam'"):
        METHODS.get("accentuation").config({"mask_attribution": "gradcan"})
    with pytest.raises(AtlasError, match="beta must lie in"):
        METHODS.get("attribution_vis").config({"beta": 1.5})
    with pytest.raises(AtlasError, match="unknown init"):
        METHODS.get("attribution_vis").config({"init": "zeros"})


def test_gaussian_blur_keeps_mass_and_smooths():
    x = torch.zeros(1, 21, 21)
    x[0, 10, 10] = 1.0
    y = masks.gaussian_blur(x, 2.0)
    assert abs(float(y.sum()) - 1.0) < 1e-4 and float(y.max()) < 0.05 and int(y.argmax()) == 10 * 21 + 10
    assert torch.equal(masks.gaussian_blur(x, 0), x)


def test_token_activations_become_patch_grids():
    tokens = torch.arange(2 * 17 * 5, dtype=torch.float32).view(2, 17, 5)  # class token + 4 x 4 patches
    grid = as_maps(tokens)
    assert grid.shape == (2, 5, 4, 4) and torch.equal(grid[0, :, 0, 0], tokens[0, 1])
    assert as_maps(torch.zeros(1, 7, 3)).shape == (1, 3, 7, 1)
