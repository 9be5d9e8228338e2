"""Canonizers: reversible rewrites that put a model into the form LRP rules assume (zennit's mechanism).

LRP rules are defined for a chain of linear layers and element-wise activations. Three things in modern
classifiers break that chain and are rewritten here, each reverted when the zennit context exits:

* **BatchNorm fused with an activation** (timm's ``BatchNormAct2d`` = BN + ReLU6 in one module, so zennit's
  ``SequentialMergeBatchNorm``, which only sees module *leaves*, never pairs it with the preceding conv):
  :class:`FusedMergeBatchNorm` treats such modules as leaves and merges the BN into the conv before it.
* **Residual sums written as ``x + shortcut``** (an autograd add hands the *full* relevance to both
  branches, so relevance is created): the block's ``forward`` is replaced by one that stacks the branches
  and sums them with a :class:`zennit.layer.Sum` module, which the composites give the ``Norm`` rule
  (relevance split in proportion to each branch's contribution). :class:`TimmResidualCanonizer` does this
  for timm's EfficientNet/MobileNet blocks, :class:`ConvNeXtCanonizer` for torchvision's ``CNBlock``
  (whose layer scale is also folded into the block's last ``Linear``).
* **Functional tails** (torchvision DenseNet ends in ``F.relu`` + ``F.adaptive_avg_pool2d``):
  :class:`DenseNetTailCanonizer` routes them through modules so that the pooling gets the ``Norm`` rule.

torchvision ResNets use zennit's own ``ResNetCanonizer``. Only documented public zennit classes are used.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer, Canonizer, MergeBatchNorm, NamedMergeBatchNorm
from zennit.layer import Sum
from zennit.types import BatchNorm, Linear


def _is_fused_norm(module: nn.Module) -> bool:
    """A BatchNorm subclass with children (timm's BatchNormAct2d: BN + drop + act in one module)."""
    return isinstance(module, BatchNorm) and any(True for _ in module.children())


def leaves_with_fused_norms(root: nn.Module):
    """Depth-first, in-order leaves of ``root``, except that fused BN+act modules count as one leaf."""
    children = list(root.children())
    if not children or _is_fused_norm(root):
        yield root
        return
    for child in children:
        yield from leaves_with_fused_norms(child)


class ExactMergeBatchNorm(MergeBatchNorm):
    """zennit's BN merge leaves the BN's ``eps`` in place, so the "identity" BN still divides by
    sqrt(1 + eps) (timm's Lite BNs: eps = 1e-3, about 2.5% over Lite0's 49 BNs). This merge sets ``eps`` to
    0 while merged (the merged conv already includes it) and restores it on removal."""

    def register(self, linears, batch_norm):
        super().register(linears, batch_norm)
        self.eps = batch_norm.eps
        batch_norm.eps = 0.0

    def remove(self):
        super().remove()
        self.batch_norm.eps = self.eps


class NamedExactMergeBatchNorm(ExactMergeBatchNorm, NamedMergeBatchNorm):
    """zennit's ``NamedMergeBatchNorm`` (explicit (convs, BN) name pairs) with the exact ``eps`` handling."""


class FusedMergeBatchNorm(ExactMergeBatchNorm):
    """Merge every BatchNorm (plain or fused with an activation) that directly follows a conv/linear leaf.

    Like zennit's ``SequentialMergeBatchNorm``, but a ``BatchNormAct2d`` is treated as a leaf, so timm's
    conv -> BN+ReLU6 pairs are merged; the remaining BN computes the identity and its activation keeps the
    ``Pass`` rule. Child modules must be registered in forward order (true for timm's EfficientNets).
    """

    def apply(self, root_module: nn.Module) -> List[Canonizer]:
        instances, last = [], None
        for leaf in leaves_with_fused_norms(root_module):
            if isinstance(last, Linear) and isinstance(leaf, BatchNorm):
                out_features = last.weight.shape[0]
                if leaf.num_features == out_features:  # never merge across a concatenation
                    instance = self.copy()
                    instance.register((last,), leaf)
                    instances.append(instance)
            last = leaf
        return instances


def _stacked_sum(module: nn.Module, shortcut: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return module.canonizer_sum(torch.stack([shortcut, out], dim=-1))


def _timm_ds_forward(self, x):
    """timm ``DepthwiseSeparableConv.forward`` with the skip as an explicit Sum module."""
    shortcut = x
    if getattr(self, "conv_s2d", None) is not None:
        x = self.bn_s2d(self.conv_s2d(x))
    x = self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x)))))
    x = self.bn2(x)
    return _stacked_sum(self, shortcut, self.drop_path(x)) if self.has_skip else x


