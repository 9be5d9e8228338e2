"""Contracts over the registries (lucent's "the loss goes down in 5 steps", run as timm runs its tests over
``list_models()``): a method registered tomorrow is tested the day it is added - its paper, its place in the
paper presets, and a few steps on a tiny model for every kind of target it declares."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch
from torch import nn

import atlas.methods as methods_package
from atlas.app import FEATURES, install
from atlas.config import PRESETS, DataConfig
from atlas.data import open_pool
from atlas.methods import METHODS, Method, RunContext
from atlas.models.handle import Block, ModelHandle
from atlas.pipeline import make_plan
from atlas.targets import Target

#: Settings that keep a contract run to a few seconds; a method without an entry runs its defaults with
#: ``steps = 5`` (a new method adds an entry here only if it needs one to show progress in a few steps).
QUICK = {
    "maco": {"crops": 1}, "maco_hr": {"crops": 1, "image_size": 64}, "fourier": {"crops": 1},
    "fourier_hr": {"crops": 2, "image_size": 64}, "deepinversion": {"batch_size": 1, "warmup": 1},
    "deepinversion_ms": {"batch_size": 1, "warmup": 1, "low_res_steps": 3},
    "vital": {"warmup": 1, "references": 2, "allow_fewer": True, "patch": 16, "stride": 16},
    "accentuation": {"crops": 1, "lam": 1.0, "mask_images": 1, "natural_images": 2},
    "attribution_vis": {"views": 1, "attribution_steps": 2, "baseline_steps": [2, 2]},
}
#: One target per kind, on classes the bundled photos show (image targets need a photo of their class).
TARGETS = {"class": Target.of_class(285), "neuron": Target.of_neuron("act2", 3),
           "image": Target.of_image("chelsea", 285)}


class TinyBNNet(nn.Module):
    """Conv-BN-ReLU twice, pooled, 1000 logits: the smallest model every method applies to (DeepInversion
    matches BatchNorm statistics; the image methods explain ImageNet classes of the bundled photos)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1, self.bn1, self.act1 = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2, self.act2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 1000)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            for bn in (self.bn1, self.bn2):
                bn.running_var.uniform_(0.5, 1.5, generator=g)
                bn.running_mean.normal_(0.0, 0.2, generator=g)

    def forward(self, x):
        x = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        return self.fc(self.pool(x).flatten(1))


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from atlas.models.classes import imagenet_classes

    names, wnids = imagenet_classes()
    model = ModelHandle(name="tinybn", family="test", module=TinyBNNet(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                        input_size=32, class_names=names, wnids=wnids, blocks=(Block("act1"), Block("act2")),
                        penultimate="fc:in", concept_layer="act2")
    return RunContext(model=model, data=DataConfig(references=2, spectrum_images=4),
                      cache_dir=tmp_path_factory.mktemp("cache"), pool_factory=lambda: open_pool("bundled"))


def _kinds(name):
    return [k for k in METHODS.get(name).kinds if k in TARGETS]


@pytest.mark.parametrize("name", METHODS.names())
def test_method_declares_its_paper_and_runs_in_the_paper_presets(name):
    method = METHODS.get(name)
    assert method.title and method.summary and method.version
    assert method.bibtex.startswith("@") and f"{{{method.paper}," in method.bibtex, "a method cites its paper"
    assert dataclasses.is_dataclass(method.Config) and method.config() == method.config()
    for preset in ("paper", "lens"):
        assert name in PRESETS.get(preset)().methods
    assert method.config(method.paper_settings)  # the paper presets' settings are valid settings


@pytest.mark.parametrize("name, kind", [(n, k) for n in METHODS.names() for k in _kinds(n)])
def test_a_few_steps_improve_the_objective(ctx, name, kind):
    method = METHODS.get(name)
    target = TARGETS[kind]
    assert method.unsupported_reason(ctx.model.name, target) is None
    cfg = method.config({"steps": 5, **QUICK.get(name, {})})
    vis = method.run(ctx, cfg, [target], [7])
    assert len(vis) == 1 and vis[0].target == target
    v = vis[0]
    assert v.image.ndim == 3 and v.image.shape[-1] == 3 and np.isfinite(v.image).all()
    assert 0 <= v.image.min() and v.image.max() <= 1
    history = [h for h in v.history if h is not None]
    score_rose = v.scores.get("logit_end", 0) > v.scores.get("logit_start", 0)
    assert history[-1] > history[0] or score_rose, (history, v.scores)


def test_every_method_class_is_registered():
    """A Method subclass in :mod:`atlas.methods` that no module lists in ``VARIANTS`` would never run."""
    registered = {type(m) for m in (METHODS.get(n) for n in METHODS.names())}
    defined = set()
    for info in pkgutil.walk_packages(methods_package.__path__, methods_package.__name__ + "."):
        module = importlib.import_module(info.name)
        defined |= {obj for _, obj in inspect.getmembers(module, inspect.isclass)
                    if issubclass(obj, Method) and obj is not Method and obj.__module__ == module.__name__}
    assert defined and defined <= registered, sorted(c.__name__ for c in defined - registered)


def test_installing_twice_changes_nothing_and_every_feature_contributes():
    before = make_plan(PRESETS.get("demo")())
    install()
    after = make_plan(PRESETS.get("demo")())
    assert [j.key for j in before.jobs] == [j.key for j in after.jobs]
    assert len(FEATURES) >= 6 and {"class", "concept", "image"} <= {j.target.kind for j in after.jobs}
