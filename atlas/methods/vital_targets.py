"""Planning of VITAL's polysemantic-neuron targets (supplementary Fig. 22): with the vital setting
``clusters = k`` (k >= 2), every neuron listed in ``[targets] neurons`` also gets k cluster targets
(``Target.of_neuron(layer, channel, cluster=j)``), each visualised from the top patches of one k-means
cluster. Only methods that declare ``clusters = True`` are planned for them."""
from __future__ import annotations

from typing import List

from ..config import AtlasConfig
from ..targets import Target
from .base import METHODS


def polysemantic_clusters(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    if "vital" not in cfg.methods:
        return []
    k = METHODS.get("vital").config(cfg.method_settings("vital")).clusters
    if k < 2:
        return []
    return [Target.of_neuron(layer, channel, cluster=j) for layer, channel in cfg.targets.neurons for j in range(k)]
