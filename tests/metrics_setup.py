"""A tiny store for metric tests: two tiny ImageNet-sized classifiers registered as models (a fully
convolutional CNN at 64 px: fast, and top patches still exist), fake visualizations for two classes and a
neuron, no Inception or CLIP weights (empty caches)."""
from __future__ import annotations

import torch

from atlas.config import config_from_mapping
from atlas.models import MODELS
from atlas.models.classes import imagenet_classes
from atlas.models.handle import Block, ModelHandle
from atlas.pipeline import Store, make_plan
from conftest import TinyNet
from helpers import fake_visualization


def tiny64(name: str = "tiny64", noise: int = 0) -> ModelHandle:
    net = TinyNet(1000)
    if noise:
        g = torch.Generator().manual_seed(noise)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    names, wnids = imagenet_classes()
    return ModelHandle(name=name, family="test", module=net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                       input_size=64, class_names=names, wnids=wnids, blocks=(Block("relu1"), Block("relu2")),
                       penultimate="fc:in", concept_layer="relu2")


def register_tiny(monkeypatch) -> None:
    monkeypatch.setitem(MODELS._items, "tiny64", lambda download=False: tiny64())
    monkeypatch.setitem(MODELS._items, "tiny64_judge", lambda download=False: tiny64("tiny64_judge", noise=1))


def tiny_config(tmp_path, seeds=(0,), **metrics):
    m = {"judges": ["tiny64_judge"], "substitute": "tiny64", "real_images": 4, "control": 6, "fid_models": []}
    m.update(metrics)
    return config_from_mapping({
        "preset": "demo", "models": ["tiny64"], "classes": [285, 967], "methods": ["maco", "fourier"],
        "seeds": list(seeds),
        "store": str(tmp_path / "store"), "site": str(tmp_path / "site"),
        "settings": {x: {"steps": 2, "crops": 1} for x in ("maco", "fourier")},
        "targets": {"neurons": [["relu2", 3]]}, "metrics": m})


def tiny_build(tmp_path, monkeypatch, scores=None, seeds=(0,), **metrics):
    """(cfg, plan, store) with a fake visualization stored for every job; Inception and CLIP caches empty."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    register_tiny(monkeypatch)
    cfg = tiny_config(tmp_path, seeds, **metrics)
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        vis = fake_visualization(job, size=64)
        if scores:
            vis.scores.update(scores)
        store.put(job, vis)
    return cfg, plan, store
