"""Relevance (LRP) with zennit: composites and canonizers per architecture, started at a class logit, one
channel of a layer, or a direction vector (VITAL supplementary §1.1, §2.1-2.3).

Public API (other features reuse it; every hook and canonizer is removed when a call returns):

``channel_relevance(model, images, class_ids, layer) -> Tensor (N, C)``
    relevance of each channel of ``layer`` for each image's class (LRP from the class logit, summed over
    positions); e.g. to rank a class's most relevant neurons.
``layer_relevance(model, images, start, layers) -> {layer: Tensor}``
    layer-level relevance maps, shaped like the layers' activations.
``input_relevance(model, images, start) -> Tensor (N, 3, H, W)``
    input-level relevance (heatmaps) at the normalised input pixels.
``relevance(model, images, start, layers, input=False) -> Relevance``
    all of it in one pass, plus the activations at ``layers`` and the start relevance.
``class_start(ids)``, ``channel_start(layer, channels, position=None, positive=False)``,
``direction_start(layer, vectors)``
    where relevance starts: a class logit; a channel's activation (all positions, or one; or its positive
    part); a direction placed at the position of the highest cosine similarity (concepts, §2.3).
``ATTRIBUTIONS``, ``channel_attribution(method, model, images, class_ids, layer)``, ``spatial_map(maps, size)``
    the registry of attribution methods at a hidden layer (Aumann-Shapley, Grad-CAM, LRP, activation x
    gradient; :mod:`atlas.relevance.attributions`), their per-channel totals and their upsampled maps.
``rules_for(model)``, ``relevance_unsupported(model_name)``, ``ARCHITECTURES``
    the per-family rules, picked by the model card's ``lrp_rules`` (see :mod:`atlas.relevance.rules` for what
    is exact and what is approximate); vision transformers are not supported (zennit has no attention rules)
    and raise ``AtlasError``.

``model`` is an :class:`atlas.models.ModelHandle`; ``images`` are in [0, 1] at the model's input size.
"""
from .attributions import ATTRIBUTIONS, channel_attribution, spatial_map
from .lrp import (Relevance, Start, channel_relevance, channel_start, class_start, direction_start, input_relevance,
                  layer_relevance, relevance)
from .rules import ARCHITECTURES, Rules, relevance_unsupported, rules_for

__all__ = ["ARCHITECTURES", "ATTRIBUTIONS", "Relevance", "Rules", "Start", "channel_attribution", "channel_relevance",
           "channel_start", "class_start", "direction_start", "input_relevance", "layer_relevance", "relevance",
           "relevance_unsupported", "rules_for", "spatial_map"]
