"""Which neurons (channels) to visualise: a user list, the top-k most relevant channels per class, a fixed
random sample per layer, and polysemantic neurons split into k-means clusters (VITAL supplementary §1.1,
§2.1: 90 ResNet50 neurons; Fig. 22).

Relevance is pluggable (``[targets.neuron_settings] relevance``): any attribution method of
:data:`atlas.relevance.ATTRIBUTIONS`, summed over positions per channel
(:func:`atlas.relevance.channel_attribution`) - ``lrp`` (the default) or ``act_x_grad``, activation x
gradient of the class logit.

Selection runs when the plan is made (targets must be known then), so asking for top-k or random neurons
makes planning load the model once; results are cached in the store (stages ``neuron_relevance`` and
``layer_channels``), so later plans and the site read them without a model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..config import NeuronConfig, neuron_config, stable_hash
from ..models.user import model_key
from ..errors import AtlasError
from ..models.handle import ModelHandle, channel_count
from .layers import neuron_layer

class PlanResources:
    """The store, pool and model for selections made at plan time, each opened only when needed."""

    def __init__(self, cfg, model: str):
        self.cfg, self.model_name = cfg, model

    @cached_property
    def store(self):
        from ..pipeline.store import Store

        return Store(self.cfg.store)

    @cached_property
    def pool(self):
        from ..data import open_model_pool

        return open_model_pool(self.cfg.data.pool, self.model_name)

    @cached_property
    def model(self) -> ModelHandle:
        from ..models import load_model
        from ..pipeline.runner import pick_device

        return load_model(self.model_name, device=pick_device(self.cfg.device), download=self.cfg.download)


def layer_channels(res: PlanResources, layer: str) -> int:
    """Number of channels of ``layer`` (stage ``layer_channels``), from the architecture alone: no weights
    are needed, so ``atlas plan`` works for models whose weights are not here."""
    from ..models.zoo import layer_width

    def compute():
        return {"channels.json": json.dumps({"channels": layer_width(res.model_name, layer)}).encode()}, {}

    d = res.store.cached_stage("layer_channels", {"model": res.model_name, "layer": layer, "v": 2,
                                                  **model_key(res.model_name)}, compute)
    return int(json.loads((d / "channels.json").read_bytes())["channels"])


def _relevance_key(res: PlanResources, class_id: int, layer: str, ncfg: NeuronConfig) -> dict:
    return {"model": res.model_name, "class": int(class_id), "layer": layer, "relevance": ncfg.relevance,
            "images": ncfg.relevance_images, "pool": res.pool.fingerprint(), "v": 1, **model_key(res.model_name)}


def class_relevance(res: PlanResources, class_id: int, layer: str, ncfg: NeuronConfig) -> np.ndarray:
    """Mean relevance (C,) of every channel of ``layer`` for ``class_id`` over its images (cached)."""
    from ..relevance import ATTRIBUTIONS, channel_attribution  # zennit loads only when relevance is asked for

    ATTRIBUTIONS.get(ncfg.relevance)
    key = _relevance_key(res, class_id, layer, ncfg)

    def compute():
        m = res.model
        x = res.pool.reference_images(class_id, ncfg.relevance_images, m.input_size, seed=ncfg.seed,
                                      allow_fewer=True)
        r = channel_attribution(ncfg.relevance, m, x, [class_id] * x.shape[0], layer).mean(0)
        return {"relevance.json": json.dumps([float(v) for v in r]).encode()}, {}

    d = res.store.cached_stage("neuron_relevance", key, compute)
    return np.asarray(json.loads((d / "relevance.json").read_bytes()))


def random_channels(count: int, n: int, model: str, layer: str, seed: int = 0) -> List[int]:
    """A fixed random sample of ``n`` of the ``count`` channels (the same for the same model and layer)."""
    rng = np.random.default_rng(int(stable_hash([model, layer, seed], length=15), 16))
    return sorted(int(c) for c in rng.choice(count, size=min(n, count), replace=False))


@dataclass
class Selection:
    """Selected neurons of one model in order, each with why it was chosen."""

    reasons: Dict[Tuple[str, int], List[str]] = field(default_factory=dict)
    relevance: Dict[Tuple[str, int], Dict[int, float]] = field(default_factory=dict)

    def add(self, layer: str, channel: int, reason: str) -> None:
        self.reasons.setdefault((layer, int(channel)), []).append(reason)


def select_neurons(cfg, model: str, classes: List[int], res: PlanResources | None = None) -> Selection:
    """Listed, top-k relevant per class, random-sample and polysemantic neurons of ``model``."""
    t, ncfg = cfg.targets, neuron_config(cfg)
    res = res or PlanResources(cfg, model)
    sel = Selection()
    for layer, ch in t.neurons:
        sel.add(layer, ch, "listed")
    if t.top_neurons or t.random_neurons:
        layer = neuron_layer(cfg, model)
        if t.top_neurons:
            from ..progress import stage
            from ..relevance import ATTRIBUTIONS

            ATTRIBUTIONS.get(ncfg.relevance)  # an unknown name is an error before anything runs
            todo = sum(res.store.get_stage("neuron_relevance", stable_hash(_relevance_key(res, c, layer, ncfg),
                                                                             length=20)) is None for c in classes)
            with stage(f"relevance ({ncfg.relevance}) · {model}", todo, unit="class") as bar:
                for c in classes:
                    rel = class_relevance(res, c, layer, ncfg)
                    bar.update(1)
                    for rank, ch in enumerate(np.argsort(-rel, kind="stable")[: t.top_neurons]):
                        sel.add(layer, int(ch), f"top-{rank + 1} relevant for class {c}")
                        sel.relevance.setdefault((layer, int(ch)), {})[c] = float(rel[ch])
        if t.random_neurons:
            count = layer_channels(res, layer)
            for ch in random_channels(count, t.random_neurons, model, layer, ncfg.seed):
                sel.add(layer, ch, "random sample")
    for layer, ch in ncfg.polysemantic:
        sel.add(layer, ch, f"polysemantic: {ncfg.clusters} k-means clusters")
    return sel


def check_channels(model, layer: str, channels) -> None:
    """An unknown layer or a channel beyond the layer's size is a one-line error."""
    size = model.input_size
    with torch.no_grad():
        count = channel_count(model.activations(torch.zeros(1, 3, size, size, device=model.device), [layer])[layer])
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise AtlasError(f"neuron {bad[0]} out of range for layer {layer} of {model.name}: "
                         f"valid channels are 0-{count - 1}")
