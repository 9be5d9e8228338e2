"""Image parameterisations: a set of tensors to optimise and a function that renders (K, 3, H, W) in [0, 1].

* :class:`PixelParam` - raw pixels, optionally in the model's normalised space (VITAL, DeepInversion).
* :class:`FourierParam` - the full complex spectrum scaled by 1/f^decay (Olah et al. 2017).
* :class:`MacoParam` - only the phase; the magnitude is fixed to a natural-image spectrum (MACO §3).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np
import torch

from .color import recorrelate
from .rng import TargetRNG


class Parameterization:
    """Base class: ``params()`` are optimised; calling the object renders the images."""

    def params(self) -> List[torch.Tensor]:
        raise NotImplementedError

    def __call__(self) -> torch.Tensor:
        raise NotImplementedError

    def post_step(self) -> None:
        """Called after every optimiser step (e.g. to project onto the valid range)."""


def _standardize(x: torch.Tensor, dims: Sequence[int], eps: float = 1e-4) -> torch.Tensor:
    return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + eps)


def frequency_radius(h: int, w: int, device=None) -> torch.Tensor:
    """|f| for the rfft2 layout of an (h, w) image: (h, w // 2 + 1), in cycles per pixel."""
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class PixelParam(Parameterization):
    """Pixels. With ``mean``/``std`` given, the tensor lives in the model's normalised space (as in the
    DeepInversion and VITAL reference code, where lr = 1.0 refers to that space) and is clipped after each
    step to the range that maps back into [0, 1]."""

    def __init__(
        self,
        rng: TargetRNG,
        size: int,
        init_std: float = 1.0,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ):
        self.normalized = mean is not None
        device = rng.device
        self.mean = torch.tensor(mean or (0.5, 0.5, 0.5), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std or (1.0, 1.0, 1.0), device=device).view(1, 3, 1, 1)
        x = rng.randn(1, 3, size, size) * init_std
        if not self.normalized:
            x = (x + 0.5).clamp(0, 1)
        self.x = x.requires_grad_(True)

    def params(self):
        return [self.x]

    def __call__(self):
        if self.normalized:
            return self.x * self.std + self.mean
        return self.x

    @torch.no_grad()
    def post_step(self):
        lo, hi = (0 - self.mean) / self.std, (1 - self.mean) / self.std
        if not self.normalized:
            lo, hi = torch.zeros_like(lo), torch.ones_like(hi)
        self.x.copy_(torch.maximum(torch.minimum(self.x, hi), lo))


class FourierParam(Parameterization):
    """Olah et al. (2017) Fourier parameterisation: a complex spectrum z scaled by w = 1/max(f, 1/S)^decay.

    As in VITAL's Fourier baseline ("the same settings as MACO, only the initialisation changes"), the
    spectrum is standardised every step (horama's reading), so the MACO optimiser (NAdam, lr 1.0) applies
    unchanged: x = sigmoid(recorrelate(standardise(irfft2(standardise(z) * w)))).
    """

    def __init__(self, rng: TargetRNG, size: int, decay: float = 1.0, init_std: float = 1.0):
        f = frequency_radius(size, size, rng.device)
        self.scale = (1.0 / torch.clamp(f, min=1.0 / size) ** decay)[None, None] * math.sqrt(size * size)
        self.size = size
        self.re = (rng.randn(1, 3, size, size // 2 + 1) * init_std).requires_grad_(True)
        self.im = (rng.randn(1, 3, size, size // 2 + 1) * init_std).requires_grad_(True)

    def params(self):
        return [self.re, self.im]

    def __call__(self):
        z = torch.complex(self.re, self.im)
        z = z / (z.abs().square().mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)
        x = torch.fft.irfft2(z * self.scale, s=(self.size, self.size))
        x = _standardize(x, dims=(1, 2, 3))
        return torch.sigmoid(recorrelate(x))


class MacoParam(Parameterization):
    """MACO (Fel et al. 2023, §3 and Alg. 1): optimise the phase, keep the magnitude fixed.

    x = sigmoid(recorrelate(standardise(irfft2(r * exp(i * standardise(phi))))))

    ``magnitude`` is (3, H, W // 2 + 1), the natural-image spectrum estimated from the configured pool
    (``atlas.data.spectrum``). The phase starts as N(0, 1) (reference code).
    """

    def __init__(self, rng: TargetRNG, magnitude: np.ndarray | torch.Tensor, size: int):
        mag = torch.as_tensor(np.asarray(magnitude), dtype=torch.float32, device=rng.device)
        if mag.shape != (3, size, size // 2 + 1):
            raise ValueError(f"magnitude shape {tuple(mag.shape)} does not fit a {size}x{size} image")
        self.magnitude = mag[None]
        self.size = size
        self.phase = rng.randn(1, 3, size, size // 2 + 1).requires_grad_(True)

    def params(self):
        return [self.phase]

    def __call__(self):
        phase = _standardize(self.phase, dims=(1, 2, 3))
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = torch.fft.irfft2(spectrum, s=(self.size, self.size))
        x = _standardize(x, dims=(1, 2, 3))
        return torch.sigmoid(recorrelate(x))
