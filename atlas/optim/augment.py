"""Transforms and a parameterisation for the data-free inversion methods (DeepInversion, Plug-In Inversion).

Transforms follow :mod:`atlas.optim.transforms`: ``(x, rng) -> x`` on a target-major batch, randomness
drawn per target from :class:`~atlas.optim.rng.TargetRNG`.

* :func:`avg_pool` - DeepInversion's half-resolution stage (``AvgPool2d(2)`` of the full image).
* :func:`color_shift` - Plug-In Inversion's ColorShift: (x - mu) / sigma with a random per-channel shift
  mu ~ U(-a, a) and scale sigma = exp(U(-b, b)), redrawn for every view at every step.
* :class:`DecayingChannelNoise` - a random per-channel offset N(0, std^2) that decays linearly to 0 over the
  run (the noise of the PII authors' code, ``GaussianNoise``).
* :class:`CanvasParam` - pixels in [0, 1] from a given start image, clipped after each step; with
  :func:`grow_canvas` (the previous image at the centre of a larger canvas of fresh noise) it makes PII's
  progressive centring + zoom.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .param import Parameterization
from .rng import TargetRNG
from .transforms import Transform


def avg_pool(factor: int = 2) -> Transform:
    """Average-pool every image by ``factor`` (DeepInversion's multi-resolution first stage)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        return F.avg_pool2d(x, factor) if factor > 1 else x

    return run


def color_shift(shift: float = 1.0, scale: float = 1.0) -> Transform:
    """ColorShift (Plug-In Inversion): per view and channel, (x - mu) / sigma with mu ~ U(-shift, shift) and
    sigma = exp(U(-scale, scale)); new draws at every call."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if shift <= 0 and scale <= 0:
            return x
        m, c = x.shape[0] // len(rng), x.shape[1]
        u = rng.rand(m, 2, c).to(x.dtype).view(-1, 2, c, 1, 1)
        mu = (u[:, 0] * 2 - 1) * shift
        sigma = ((u[:, 1] * 2 - 1) * scale).exp()
        return (x - mu) / sigma

    return run


class DecayingChannelNoise:
    """A transform adding a per-view, per-channel constant N(0, 1) * std * (1 - t / steps) at its t-th call.

    It counts its own calls (one per optimisation step), so make one per optimisation run.
    """

    def __init__(self, std: float, steps: int):
        self.std = float(std)
        self.steps = max(int(steps), 1)
        self.calls = 0

    def __call__(self, x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        amount = self.std * max(0.0, 1.0 - self.calls / self.steps)
        self.calls += 1
        if amount <= 0:
            return x
        m, c = x.shape[0] // len(rng), x.shape[1]
        return x + rng.randn(m, c).to(x.dtype).view(-1, c, 1, 1) * amount


class CanvasParam(Parameterization):
    """Pixels in [0, 1], starting from ``start`` (K, C, H, W); clipped to [0, 1] after every step."""

    def __init__(self, start: torch.Tensor):
        self.x = start.detach().clone().clamp(0, 1).requires_grad_(True)

    def params(self):
        return [self.x]

    def __call__(self):
        return self.x

    @torch.no_grad()
    def post_step(self):
        self.x.clamp_(0, 1)


def grow_canvas(previous: torch.Tensor | None, size: int, rng: TargetRNG, scale: float = 1.0,
                channels: int = 3) -> torch.Tensor:
    """A ``size`` x ``size`` canvas of U[0, scale) noise per target with ``previous`` (K, C, h, w), h <= size,
    pasted at its centre (``previous=None``: noise only, ``channels`` channels; ``scale=0``: zeros)."""
    channels = previous.shape[1] if previous is not None else channels
    canvas = rng.rand(1, channels, size, size) * scale
    if previous is None:
        return canvas
    h, w = previous.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot paste a {h}x{w} image into a {size}x{size} canvas")
    top, left = (size - h) // 2, (size - w) // 2
    canvas[:, :, top:top + h, left:left + w] = previous.to(canvas.device)
    return canvas


def zoom_canvas(previous: torch.Tensor, size: int) -> torch.Tensor:
    """``previous`` (K, C, h, w) upsampled (bilinear) to ``size`` x ``size``: the next, finer canvas."""
    return F.interpolate(previous, size=(size, size), mode="bilinear", align_corners=False)


def resize_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Maps (K, h, w) resized (bilinear) to (K, size, size), as :func:`zoom_canvas` resizes images."""
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def paste_center(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad maps (K, h, w) to (K, size, size), centred as :func:`grow_canvas` places images."""
    h, w = maps.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(maps, (left, size - w - left, top, size - h - top))
