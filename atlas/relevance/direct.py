"""LRP written out for timm's EfficientNet-style blocks: the same relevance as zennit's ``EpsilonPlusFlat``
composite with :class:`~atlas.relevance.canonizers.FusedMergeBatchNorm` and
:class:`~atlas.relevance.canonizers.TimmResidualCanonizer`, without zennit's hooks.

Why: VITAL's neuron and concept targets compute the synthetic image's relevance at every step. Through
zennit a z+ convolution runs two modified forward passes (positive inputs with positive weights, negative
inputs with negative weights) inside Python hooks, so the pass cost ~3.6 raw forward+backward passes of
EfficientNet-Lite0 (bench/README.md, issue 20). Here the forward pass runs without autograd, keeps each
convolution's input, and the backward pass applies the rules directly:

* convolution (z+, the BatchNorm after it merged into its weights and bias):
  ``R_in = x+ * W+^T s + x- * W-^T s`` with ``s = R_out / stab(W+ x+ + b+ + W- x-)``; the negative half is
  skipped where the input comes out of a ReLU or ReLU6 (two of an inverted residual's three
  convolutions), where it is exactly zero;
* BatchNorm (merged: the identity), ReLU6, dropout, drop path: relevance passes unchanged (``Pass``);
* residual sum ``x + f(x)``: ``R_x = x * R / stab(x + f(x))`` and ``R_f = f(x) * R / stab(x + f(x))``
  (``Norm``, the rule zennit gives the canonizer's ``Sum`` module);

``stab`` is zennit's stabiliser (1e-6 with the sign of the entry). The relevance equals zennit's within
float rounding (``tests/test_relevance.py``). What this covers: starts at a block's or a stage's output
(``blocks.i``, ``blocks.i.j``) or at ``bn2`` (the last feature map, after ``conv_head``), and relevance at
``conv_stem``, ``conv_head`` and earlier block outputs - VITAL's neuron and concept targets. Everything
else (class logits, the input pixels, other layers, other families) goes through zennit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from zennit.core import stabilize

STABILIZER = 1e-6  # zennit's default for ZPlus and Norm in EpsilonPlusFlat


@dataclass
class _Conv:
    """One convolution with the BatchNorm after it merged in, split into its positive and negative parts."""

    module: nn.Module
    pos: torch.Tensor
    neg: torch.Tensor
    bias_pos: Optional[torch.Tensor]
    nonneg_input: bool = False

    def _pad(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        """``x`` padded as the module pads it, and the padding left for ``conv2d``."""
        m = self.module
        if _is_same_padded(m):
            from timm.layers import pad_same

            return pad_same(x, m.weight.shape[-2:], m.stride, m.dilation), (0, 0)
        return x, m.padding

    def zplus(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Relevance at the convolution's input ``x`` for relevance ``r`` at its (merged) output."""
        m = self.module
        xp, padding = self._pad(x if self.nonneg_input else x.clamp(min=0))
        halves = [(xp, self.pos, self.bias_pos)]
        if not self.nonneg_input:
            halves.append((self._pad(x.clamp(max=0))[0], self.neg, None))
        with torch.no_grad():
            z = None
            for xi, w, b in halves:
                zi = F.conv2d(xi, w, b, m.stride, padding, m.dilation, m.groups)
                z = zi if z is None else z.add_(zi)
            s = r / z.add_(STABILIZER)  # z >= 0: zennit's stabiliser adds +eps
            out = None
            for xi, w, _ in halves:
                g = torch.ops.aten.convolution_backward(s, xi, w, None, m.stride, padding, m.dilation, False, (0, 0),
                                                        m.groups, (True, False, False))[0]
                ri = xi * g
                out = ri if out is None else out.add_(ri)
        if out.shape[-2:] != x.shape[-2:]:  # the padding's relevance is zero (its input is zero): crop it
            out = _unpad(out, x.shape[-2:])
        return out


def _unpad(out: torch.Tensor, size) -> torch.Tensor:
    """Crop relevance at a ``pad_same``-padded input back to the input's ``size`` (timm pads the top and left
    by the smaller half)."""
    ph, pw = out.shape[-2] - size[0], out.shape[-1] - size[1]
    top, left = ph // 2, pw // 2
    return out[..., top:top + size[0], left:left + size[1]]


