"""Objectives of the data-free inversion methods (DeepInversion, Plug-In Inversion).

* :func:`cross_entropy` - minus the cross-entropy of each view against its target class.
* :func:`bn_statistics` - DeepInversion's feature-statistics prior: the mean and variance of the *input* of
  every BatchNorm layer, over the whole batch, against the layer's running statistics.
* :func:`input_l2` - DeepInversion's l2 image prior, computed as the reference code does: on the model's
  (normalised) input after the random transforms (its total-variation prior is
  :func:`atlas.optim.objectives.total_variation` with ``on_views`` and ``whole_batch``).

Batch-level terms (BatchNorm statistics, total variation over the batch) are properties of the whole batch,
not of one target: they are returned once per target, so that the sum the loop maximises is K times the
reference loss (Adam is invariant to that scale).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..models.handle import ModelHandle
from .objectives import Evaluation, Objective
from .transforms import per_target


def cross_entropy(class_ids: Sequence[int]) -> Objective:
    """-CE(logits, class) of each view, averaged over target k's views."""
    ids = torch.as_tensor(list(class_ids))

    def fn(ev: Evaluation) -> torch.Tensor:
        cls = ids.to(ev.logits.device).repeat_interleave(ev.logits.shape[0] // ev.k)
        return -per_target(F.cross_entropy(ev.logits.float(), cls, reduction="none"), ev.k)

    return Objective(fn, (), f"-CE{list(class_ids)}")


def batchnorm_layers(module: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, module) of every BatchNorm layer that tracks running statistics, in module order.

    Subclasses count: timm's ``BatchNormAct2d`` (BatchNorm fused with its activation) is a ``BatchNorm2d``,
    and the statistics are those of its *input*, before the activation.
    """
    return [(n, m) for n, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            and m.running_mean is not None]


def _rows_view(y: torch.Tensor):
    """``y`` (N, C) or channels-last (N, C, H, W) as an (N*H*W, C) matrix without a copy, else None."""
    if y.dim() == 2 and y.is_contiguous():
        return y
    if y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last):
        return y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
    return None


class _BatchStats(torch.autograd.Function):
    """(mean, biased var) of x (N, C, ...) over every dimension but 1, with a fused backward.

    Forward (no graph): sums of y and y^2 with y = x - shift, a per-channel constant near the mean (the
    running mean), so that E[y^2] - E[y]^2 keeps its precision - about 3x faster on the CPU than
    ``torch.var_mean``. For a channels-last input the sums are matrix-vector products over the
    (positions, channels) matrix (the reduction over the outer dimensions of a channels-last tensor costs
    about 14 elementwise passes on the CPU; the products about 3.5 - bench/inversion.py). Backward: d mean / dx = 1 / M and d var / dx = 2 (x - mean) / M give
    grad_x = a + b * x with per-channel a, b: one pass over x instead of the five or so of autograd's
    elementwise graph. With 49 BatchNorm layers this more than halves the cost of a DeepInversion step on
    EfficientNet-Lite0 (bench/inversion.py).
    """

    @staticmethod
    def forward(ctx, x, shift):
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1]
        y = x - shift.view(shape)
        rows = _rows_view(y)
        if rows is not None:  # sums over the positions as matrix-vector products: one fast pass each
            ones = torch.ones(1, rows.shape[0], dtype=rows.dtype, device=rows.device)
            d = (ones @ rows)[0] / count
            var = (ones @ (rows * rows))[0] / count - d * d
        else:
            d = y.sum(dims) / count
            var = (y * y).sum(dims) / count - d * d
        mean = shift + d
        ctx.save_for_backward(x, mean)
        ctx.count = count
        return mean, var.clamp(min=0)

    @staticmethod
    def backward(ctx, g_mean, g_var):
        x, mean = ctx.saved_tensors
        shape = [1, -1] + [1] * (x.dim() - 2)
        g_mean = torch.zeros_like(mean) if g_mean is None else g_mean
        g_var = torch.zeros_like(mean) if g_var is None else g_var
        b = 2.0 * g_var / ctx.count
        a = g_mean / ctx.count - b * mean
        return torch.addcmul(a.view(shape), x, b.view(shape)), None


def batch_stats(x: torch.Tensor, shift: torch.Tensor | None = None):
    """Per-channel mean and biased variance of ``x`` (N, C, ...) over the batch and all positions
    (``shift``: a per-channel value near the mean, for precision; default 0)."""
    x = x.float()
    if shift is None:
        shift = torch.zeros(x.shape[1], device=x.device)
    return _BatchStats.apply(x, shift.detach().float())


def bn_distance(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """||running_var - var||_2 + ||running_mean - mean||_2 for a BatchNorm input ``x`` (N, C, ...): mean and
    biased variance over every dimension but the channels (DeepInversion, ``DeepInversionFeatureHook``)."""
    mean, var = batch_stats(x, bn.running_mean)
    return torch.norm(bn.running_var - var, 2) + torch.norm(bn.running_mean - mean, 2)


def bn_statistics(model: ModelHandle, first_multiplier: float = 10.0) -> Objective:
    """-sum_l w_l * bn_distance(input of BatchNorm layer l), w = ``first_multiplier`` for the first layer and
    1 for the rest (reference: ``first_bn_multiplier`` 10). The same value for every target.

    Reads the input of every BatchNorm layer (capture keys ``"<name>:in"``, forward pre-hooks that the loop
    removes after the run). A model without BatchNorm is a ``ValueError``.
    """
    layers = batchnorm_layers(model.module)
    if not layers:
        raise ValueError(f"model {model.name} has no BatchNorm layers")
    keys = tuple(f"{n}:in" for n, _ in layers)
    weights = [first_multiplier] + [1.0] * (len(layers) - 1)

    def fn(ev: Evaluation) -> torch.Tensor:
        total = sum(w * bn_distance(ev.acts[key], m) for w, key, (_, m) in zip(weights, keys, layers))
        return -total.expand(ev.k)

    return Objective(fn, keys, f"-BN statistics ({len(layers)} layers)")


@torch.no_grad()
def bn_loss(model: ModelHandle, images: torch.Tensor, first_multiplier: float = 10.0) -> float:
    """The BatchNorm-statistics loss of a batch of images in [0, 1] (no transforms), e.g. to compare the
    start and the end of an optimisation."""
    objective = bn_statistics(model, first_multiplier)
    with model.capture(objective.layers) as acts:
        logits = model(images.to(model.device))
        value = objective(Evaluation(images, images, logits, acts, images.shape[0]))
    return float(-value[0])


def input_l2(model: ModelHandle, weight: float) -> Objective:
    """-weight * ||x||_2 of each normalised view (mean over a target's views), DeepInversion's ``loss_l2``."""

    def fn(ev: Evaluation) -> torch.Tensor:
        return -weight * per_target(model.normalize(ev.views).flatten(1).norm(dim=1), ev.k)

    return Objective(fn, (), f"-{weight:g} l2(input)")
