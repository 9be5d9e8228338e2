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


class _BatchStats(torch.autograd.Function):
    """(mean, biased var) of x (N, C, ...) over every dimension but 1, with a fused backward.

    Forward (no graph): PyTorch's own BatchNorm statistics kernel (``aten::batch_norm_update_stats``, what a
    BatchNorm layer in training mode runs, for channels-last and contiguous inputs on the CPU and the GPU),
    which reads x twice (the mean, then the squared deviations from it) without writing a copy. It replaced
    a shifted E[y^2] - E[y]^2 as matrix-vector products, which wrote two copies of x and read them in four
    passes: on Lite0's BatchNorm inputs at batch 6, 10-20x slower, and less precise in the variance (against
    a float64 reference, relative error 3e-6 instead of up to 1e-2 when the mean is 1000 standard
    deviations; the mean's error stays below 3e-6 of its value). Backward: d mean / dx = 1 / M and
    d var / dx = 2 (x - mean) / M give grad_x = a + b * x with per-channel a, b: one pass over x instead of
    the five or so of autograd's elementwise graph.
    """

    @staticmethod
    def forward(ctx, x):
        mean, var = torch.ops.aten.batch_norm_update_stats(x, None, None, 0.0)
        ctx.save_for_backward(x, mean)
        ctx.count = x.numel() // x.shape[1]
        return mean, var.clamp(min=0)

    @staticmethod
    def backward(ctx, g_mean, g_var):
        x, mean = ctx.saved_tensors
        shape = [1, -1] + [1] * (x.dim() - 2)
        g_mean = torch.zeros_like(mean) if g_mean is None else g_mean
        g_var = torch.zeros_like(mean) if g_var is None else g_var
        b = 2.0 * g_var / ctx.count
        a = g_mean / ctx.count - b * mean
        return torch.addcmul(a.view(shape), x, b.view(shape))


def batch_stats(x: torch.Tensor):
    """Per-channel mean and biased variance of ``x`` (N, C, ...) over the batch and all positions."""
    return _BatchStats.apply(x.float())


def bn_distance(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """||running_var - var||_2 + ||running_mean - mean||_2 for a BatchNorm input ``x`` (N, C, ...): mean and
    biased variance over every dimension but the channels (DeepInversion, ``DeepInversionFeatureHook``)."""
    mean, var = batch_stats(x)
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
