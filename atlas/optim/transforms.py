"""Random transforms: plain functions ``(x, rng) -> x`` chained by :func:`compose` (lucid style).

The batch is ordered target-major: with K targets and n views each, view j of target k is row k * n + j.
Every transform draws its randomness per target from :class:`~atlas.optim.rng.TargetRNG`, so a target's
views do not depend on the other targets in the batch.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .rng import TargetRNG

Transform = Callable[[torch.Tensor, TargetRNG], torch.Tensor]


def compose(*transforms: Transform) -> Transform:
    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        for t in transforms:
            x = t(x, rng)
        return x

    return run


def identity(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
    return x


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, n: int, out_size: int) -> torch.Tensor:
    """Cut ``boxes`` (B * n, 4) = (x0, y0, x1, y1) in pixels out of image ``i // n`` and resize each to
    ``out_size`` (bilinear; antialiased when the crop is larger than ``out_size``).

    Integer slicing plus ``interpolate`` is about 8x faster on the CPU than ``roi_align`` (forward and
    backward), which matters because it runs on every step (bench/loop.py).
    """
    b = boxes.round().long().tolist()
    parts = []
    for i, (x0, y0, x1, y1) in enumerate(b):
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        crop = x[i // n : i // n + 1, :, y0:y1, x0:x1]
        shrink = (x1 - x0) > out_size or (y1 - y0) > out_size
        parts.append(F.interpolate(crop, size=(out_size, out_size), mode="bilinear", align_corners=False,
                                   antialias=shrink))
    return torch.cat(parts, 0)


def random_crops(
    n: int,
    out_size: int,
    size_mean: float = 0.25,
    size_std: float = 0.1,
    center_std: float = 0.15,
    size_range: tuple = (0.05, 1.0),
) -> Transform:
    """``n`` square crops per image, resized to ``out_size`` (MACO §4).

    Side (fraction of the image side) ~ N(size_mean, size_std) clipped to ``size_range``; centre ~
    0.5 + N(0, center_std) per axis, clipped so the box stays inside the image.
    """

    def crops(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        b, _, h, w = x.shape
        m = b // len(rng)  # images per target so far
        side = (rng.host.randn(m * n) * size_std + size_mean).clamp(*size_range)
        centre = rng.host.randn(m * n, 2) * center_std + 0.5
        half = side[:, None] / 2
        centre = torch.maximum(torch.minimum(centre, 1 - half), half)
        scale = torch.tensor([w, h], dtype=torch.float32)
        boxes = torch.cat([(centre - half) * scale, (centre + half) * scale], dim=1)
        return crop_resize(x, boxes, n, out_size)

    return crops


def box_crops(n: int, out_size: int, min_side: float = 0.05, max_side: float = 0.99) -> Transform:
    """``n`` crops per image with side ~ U(min_side, max_side) and a uniformly placed top-left corner
    (feature accentuation's ``box_crop``)."""

    def crops(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        b, _, h, w = x.shape
        m = b // len(rng)
        side = rng.host.rand(m * n) * (max_side - min_side) + min_side
        corner = rng.host.rand(m * n, 2) * (1 - side[:, None])
        scale = torch.tensor([w, h], dtype=torch.float32)
        boxes = torch.cat([corner * scale, (corner + side[:, None]) * scale], dim=1)
        return crop_resize(x, boxes, n, out_size)

    return crops


def resize(out_size: int) -> Transform:
    """Resize every image to ``out_size`` (bilinear, antialiased when shrinking)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if x.shape[-1] == out_size and x.shape[-2] == out_size:
            return x
        shrink = x.shape[-1] > out_size
        return F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=shrink)

    return run


def uniform_noise(amount: float) -> Transform:
    """Add U(-amount, amount) per pixel (MACO: amount 0.1)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if amount <= 0:
            return x
        m = x.shape[0] // len(rng)
        return x + (rng.rand(m, *x.shape[1:]).to(x.dtype) * 2 - 1) * amount

    return run


def gaussian_noise(std: float) -> Transform:
    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if std <= 0:
            return x
        m = x.shape[0] // len(rng)
        return x + rng.randn(m, *x.shape[1:]).to(x.dtype) * std

    return run


def jitter(limit: int) -> Transform:
    """Roll each image by integers in [-limit, limit] along both axes (DeepInversion/VITAL: 30 px)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if limit <= 0:
            return x
        k = len(rng)
        m = x.shape[0] // k
        shifts = rng.randint(-limit, limit + 1, 2 * m).tolist()  # host integers: no device sync
        parts = []
        for t in range(k):
            for j in range(m):
                dy, dx = shifts[t][2 * j], shifts[t][2 * j + 1]
                parts.append(torch.roll(x[t * m + j : t * m + j + 1], shifts=(dy, dx), dims=(2, 3)))
        return torch.cat(parts, 0)

    return run


def random_flip(p: float = 0.5) -> Transform:
    """Mirror each image left-right with probability ``p``."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        m = x.shape[0] // len(rng)
        flip = (rng.rand(m) < p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(-1), x)

    return run


def repeat(n: int) -> Transform:
    """Repeat every image ``n`` times (target-major), e.g. for an augmentation ensemble."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        return x.repeat_interleave(n, dim=0)

    return run


def clamp01() -> Transform:
    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        return x.clamp(0, 1)

    return run


def views_per_target(x: torch.Tensor, k: int) -> int:
    return x.shape[0] // k


def per_target(values: torch.Tensor, k: int) -> torch.Tensor:
    """Average per-view values (K * n, ...) into per-target values (K,)."""
    return values.reshape(k, -1).mean(dim=1)


__all__: Sequence[str] = [
    "Transform", "compose", "identity", "random_crops", "box_crops", "resize", "uniform_noise",
    "gaussian_noise", "jitter", "random_flip", "repeat", "clamp01", "per_target",
]
