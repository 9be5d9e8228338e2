"""Planner target sources: CRAFT concepts per class and the selected neurons (top-k relevant per class,
a fixed random sample, polysemantic neurons and their clusters)."""
from __future__ import annotations

from typing import List

from ..config import craft_config, neuron_config
from ..errors import AtlasError, SourceSkipped
from ..pipeline.planner import classes_with_images, no_images_reason
from ..models.cards import known_card
from ..targets import Target
from .bank import fit_hash, model_craft_config
from .clusters import cluster_fit
from .layers import concept_layer, has_concept_layer
from .neurons import select_neurons


def concept_targets(cfg, model: str, classes: List[int]) -> List[Target]:
    """The ``visualise`` most important of the K concepts of every class (concept 0 = most important;
    the order is known once CRAFT has run, the targets are not)."""
    k = cfg.targets.concepts
    ccfg = craft_config(cfg)  # bad settings are errors even when no concept is asked for
    if k < 1:
        return []
    if not has_concept_layer(cfg, model):
        raise SourceSkipped(f"model {model} has no default concept layer (set [targets] concept_layer)")
    card = known_card(model)
    ccfg = model_craft_config(cfg, model)  # patches scaled to the model's input unless configured
    if card is not None and ccfg.patch > card.input_size:
        raise AtlasError(f"config key 'targets.concept_settings.patch' must be at most the input side of {model} "
                         f"({card.input_size} px), got {ccfg.patch}")
    layer = concept_layer(cfg, model)
    fit = fit_hash(cfg, layer, model)
    n = min(ccfg.visualise or k, k)
    have = classes_with_images(cfg, model)
    if have is not None:
        missing = [c for c in classes if c not in have]
        if missing and len(missing) == len(classes):
            raise SourceSkipped(f"CRAFT factorises real images of each class: {no_images_reason(cfg, model, missing[0])}"
                                + (f" (nor of {len(missing) - 1} other classes)" if len(missing) > 1 else ""))
        classes = [c for c in classes if c in have]
    return [Target("concept", class_id=c, concept=i, layer=layer, fit_hash=fit) for c in classes for i in range(n)]


def selected_neurons(cfg, model: str, classes: List[int]) -> List[Target]:
    """Top-k relevant and random-sample neurons (not already listed), polysemantic neurons and one target
    per k-means cluster of each polysemantic neuron."""
    ncfg = neuron_config(cfg)
    listed = {(layer, int(ch)) for layer, ch in cfg.targets.neurons}
    try:
        sel = select_neurons(cfg, model, classes)
    except AtlasError as exc:  # e.g. the paper preset's neuron_layer = "layer4" on a model without it
        if "no default neuron layer" in str(exc) or (len(cfg.models) > 1 and "layer" in str(exc)):
            raise SourceSkipped(str(exc)) from None
        raise
    out = [Target.of_neuron(layer, ch) for layer, ch in sel.reasons if (layer, ch) not in listed]
    fit = cluster_fit(cfg)
    for layer, ch in ncfg.polysemantic:
        out.extend(Target("neuron", layer=layer, channel=ch, cluster=j, fit_hash=fit) for j in range(ncfg.clusters))
    return out
