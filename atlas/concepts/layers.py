"""The layers the concept (CRAFT) and neuron stages read: configured, or the model's defaults.

The stages' other settings are configuration (:mod:`atlas.config.stages`); the default layers are model
knowledge, so they live here, above the model zoo.
"""
from __future__ import annotations

from typing import Optional, Tuple

from ..errors import AtlasError


def default_layers(model: str) -> Tuple[Optional[str], Optional[str]]:
    """(concept layer, neuron layer) of a zoo model, known without loading it.

    Concepts (CRAFT needs non-negative activations): ResNet50's ``layer4`` output (post-ReLU; CRAFT's
    choice); EfficientNet-Lite's ``bn2``, the 1280-channel head after BatchNorm + ReLU6 - non-negative, the
    last feature map, and its spatial mean *is* the classifier's input (the analogue of ResNet50's layer4).
    Neurons: the last of VITAL's matched blocks (ResNet50: ``layer4`` - VITAL Fig. 22 names channels up to
    #1524, beyond layer3's 1024; EfficientNet-Lite: ``blocks.6``).
    """
    from ..models.cards import known_card

    card = known_card(model)
    return (card.concept_layer, card.neuron_layer) if card is not None else (None, None)


def has_concept_layer(cfg, model: str) -> bool:
    """Whether concepts apply to ``model``: a layer is configured or the model has a default one."""
    return bool(cfg.targets.concept_layer or default_layers(model)[0])


def concept_layer(cfg, model: str) -> str:
    layer = cfg.targets.concept_layer or default_layers(model)[0]
    if not layer:
        raise AtlasError(f"model {model} has no default concept layer; set [targets] concept_layer to a "
                         f"layer with non-negative activations")
    return layer


def neuron_layer(cfg, model: str) -> str:
    layer = cfg.targets.neuron_layer or default_layers(model)[1]
    if not layer:
        raise AtlasError(f"model {model} has no default neuron layer; set [targets] neuron_layer")
    return layer
