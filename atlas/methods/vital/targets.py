"""Planning of VITAL's polysemantic-neuron targets (supplementary Fig. 22): with the vital setting
``clusters = k`` (k >= 2), every neuron listed in ``[targets] neurons`` also gets k cluster targets
(``Target.of_neuron(layer, channel, cluster=j)``), each visualised from the top patches of one k-means
cluster. Only methods that declare ``clusters = True`` are planned for them.

:func:`polysemantic_clusters` is the planner's target source ``neuron_clusters``; the application
registers it (the method knows nothing of the planner)."""
from __future__ import annotations

from typing import List

from ...config import AtlasConfig
from ...targets import Target
from ..base import METHODS


def polysemantic_clusters(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """The cluster targets of every listed neuron when VITAL is configured with ``clusters >= 2``."""
    if "vital" not in cfg.methods:
        return []
    k = METHODS.get("vital").config(cfg.method_settings("vital")).clusters
    if k < 2:
        return []
    return [Target.of_neuron(layer, channel, cluster=j) for layer, channel in cfg.targets.neurons for j in range(k)]
