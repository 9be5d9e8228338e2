"""LRP rules per architecture: which zennit composite and canonizers each model family needs. Which rules a
model uses is a fact of its card (``ModelCard.lrp_rules``, a name in :data:`ARCHITECTURES`).

Every family uses zennit's ``EpsilonPlusFlat`` composite (first conv/linear: Flat; other convolutions:
z+ (``ZPlus``); fully connected: epsilon; activations, BatchNorm: pass; average pooling and explicit sums:
Norm) - the composite VITAL's reference LRP approximates (z+ everywhere, reference/02_vital.md) and the one
zennit recommends for ResNets. What differs per family is the canonizers:

==================  ===============================================================================
family              canonizers / extra rules
==================  ===============================================================================
efficientnet_lite   :class:`FusedMergeBatchNorm` (timm's BN+ReLU6 modules) + :class:`TimmResidualCanonizer`;
                    also timm's other EfficientNet/MobileNet-style models
resnet              BN merge + zennit's ResNet Bottleneck/BasicBlock canonizers (explicit sums)
densenet            stem and bottleneck BN merges + :class:`DenseNetTailCanonizer`; BNs after
                    concatenations: Pass (approximate)
convnext            :class:`ConvNeXtCanonizer` (layer scale folded, residual Sum); LayerNorm: Pass
                    (approximate: the normalisation is treated as constant)
generic             :class:`FusedMergeBatchNorm` only (no residual canonizer: relevance through an
                    un-canonized ``x + shortcut`` is not conserved); also the rules of a card naming
                    rules that are not registered (e.g. a test model's family)
(transformers)      **unsupported** (card ``lrp_rules`` None): zennit has no attention or LayerNorm rules
                    (zennit issue #184); VITAL's class targets need no relevance and work on ViTs,
                    neuron and concept targets raise :class:`~atlas.errors.AtlasError`.
==================  ===============================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from torch import nn
from zennit.composites import EpsilonPlusFlat
from zennit.rules import Pass

from ..errors import AtlasError
from ..models.card import ModelCard
from ..models.cards import known_card
from ..registry import Registry
from .canonizers import (ConvNeXtCanonizer, DenseNetTailCanonizer, FusedMergeBatchNorm, NamedExactMergeBatchNorm,
                         TimmResidualCanonizer, densenet_merge_pairs)
from .direct import direct_for

@dataclass(frozen=True)
class Rules:
    """How to run LRP on one family: canonizers built per model, extra (type, rule) pairs in front of the
    composite's own map, and a one-line note of what is approximate."""

    name: str
    canonizers: Callable[[nn.Module], List] = lambda module: [FusedMergeBatchNorm()]
    extra: Callable[[], List[Tuple[tuple, object]]] = field(default=lambda: [])
    note: str = ""
    #: ``(module, zero_bias) -> engine or None``: the same rules written out without zennit's hooks for the
    #: passes the engine supports (:mod:`atlas.relevance.direct`), zennit for the others.
    direct: Optional[Callable[[nn.Module, bool], object]] = None

    def composite(self, module: nn.Module, zero_bias: bool = False) -> EpsilonPlusFlat:
        """A fresh zennit composite for ``module``; ``zero_bias`` drops biases from the rules (exact
        conservation, used by the tests)."""
        return EpsilonPlusFlat(layer_map=self.extra(), canonizers=self.canonizers(module),
                               zero_params=["bias"] if zero_bias else None)


ARCHITECTURES: Registry[Rules] = Registry("relevance architecture")


def _resnet_canonizers(module):
    from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer

    return [FusedMergeBatchNorm(), ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]


def _densenet_canonizers(module):
    return [NamedExactMergeBatchNorm(densenet_merge_pairs(module)), DenseNetTailCanonizer()]


ARCHITECTURES.add("efficientnet_lite", Rules(
    "efficientnet_lite", lambda m: [FusedMergeBatchNorm(), TimmResidualCanonizer()],
    note="BN+ReLU6 merged into the preceding conv; residual sums split by the Norm rule", direct=direct_for))
ARCHITECTURES.add("resnet", Rules("resnet", _resnet_canonizers, note="zennit ResNetCanonizer"))
ARCHITECTURES.add("densenet", Rules(
    "densenet", _densenet_canonizers, note="BatchNorms after concatenations pass relevance unchanged"))
ARCHITECTURES.add("convnext", Rules(
    "convnext", lambda m: [ConvNeXtCanonizer()], lambda: [((nn.LayerNorm,), Pass())],
    note="LayerNorm passes relevance unchanged"))
ARCHITECTURES.add("generic", Rules("generic", note="no residual canonizer"))


def _unavailable(card: ModelCard, name: str) -> Optional[str]:
    """Why a model with ``card``, called ``name``, has no LRP, or None."""
    if card.lrp_rules is not None:
        return None
    what = "the transformer " if card.transformer else ""
    return f"relevance (LRP) is not available for {what}{name}: {card.lrp_unavailable}"


def relevance_unsupported(model_name: str) -> Optional[str]:
    """Why LRP cannot run on ``model_name`` (from its card, without weights, for planning), or None; a model
    without a card is not refused here."""
    card = known_card(model_name)
    return None if card is None else _unavailable(card, model_name)


def rules_for(model) -> Rules:
    """The :class:`Rules` of a :class:`~atlas.models.ModelHandle`, named by its card; a model without LRP
    rules (transformers) is an ``AtlasError``."""
    reason = _unavailable(model.card, model.name)
    if reason:
        raise AtlasError(reason)
    return ARCHITECTURES.get(model.card.lrp_rules if model.card.lrp_rules in ARCHITECTURES else "generic")
