"""The fractal noise pyramid of attribution visualization (§3.4, eq. 12-14).

Level d = 0..D: complex coefficients with real and imaginary parts ~ N(0, (0.2 - d / (20 D))^2), scaled by
alpha * F^(-p/2) with p = 3 - d / D (Brownian-like at d = 0, pink at d = D), inverse FFT, colour
decorrelation (§4: "SVD color decorrelation", lucid's matrix) and a sigmoid to pixel values. The pyramid
holds D + 1 progressively weaker noise images; a pixel whose mask value is m takes its noise from level
floor(m (D + 1)) (eq. 14: the mask range is cut into D + 1 intervals), so a fully masked pixel gets the
strongest, most correlated noise. A fresh pyramid is drawn at every step.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .color import recorrelate
from .param import frequency_radius
from .rng import TargetRNG


def level_exponent(d: int, levels: int) -> float:
    """p = 3 - d / D."""
    return 3.0 - d / levels


def level_std(d: int, levels: int) -> float:
    """The coefficients' standard deviation 0.2 - d / (20 D)."""
    return 0.2 - d / (20.0 * levels)


def default_alpha(size: int) -> float:
    """alpha "selected based on the image size" (§3.4): 2 / sqrt(S) keeps the strongest level's pixels
    at a standard deviation of about 1.5 before the sigmoid at any size (our choice)."""
    return 2.0 / math.sqrt(size)


def linear_pyramid(rng: TargetRNG, size: int, levels: int = 5, alpha: Optional[float] = None,
                   channels: int = 3) -> torch.Tensor:
    """(K, D + 1, C, S, S): the pyramid before colour and sigmoid (its spectra fall off as F^(-p/2))."""
    alpha = default_alpha(size) if alpha is None else alpha
    f = frequency_radius(size, size, rng.device).clamp(min=1.0 / size)
    out = []
    shape = (1, levels + 1, channels, size, size // 2 + 1)
    re, im = rng.randn(*shape), rng.randn(*shape)
    for d in range(levels + 1):
        scale = alpha * level_std(d, levels) * f.pow(-level_exponent(d, levels) / 2)
        z = torch.complex(re[:, d], im[:, d]) * scale
        out.append(torch.fft.irfft2(z, s=(size, size), norm="ortho"))
    return torch.stack(out, 1)


def finish_noise(lin: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) linear noise -> pixel values in [0, 1]: colour recorrelation (RGB) and a sigmoid, both
    per pixel."""
    return torch.sigmoid(recorrelate(lin))


def fractal_pyramid(rng: TargetRNG, size: int, levels: int = 5, alpha: Optional[float] = None,
                    channels: int = 3) -> torch.Tensor:
    """(K, D + 1, C, S, S) noise images in [0, 1] (C: the model's channels; colour-decorrelated for RGB)."""
    lin = linear_pyramid(rng, size, levels, alpha, channels)
    return finish_noise(lin.flatten(0, 1)).view_as(lin)


def compose(x: torch.Tensor, mask: torch.Tensor, pyramid: torch.Tensor,
            finish: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Eq. (14): M * X + (1 - M) * B(level(M)); x (K, C, S, S), mask (K, 1, S, S), pyramid (K, D+1, C, S, S).

    ``finish``: applied to the noise each pixel takes (a per-pixel map, e.g. :func:`finish_noise` on
    :func:`linear_pyramid`'s levels). Every channel of a pixel comes from one level, so finishing the chosen
    noise equals choosing from the finished pyramid, at 1 / (D + 1) of the cost (the loop draws a fresh
    pyramid at every step)."""
    levels = pyramid.shape[1]
    idx = (mask.detach() * levels).long().clamp(0, levels - 1)  # (K, 1, S, S)
    noise = pyramid.gather(1, idx[:, None].expand(-1, 1, x.shape[1], -1, -1))[:, 0]
    if finish is not None:
        noise = finish(noise)
    return mask * x + (1 - mask) * noise
