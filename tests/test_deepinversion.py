"""DeepInversion on the real EfficientNet-Lite0: the loss and the BatchNorm term fall and the target's
probability rises; batches of any size (1 included); the multi-resolution variant; models without
BatchNorm skipped in the plan (by name) or recorded as failed at run time (with the reason)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from atlas.config import DEMO_CLASSES, DataConfig, PRESETS
from atlas.data import open_pool
from atlas.errors import AtlasError
from atlas.methods import METHODS, RunContext
from atlas.pipeline import Store, make_plan
from atlas.pipeline.jobs import Job
from atlas.pipeline.runner import Runner, batches
from atlas.targets import Target
from helpers import quick_config


@pytest.fixture(scope="module")
def ctx(lite0):
    return RunContext(model=lite0, data=DataConfig(spectrum_images=8), cache_dir=None,
                      pool_factory=lambda: open_pool("bundled"))


def test_loss_and_bn_term_fall_and_target_probability_rises(ctx):
    method = METHODS.get("deepinversion")
    cfg = method.config({"steps": 16, "batch_size": 3, "warmup": 2, "lr": 0.25})
    targets = [Target.of_class(c) for c in (285, 967, 665)]
    vis = method.run(ctx, cfg, targets, [1, 2, 3])
    assert len(vis) == 3
    for v in vis:
        s = v.scores
        assert v.image.shape == (224, 224, 3) and 0 <= v.image.min() and v.image.max() <= 1
        assert np.mean(v.history[-3:]) > np.mean(v.history[:3]) + 10  # score = -loss: the loss falls
        assert s["bn_end"] < 0.7 * s["bn_start"]
        # 16 steps: the BN term dominates the loss; the class logit rises (by ~1.5 here), p five-fold or more
        assert s["prob_end"] > 3 * s["prob_start"] and s["logit_end"] > s["logit_start"] + 1
        assert v.info["batch"] == 3 and v.info["batch_classes"] == [285, 967, 665]
    assert np.abs(vis[0].image - vis[1].image).mean() > 0.02


def test_batch_of_one_and_multi_resolution(ctx):
    one = METHODS.get("deepinversion")
    v = one.run(ctx, one.config({"steps": 10, "batch_size": 1, "warmup": 1, "lr": 0.25, "image_size": 96}),
                [Target.of_class(872)], [5])
    assert len(v) == 1 and v[0].image.shape == (96, 96, 3)
    assert v[0].scores["logit_end"] > v[0].scores["logit_start"] + 1
    ms = METHODS.get("deepinversion_ms")
    assert ms.config().low_res_steps == 2000 and ms.config().steps == 1000  # reference setting 0
    cfg = ms.config({"low_res_steps": 6, "steps": 4, "batch_size": 2, "warmup": 1, "image_size": 96})
    out = ms.run(ctx, cfg, [Target.of_class(285), Target.of_class(967)], [1, 2])
    assert len(out[0].history) == 10 and out[0].image.shape == (96, 96, 3)
    assert out[0].info["resolution_steps"] == {"48px": 6, "96px": 4}
    assert out[0].info["kept"].startswith("best image: step ") and out[0].info["kept"].endswith(" of 4 (lowest loss of the batch)")
    assert out[0].scores["bn_end"] < out[0].scores["bn_start"]


def test_settings_are_checked():
    with pytest.raises(AtlasError, match="bad settings for method deepinversion: batch_size must be a positive"):
        METHODS.get("deepinversion").config({"batch_size": 0})
    with pytest.raises(AtlasError, match="unknown setting of method deepinversion: 'r_feat'"):
        METHODS.get("deepinversion").config({"r_feat": 0.1})


def test_models_without_batchnorm_are_skipped_in_the_plan(tmp_path):
    cfg = quick_config(tmp_path, classes=(285, 967), methods=("deepinversion", "plugin_inversion"),
                       models=["efficientnet_lite0", "vit_l_16"], settings={})
    plan = make_plan(cfg)
    methods = {(j.model, j.method) for j in plan.jobs}
    assert methods == {("efficientnet_lite0", "deepinversion"), ("efficientnet_lite0", "plugin_inversion"),
                       ("vit_l_16", "plugin_inversion")}
    assert {(s.model, s.method) for s in plan.skipped} == {("vit_l_16", "deepinversion")}
    assert plan.skipped[0].reason == ("deepinversion needs BatchNorm layers (it matches their running "
                                      "statistics); vit_l_16 has none")


def test_model_without_batchnorm_recorded_as_failed_at_run_time(tiny, tmp_path):
    """A model the planner could not inspect: the run raises Unsupported, the runner records each job of the
    batch as failed with the reason, and the build goes on."""
    method = METHODS.get("deepinversion")
    cfg = method.config({"steps": 2, "batch_size": 2, "image_size": 32})
    jobs = [Job(model="tiny", method="deepinversion", target=Target.of_class(c), seed=0, config=cfg,
                version=method.version) for c in (1, 2)]
    store = Store(tmp_path / "store")
    runner = Runner(quick_config(tmp_path, methods=("deepinversion",), settings={}), store, progress=False)
    runner._contexts["tiny"] = RunContext(model=tiny, data=DataConfig(), cache_dir=None, pool_factory=lambda: None)
    report = runner.run(jobs)
    assert report.done == 0 and len(report.failed) == 2
    assert "needs BatchNorm layers" in store.failure(jobs[0].key)["reason"]


def test_runner_uses_the_method_batch_size(lite0, tmp_path):
    """DeepInversion's batch comes from its own settings (part of the job key), not the global batch_size."""
    cfg = quick_config(tmp_path, classes=(285, 967, 665), methods=("deepinversion",), batch_size=1,
                       settings={"deepinversion": {"steps": 2, "batch_size": 3, "image_size": 64, "warmup": 0}})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    runner = Runner(cfg, store, progress=False)
    runner._contexts["efficientnet_lite0"] = RunContext(model=lite0, data=cfg.data, cache_dir=None,
                                                        pool_factory=lambda: None)
    report = runner.run(plan.jobs)
    assert report.done == 3
    for job in plan.jobs:
        assert store.meta(job.key)["info"]["batch"] == 3
    other = make_plan(quick_config(tmp_path, classes=(285, 967, 665), methods=("deepinversion",), batch_size=1,
                                   settings={"deepinversion": {"steps": 2, "batch_size": 1, "image_size": 64,
                                                               "warmup": 0}}))
    assert {j.key for j in other.jobs}.isdisjoint(j.key for j in plan.jobs)


def test_demo_optimises_its_classes_in_one_batch():
    cfg = replace(PRESETS.get("demo")(), left_out=())  # the demo leaves it out; its settings batch the classes
    plan = make_plan(cfg)
    method = METHODS.get("deepinversion")
    jobs = [j for j in plan.jobs if j.method == "deepinversion"]
    groups = batches(jobs, method.batch_size(jobs[0].config, cfg.batch_size))
    assert [len(g) for g in groups] == [len(DEMO_CLASSES)]
    assert {"deepinversion", "deepinversion_ms", "plugin_inversion"} <= set(cfg.methods)
    assert {"deepinversion", "deepinversion_ms", "plugin_inversion"} <= set(PRESETS.get("paper")().methods)


def test_hooks_removed_after_a_run(ctx):
    method = METHODS.get("deepinversion")
    method.run(ctx, method.config({"steps": 1, "batch_size": 1, "image_size": 64, "warmup": 0}),
               [Target.of_class(1)], [0])
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in ctx.model.module.modules())
    assert torch.is_grad_enabled()
