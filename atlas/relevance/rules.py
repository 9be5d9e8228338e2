"""LRP rules per architecture: which zennit composite and canonizers each model family needs.

Every family uses zennit's ``EpsilonPlusFlat`` composite (first conv/linear: Flat; other convolutions:
z+ (``ZPlus``); fully connected: epsilon; activations, BatchNorm: pass; average pooling and explicit sums:
Norm) - the composite VITAL's reference LRP approximates (z+ everywhere, reference/02_vital.md) and the one
zennit recommends for ResNets. What differs per family is the canonizers:

==================  ===============================================================================
family              canonizers / extra rules
==================  ===============================================================================
efficientnet_lite   :class:`FusedMergeBatchNorm` (timm's BN+ReLU6 modules) + :class:`TimmResidualCanonizer`
resnet              BN merge + zennit's ResNet Bottleneck/BasicBlock canonizers (explicit sums)
densenet            stem and bottleneck BN merges + :class:`DenseNetTailCanonizer`; BNs after
                    concatenations: Pass (approximate)
convnext            :class:`ConvNeXtCanonizer` (layer scale folded, residual Sum); LayerNorm: Pass
                    (approximate: the normalisation is treated as constant)
timm                EfficientNet/MobileNet-style models as efficientnet_lite; other timm CNNs: the
                    generic rules
generic / test      :class:`FusedMergeBatchNorm` only (no residual canonizer: relevance through an
                    un-canonized ``x + shortcut`` is not conserved)
vit                 **unsupported**: zennit has no attention or LayerNorm rules (zennit issue #184);
                    VITAL's class targets need no relevance and work on ViTs, neuron and concept
                    targets raise :class:`~atlas.errors.AtlasError`.
==================  ===============================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from torch import nn
from zennit.composites import EpsilonPlusFlat
from zennit.rules import Pass

from ..errors import AtlasError
from ..registry import Registry
from .canonizers import (ConvNeXtCanonizer, DenseNetTailCanonizer, FusedMergeBatchNorm, NamedExactMergeBatchNorm,
                         TimmResidualCanonizer, densenet_merge_pairs)

TRANSFORMER_MARKERS = ("vit", "deit", "swin", "beit", "eva", "clip", "dino", "mixer", "former")


@dataclass(frozen=True)
class Rules:
    """How to run LRP on one family: canonizers built per model, extra (type, rule) pairs in front of the
    composite's own map, and a one-line note of what is approximate."""

    name: str
    canonizers: Callable[[nn.Module], List] = lambda module: [FusedMergeBatchNorm()]
    extra: Callable[[], List[Tuple[tuple, object]]] = field(default=lambda: [])
    note: str = ""

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
    note="BN+ReLU6 merged into the preceding conv; residual sums split by the Norm rule"))
ARCHITECTURES.add("resnet", Rules("resnet", _resnet_canonizers, note="zennit ResNetCanonizer"))
ARCHITECTURES.add("densenet", Rules(
    "densenet", _densenet_canonizers, note="BatchNorms after concatenations pass relevance unchanged"))
ARCHITECTURES.add("convnext", Rules(
    "convnext", lambda m: [ConvNeXtCanonizer()], lambda: [((nn.LayerNorm,), Pass())],
    note="LayerNorm passes relevance unchanged"))
ARCHITECTURES.add("generic", Rules("generic", note="no residual canonizer"))


def _is_transformer(name: str) -> bool:
    low = name.lower().removeprefix("timm:")
    return any(low.startswith(m) or f"_{m}" in low for m in TRANSFORMER_MARKERS)


def relevance_unsupported(model_name: str) -> Optional[str]:
    """Why LRP cannot run on ``model_name`` (from the name alone, for planning), or None."""
    if _is_transformer(model_name):
        return (f"relevance (LRP) is not available for the transformer {model_name}: zennit has no attention "
                f"or LayerNorm rules")
    return None


def rules_for(model) -> Rules:
    """The :class:`Rules` of a :class:`~atlas.models.ModelHandle`; transformers are an ``AtlasError``."""
    reason = relevance_unsupported(model.name)
    if reason or model.family == "vit":
        raise AtlasError(reason or f"relevance (LRP) is not available for the transformer {model.name}")
    if model.family in ARCHITECTURES:
        return ARCHITECTURES.get(model.family)
    if model.family == "timm":
        from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

        if any(isinstance(m, (InvertedResidual, DepthwiseSeparableConv)) for m in model.module.modules()):
            return ARCHITECTURES.get("efficientnet_lite")
    return ARCHITECTURES.get("generic")