def _timm_ir_forward(self, x):
    """timm ``InvertedResidual.forward`` with the skip as an explicit Sum module."""
    shortcut = x
    if getattr(self, "conv_s2d", None) is not None:
        x = self.bn_s2d(self.conv_s2d(x))
    x = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
    x = self.bn3(self.conv_pwl(self.se(self.aa(x))))
    return _stacked_sum(self, shortcut, self.drop_path(x)) if self.has_skip else x


class TimmResidualCanonizer(AttributeCanonizer):
    """Residual sums of timm's ``DepthwiseSeparableConv`` and ``InvertedResidual`` blocks as Sum modules."""

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name, module):
        from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

        if not getattr(module, "has_skip", False):
            return None
        if isinstance(module, InvertedResidual):
            return {"forward": _timm_ir_forward.__get__(module), "canonizer_sum": Sum()}
        if isinstance(module, DepthwiseSeparableConv):
            return {"forward": _timm_ds_forward.__get__(module), "canonizer_sum": Sum()}
        return None

    def copy(self):
        return TimmResidualCanonizer()


def _cnblock_forward(self, x):
    """torchvision ``CNBlock.forward`` (layer scale folded into the last Linear) with an explicit Sum."""
    out = self.stochastic_depth(self.block(x))
    return _stacked_sum(self, x, out)


class ConvNeXtCanonizer(Canonizer):
    """torchvision ConvNeXt blocks: fold ``layer_scale`` into the block's last ``Linear`` (exact: y = s * (Wx + b)
    = (sW)x + sb) and make the residual sum an explicit Sum module. Reverted by :meth:`remove`."""

    def __init__(self):
        self.module = None
        self.saved = None

    def apply(self, root_module):
        from torchvision.models.convnext import CNBlock

        instances = []
        for module in root_module.modules():
            if isinstance(module, CNBlock):
                instance = ConvNeXtCanonizer()
                instance.register(module)
                instances.append(instance)
        return instances

    def register(self, module):
        linear = module.block[5]
        self.module = module
        self.saved = (linear.weight.data, linear.bias.data, module.layer_scale.data)
        scale = module.layer_scale.data.reshape(-1)
        linear.weight.data = linear.weight.data * scale[:, None]
        linear.bias.data = linear.bias.data * scale
        module.layer_scale.data = torch.ones_like(module.layer_scale.data)
        module.forward = _cnblock_forward.__get__(module)
        module.canonizer_sum = Sum()

    def remove(self):
        linear = self.module.block[5]
        linear.weight.data, linear.bias.data, self.module.layer_scale.data = self.saved
        del self.module.forward
        del self.module.canonizer_sum

    def copy(self):
        return ConvNeXtCanonizer()


def _densenet_forward(self, x):
    out = self.canonizer_relu(self.features(x))
    out = self.canonizer_pool(out).flatten(1)
    return self.classifier(out)


def densenet_merge_pairs(root: nn.Module) -> list:
    """(conv names, BN name) pairs of a torchvision DenseNet where a BN directly follows a conv: the stem
    (``features.conv0`` -> ``features.norm0``) and every dense layer's bottleneck (``conv1`` -> ``norm2``).
    Every other BN normalises a *concatenation* of earlier outputs and cannot be merged into one conv."""
    from torchvision.models.densenet import _DenseLayer

    pairs = [(("features.conv0",), "features.norm0")]
    for name, module in root.named_modules():
        if isinstance(module, _DenseLayer):
            pairs.append(((f"{name}.conv1",), f"{name}.norm2"))
    return pairs


class DenseNetTailCanonizer(AttributeCanonizer):
    """torchvision DenseNet's functional ``relu`` + ``adaptive_avg_pool2d`` tail as modules (ReLU: Pass,
    pooling: Norm). The pre-activation BatchNorms after concatenations cannot be merged into one conv; they
    keep zennit's ``Pass`` rule (an approximation, see zennit issue #165)."""

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name, module):
        from torchvision.models.densenet import DenseNet

        if isinstance(module, DenseNet):
            return {"forward": _densenet_forward.__get__(module), "canonizer_relu": nn.ReLU(),
                    "canonizer_pool": nn.AdaptiveAvgPool2d(1)}
        return None

    def copy(self):
        return DenseNetTailCanonizer()
