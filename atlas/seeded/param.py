"""The Fourier image of lucid / faccent, seeded from a real image or started from noise.

x = sigmoid(recorrelate(irfft2(z * w, norm="ortho") / desaturation)),  w = 1 / max(|f|, 1/S)^decay

Seeding inverts every step (faccent ``img_to_params``): z = rfft2(desaturation * decorrelate(logit(x0)),
norm="ortho") / w, so step 0 renders the seed image exactly (up to the logit's clipping at ``eps``) -
feature-accentuation paper §2.2 ("we initialize optimization with a target image x0"). With a fourth
channel the same spectrum also carries attribution visualization's mask, M = sigmoid(channel 4)
(reference/07_attrvis.md: a 4-channel Lucid ``fft_image``).
"""
from __future__ import annotations

import torch

from ..optim.color import decorrelate, recorrelate
from ..optim.param import Parameterization, frequency_radius
from ..optim.rng import TargetRNG


def spectrum_weights(size: int, decay: float, device=None) -> torch.Tensor:
    """w = 1 / max(|f|, 1/size)^decay on the rfft2 grid: (1, 1, size, size // 2 + 1)."""
    f = frequency_radius(size, size, device)
    return (1.0 / torch.clamp(f, min=1.0 / size) ** decay)[None, None]


class FourierImage(Parameterization):
    """A (K, C, S, S) Fourier image; channels 0-2 are colour (decorrelated space), channel 3 (if any) a mask.

    Use :meth:`seeded` to reproduce real images at step 0, or :meth:`noise` for lucid's random start
    (complex normal coefficients with std ``sd``).
    """

    def __init__(self, re: torch.Tensor, im: torch.Tensor, size: int, decay: float = 1.0,
                 desaturation: float = 5.0):
        self.size = size
        self.decay = decay
        self.desaturation = desaturation
        self.weights = spectrum_weights(size, decay, re.device)
        self.re = re.detach().clone().requires_grad_(True)
        self.im = im.detach().clone().requires_grad_(True)

    @classmethod
    def seeded(cls, images: torch.Tensor, decay: float = 1.0, desaturation: float = 5.0,
               eps: float = 1e-6, mask: torch.Tensor | None = None) -> "FourierImage":
        """Start from ``images`` (K, 3, S, S) in [0, 1]: the first render equals them (and ``mask``
        (K, 1, S, S) in (0, 1), if given, is the fourth channel's first mask)."""
        size = images.shape[-1]
        x = images.double().clamp(eps, 1 - eps)
        x = decorrelate(torch.log(x) - torch.log1p(-x)) * desaturation
        if mask is not None:
            m = mask.to(x).clamp(eps, 1 - eps)
            x = torch.cat([x, (torch.log(m) - torch.log1p(-m)) * desaturation], 1)
        z = torch.fft.rfft2(x, norm="ortho") / spectrum_weights(size, decay, images.device).double()
        return cls(z.real.float(), z.imag.float(), size, decay, desaturation)

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
        return FourierImage(re, im, self.size, self.decay, self.desaturation)

    @classmethod
    def noise(cls, rng: TargetRNG, size: int, channels: int = 3, sd: float = 0.01, decay: float = 1.0,
              desaturation: float = 4.0) -> "FourierImage":
        """lucid's random start: real and imaginary parts ~ N(0, sd^2), one draw per target."""
        shape = (1, channels, size, size // 2 + 1)
        return cls(rng.randn(*shape) * sd, rng.randn(*shape) * sd, size, decay, desaturation)

    def params(self):
        return [self.re, self.im]

    def raw(self) -> torch.Tensor:
        """(K, C, S, S) before colour and sigmoid."""
        z = torch.complex(self.re, self.im) * self.weights
        return torch.fft.irfft2(z, s=(self.size, self.size), norm="ortho") / self.desaturation

    def rgb(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.raw() if raw is None else raw
        return torch.sigmoid(recorrelate(raw[:, :3]))

    def mask(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        """(K, 1, S, S) in [0, 1] from the fourth channel."""
        raw = self.raw() if raw is None else raw
        return torch.sigmoid(raw[:, 3:4])

    def __call__(self) -> torch.Tensor:
        return self.rgb()