def _is_same_padded(m: nn.Module) -> bool:
    from timm.layers import Conv2dSame

    return isinstance(m, Conv2dSame)


def _merged(conv: nn.Module, bn: nn.Module, zero_bias: bool, nonneg_input: bool = False) -> _Conv:
    """``conv`` followed by ``bn`` as one convolution (zennit's MergeBatchNorm), positive and negative parts;
    ``nonneg_input``: the convolution's input comes out of a ReLU or ReLU6 (no negative half to propagate)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    like = lambda t: torch.empty_like(conv.weight).copy_(t.detach())  # noqa: E731  the module's strides (oneDNN)
    return _Conv(conv, like(weight.clamp(min=0)), like(weight.clamp(max=0)),
                 None if zero_bias else bias.detach().clamp(min=0), nonneg_input)


def _after_relu(norm_act: nn.Module) -> bool:
    """Whether a (timm BatchNorm + activation) module's output is non-negative."""
    return isinstance(getattr(norm_act, "act", None), (nn.ReLU, nn.ReLU6))


def _sum_rule(shortcut: torch.Tensor, branch: torch.Tensor, r: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    s = r / stabilize(shortcut + branch, STABILIZER)
    return shortcut * s, branch * s


class _Block:
    """One timm ``InvertedResidual`` or ``DepthwiseSeparableConv`` (no squeeze-excite, no anti-aliasing)."""

    def __init__(self, module: nn.Module, zero_bias: bool, nonneg_input: bool):
        self.m = module
        self.inverted = hasattr(module, "conv_pwl")
        if self.inverted:
            self.convs = [_merged(module.conv_pw, module.bn1, zero_bias, nonneg_input),
                          _merged(module.conv_dw, module.bn2, zero_bias, _after_relu(module.bn1)),
                          _merged(module.conv_pwl, module.bn3, zero_bias, _after_relu(module.bn2))]
        else:
            self.convs = [_merged(module.conv_dw, module.bn1, zero_bias, nonneg_input),
                          _merged(module.conv_pw, module.bn2, zero_bias, _after_relu(module.bn1))]
        last = module.bn3 if self.inverted else module.bn2
        self.nonneg_output = not module.has_skip and _after_relu(last)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        m = self.m  # ``forward``, not ``__call__``: hooks on the model (a loop's capture) must not fire here
        if self.inverted:
            a = m.bn1.forward(m.conv_pw.forward(x))
            b = m.bn2.forward(m.conv_dw.forward(a))
            branch = m.bn3.forward(m.conv_pwl.forward(b))
            inputs = (x, a, b)
        else:
            a = m.bn1.forward(m.conv_dw.forward(x))
            branch = m.bn2.forward(m.conv_pw.forward(a))
            inputs = (x, a)
        out = x + branch if m.has_skip else branch
        return out, (inputs, branch)

    def backward(self, saved: tuple, r: torch.Tensor) -> torch.Tensor:
        inputs, branch = saved
        r_short = None
        if self.m.has_skip:
            r_short, r = _sum_rule(inputs[0], branch, r)
        for conv, x in zip(reversed(self.convs), reversed(inputs)):
            r = conv.zplus(x, r)
        return r if r_short is None else r + r_short


class _Head:
    """The 1x1 ``conv_head`` and its BatchNorm + ReLU6 ``bn2`` (EfficientNet's last feature map)."""

    def __init__(self, module: nn.Module, zero_bias: bool, nonneg_input: bool):
        self.conv, self.bn = module.conv_head, module.bn2
        self.merged = _merged(self.conv, self.bn, zero_bias, nonneg_input)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        c = self.conv.forward(x)
        return self.bn.forward(c), (x, _batch_norm(c, self.bn))

    def backward(self, saved: tuple, r: torch.Tensor) -> torch.Tensor:
        return self.merged.zplus(saved[0], r)


def _batch_norm(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """The BatchNorm's affine map alone (its activation left out): the merged convolution's output."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _plain_block(module: nn.Module) -> bool:
    """A timm block this engine writes out: no squeeze-excite, anti-aliasing or space-to-depth convolution."""
    try:
        from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
    except ImportError:  # another timm layout: zennit handles it
        return False
    if type(module) not in (DepthwiseSeparableConv, InvertedResidual):
        return False
    if getattr(module, "conv_s2d", None) is not None:
        return False
    convs = [m for m in module.children() if isinstance(m, nn.Conv2d)]
    if not all(isinstance(c.padding, tuple) and c.padding_mode == "zeros" for c in convs):
        return False  # padding="same" strings or other padding modes: zennit
    return all(isinstance(getattr(module, name, nn.Identity()), nn.Identity) for name in ("se", "aa", "drop_path"))


class DirectLRP:
    """The written-out LRP of a timm EfficientNet whose blocks are all plain (see :func:`direct_for`)."""

    def __init__(self, module: nn.Module, zero_bias: bool = False):
        self.module = module
        self.stem = module.conv_stem, module.bn1
        self.blocks: List[Tuple[str, _Block]] = []
        self.index: Dict[str, int] = {"conv_stem": -1}
        #: keys whose activation is the merged convolution's output (before the activation function)
        self.pre_activation = {"conv_stem"}
        nonneg = _after_relu(module.bn1)
        for i, stage in enumerate(module.blocks):
            for j, block in enumerate(stage):
                self.blocks.append((f"blocks.{i}.{j}", _Block(block, zero_bias, nonneg)))
                nonneg = self.blocks[-1][1].nonneg_output
                self.index[f"blocks.{i}.{j}"] = len(self.blocks) - 1
            self.index[f"blocks.{i}"] = len(self.blocks) - 1
        if isinstance(getattr(module, "conv_head", None), nn.Conv2d) and _after_relu(getattr(module, "bn2", None)):
            self.blocks.append(("bn2", _Head(module, zero_bias, nonneg)))
            self.index["bn2"] = self.index["conv_head"] = len(self.blocks) - 1
            self.pre_activation.add("conv_head")

    def supports(self, start_layer: Optional[str], keys: Sequence[str], want_input: bool) -> bool:
        if want_input or start_layer not in self.index or start_layer in self.pre_activation:
            return False
        top = self.index[start_layer]
        return all(k in self.index and self.index[k] <= top for k in keys)

    def run(self, x: torch.Tensor, start_layer: str, initial, keys: Sequence[str]):
        """(relevance at ``keys``, activations at ``keys``, start relevance) for normalised images ``x``;
        ``initial(head)`` maps the start layer's output to the start relevance."""
        top = self.index[start_layer]
        conv, bn = self.stem
        with torch.no_grad():
            stem = conv.forward(x)  # not ``__call__``: no hook of the model fires (see _Block.forward)
            pre = {-1: _batch_norm(stem, bn)} if "conv_stem" in keys else {}
            h = bn.forward(stem)
            saved, outs = [], {}
            for name, block in self.blocks[:top + 1]:
                h, s = block.forward(h)
                saved.append(s)
                outs[len(saved) - 1] = h
                if isinstance(block, _Head):
                    pre[len(saved) - 1] = s[1]
        r0 = initial(outs[top])
        wanted = {self.index[k] for k in keys}
        rel: Dict[int, torch.Tensor] = {}
        r = r0
        for i in range(top, -1, -1):
            if i in wanted:
                rel[i] = r
            if i == 0 and -1 not in wanted:
                break
            r = self.blocks[i][1].backward(saved[i], r)
        if -1 in wanted:
            rel[-1] = r
        acts = {k: (pre if k in self.pre_activation else outs)[self.index[k]] for k in keys}
        return {k: rel[self.index[k]] for k in keys}, acts, r0


def direct_for(module: nn.Module, zero_bias: bool = False) -> Optional[DirectLRP]:
    """A :class:`DirectLRP` for ``module`` if it is a timm EfficientNet made only of plain blocks (the
    EfficientNet-Lite family, MobileNet-style models without squeeze-excite), else None (use zennit)."""
    try:
        from timm.models.efficientnet import EfficientNet
    except ImportError:
        return None
    if not isinstance(module, EfficientNet) or module.training:
        return None
    if not all(_plain_block(b) for stage in module.blocks for b in stage):
        return None
    return DirectLRP(module, zero_bias)
