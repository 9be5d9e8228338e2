"""Image parameterisations: a set of tensors to optimise and a function that renders (K, C, H, W) in [0, 1].

C is the model's input channels (``channels``, default 3): a one-channel model's images are optimised in its
one channel (no colour decorrelation, :mod:`atlas.optim.color`), not as colour images it cannot see.

* :class:`PixelParam` - raw pixels, optionally in the model's normalised space (VITAL, DeepInversion).
* :class:`FourierParam` - the full complex spectrum scaled by 1/f^decay (Olah et al. 2017).
* :class:`MacoParam` - only the phase; the magnitude is fixed to a natural-image spectrum (MACO §3).
* :class:`FourierImage` - lucid / faccent's Fourier image, seeded from real images (feature accentuation) or
  started from noise, with an optional fourth channel for a mask (attribution visualization).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np
import torch

from .color import decorrelate, recorrelate
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


def spectrum_weights(size: int, decay: float, device=None) -> torch.Tensor:
    """w = 1 / max(|f|, 1/size)^decay on the rfft2 grid: (1, 1, size, size // 2 + 1)."""
    f = frequency_radius(size, size, device)
    return (1.0 / torch.clamp(f, min=1.0 / size) ** decay)[None, None]


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
        channels: Optional[int] = None,
    ):
        self.normalized = mean is not None
        device = rng.device
        channels = channels or (len(mean) if mean is not None else 3)
        self.mean = torch.tensor(mean or (0.5,) * channels, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std or (1.0,) * channels, device=device).view(1, -1, 1, 1)
        x = rng.randn(1, channels, size, size) * init_std
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

    def __init__(self, rng: TargetRNG, size: int, decay: float = 1.0, init_std: float = 1.0, channels: int = 3):
        self.scale = spectrum_weights(size, decay, rng.device) * math.sqrt(size * size)
        self.size = size
        self.re = (rng.randn(1, channels, size, size // 2 + 1) * init_std).requires_grad_(True)
        self.im = (rng.randn(1, channels, size, size // 2 + 1) * init_std).requires_grad_(True)

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

    ``magnitude`` is (C, H, W // 2 + 1), the natural-image spectrum estimated from the configured pool in the
    model's C channels (``atlas.data.spectrum``). The phase starts as N(0, 1) and is standardised every step (reference code).

    ``phase_offset="random"`` adds a fixed phase theta ~ U(-pi, pi), drawn once per target, to every
    coefficient: r * exp(i * (standardise(phi) + theta)). Without it (``"zero"``, the reference code) the
    standardised phases stay near 0 (std 1), so every frequency adds up in phase at pixel (0, 0): a spike
    of sum_k r_k * E[cos(phi_k)] ~ 0.6 * sum_k r_k that wraps around into the image's corners (36 standard
    deviations on the bundled pool's 224-px spectrum, whose slope is -1.4; the pixels elsewhere stay
    within 2.2). theta makes the phases incoherent at every pixel; the image space reached is the same
    (the phase is any value modulo 2 pi), only the start and the point where phase 0 sits move.
    """

    def __init__(self, rng: TargetRNG, magnitude: np.ndarray | torch.Tensor, size: int,
                 phase_offset: str = "zero"):
        mag = torch.as_tensor(np.asarray(magnitude), dtype=torch.float32, device=rng.device)
        if mag.dim() != 3 or mag.shape[1:] != (size, size // 2 + 1):
            raise ValueError(f"magnitude shape {tuple(mag.shape)} does not fit a {size}x{size} image")
        self.magnitude = mag[None]
        self.size = size
        self.phase = rng.randn(1, mag.shape[0], size, size // 2 + 1).requires_grad_(True)
        if phase_offset == "random":
            self.offset = (rng.rand(1, mag.shape[0], size, size // 2 + 1) * 2 - 1) * math.pi
        elif phase_offset == "zero":
            self.offset = None
        else:
            raise ValueError(f"phase_offset is 'random' or 'zero', not {phase_offset!r}")

    def params(self):
        return [self.phase]

    def __call__(self):
        phase = _standardize(self.phase, dims=(1, 2, 3))
        if self.offset is not None:
            phase = phase + self.offset
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = torch.fft.irfft2(spectrum, s=(self.size, self.size))
        x = _standardize(x, dims=(1, 2, 3))
        return torch.sigmoid(recorrelate(x))


class FourierImage(Parameterization):
    """A (K, C, S, S) Fourier image; channels 0-2 are colour (decorrelated space), channel 3 (if any) a mask.

    x = sigmoid(recorrelate(irfft2(z * w, norm="ortho") / desaturation)),  w = 1 / max(|f|, 1/S)^decay

    Use :meth:`seeded` to reproduce real images at step 0, or :meth:`noise` for lucid's random start
    (complex normal coefficients with std ``sd``). Seeding inverts every step (faccent ``img_to_params``):
    z = rfft2(desaturation * decorrelate(logit(x0)), norm="ortho") / w, so step 0 renders the seed image
    exactly (up to the logit's clipping at ``eps``) - feature-accentuation paper §2.2 ("we initialize
    optimization with a target image x0"). With a fourth channel the same spectrum also carries attribution
    visualization's mask, M = sigmoid(channel 4) (reference/07_attrvis.md: a 4-channel Lucid ``fft_image``).
    """

    def __init__(self, re: torch.Tensor, im: torch.Tensor, size: int, decay: float = 1.0,
                 desaturation: float = 5.0, colors: int = 3):
        self.size = size
        self.colors = colors  # image channels; a further channel (if any) is the mask
        self.decay = decay
        self.desaturation = desaturation
        self.weights = spectrum_weights(size, decay, re.device)
        self.re = re.detach().clone().requires_grad_(True)
        self.im = im.detach().clone().requires_grad_(True)

    @classmethod
    def seeded(cls, images: torch.Tensor, decay: float = 1.0, desaturation: float = 5.0,
               eps: float = 1e-6, mask: torch.Tensor | None = None) -> "FourierImage":
        """Start from ``images`` (K, C, S, S) in [0, 1]: the first render equals them (and ``mask``
        (K, 1, S, S) in (0, 1), if given, is the extra channel's first mask)."""
        size, colors = images.shape[-1], images.shape[1]
        x = images.double().clamp(eps, 1 - eps)
        x = decorrelate(torch.log(x) - torch.log1p(-x)) * desaturation
        if mask is not None:
            m = mask.to(x).clamp(eps, 1 - eps)
            x = torch.cat([x, (torch.log(m) - torch.log1p(-m)) * desaturation], 1)
        z = torch.fft.rfft2(x, norm="ortho") / spectrum_weights(size, decay, images.device).double()
        return cls(z.real.float(), z.imag.float(), size, decay, desaturation, colors)

    def with_mask(self, mask_mean: torch.Tensor) -> "FourierImage":
        """A copy with a fourth channel whose mask starts uniform at ``mask_mean`` (K,): only the DC
        coefficient is set, to S * desaturation * logit(mean) (``norm="ortho"``: mean = z_dc / S)."""
        k = self.re.shape[0]
        m = mask_mean.to(self.re.device, torch.float64).clamp(1e-4, 1 - 1e-4).view(k)
        dc = (torch.log(m) - torch.log1p(-m)) * self.desaturation * self.size / self.weights[0, 0, 0, 0].double()
        extra = torch.zeros(k, 1, *self.re.shape[2:], device=self.re.device)
        extra[:, 0, 0, 0] = dc.float()
        re = torch.cat([self.re.detach(), extra], 1)
        im = torch.cat([self.im.detach(), torch.zeros_like(extra)], 1)
        return FourierImage(re, im, self.size, self.decay, self.desaturation, self.colors)

    @classmethod
    def noise(cls, rng: TargetRNG, size: int, channels: int = 3, sd: float = 0.01, decay: float = 1.0,
              desaturation: float = 4.0) -> "FourierImage":
        """lucid's random start: real and imaginary parts ~ N(0, sd^2), one draw per target."""
        shape = (1, channels, size, size // 2 + 1)
        return cls(rng.randn(*shape) * sd, rng.randn(*shape) * sd, size, decay, desaturation, channels)

    def params(self):
        return [self.re, self.im]

    def raw(self) -> torch.Tensor:
        """(K, C, S, S) before colour and sigmoid."""
        z = torch.complex(self.re, self.im) * self.weights
        return torch.fft.irfft2(z, s=(self.size, self.size), norm="ortho") / self.desaturation

    def rgb(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.raw() if raw is None else raw
        return torch.sigmoid(recorrelate(raw[:, :self.colors]))

    def mask(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        """(K, 1, S, S) in [0, 1] from the channel after the image's."""
        raw = self.raw() if raw is None else raw
        return torch.sigmoid(raw[:, self.colors:self.colors + 1])

    def __call__(self) -> torch.Tensor:
        return self.rgb()
