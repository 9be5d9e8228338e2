"""Masks from attribution maps.

* :func:`collective_normalize` - feature-accentuation paper, Appendix C, eq. (1): every map of a set X is
  normalised with the percentiles (p1, p2) of *all* values of the set, so that an image whose map is weak
  compared with the others stays masked (§2.4, Fig. 7) instead of being stretched to full range.
* :func:`otsu_threshold` / :func:`otsu_beta` - attribution visualization eq. (6)-(8): the mask's area
  ratio beta = mean(H > T*), T* maximising the between-class variance over 200 bins spanning [min H, max H].
"""
from __future__ import annotations

from typing import Tuple

import torch


def collective_normalize(maps: torch.Tensor, percentiles: Tuple[float, float] = (50.0, 99.0)) -> torch.Tensor:
    """Eq. (1): 0 below P(v, p1), 1 above P(v, p2), linear in between; v = every value of ``maps``."""
    p1, p2 = float(percentiles[0]), float(percentiles[1])
    if not 0.0 <= p1 < p2 <= 100.0:
        raise ValueError(f"mask percentiles must satisfy 0 <= p1 < p2 <= 100, got ({p1}, {p2})")
    v = maps.detach().flatten().float()
    if v.numel() > 8_000_000:  # torch.quantile's size limit: a deterministic subsample is as good
        v = v[:: v.numel() // 8_000_000 + 1]
    lo, hi = torch.quantile(v, torch.tensor([p1 / 100.0, p2 / 100.0], device=v.device)).tolist()
    if hi <= lo:
        return (maps > lo).to(maps.dtype)
    return ((maps - lo) / (hi - lo)).clamp(0, 1)


def gaussian_kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """The normalised 1-D Gaussian of std ``sigma`` pixels over +-3 sigma (at least +-1), in ``like``'s dtype
    and device: (2r + 1,)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=like.dtype, device=like.device) / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (N, H, W) maps with a separable Gaussian of std ``sigma`` pixels (reflection at the border)."""
    if sigma <= 0:
        return maps
    k = gaussian_kernel(sigma, maps)
    r = k.numel() // 2
    x = torch.nn.functional.pad(maps[:, None], (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))[:, 0]


def otsu_threshold(values: torch.Tensor, bins: int = 200) -> float:
    """Otsu's threshold T* of ``values`` with ``bins`` bins between their minimum and maximum (eq. 7)."""
    v = values.detach().flatten().double()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist = torch.histc(v, bins=bins, min=lo, max=hi)
    p = hist / hist.sum()
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    w0 = torch.cumsum(p, 0)
    w1 = 1 - w0
    m0 = torch.cumsum(p * centres, 0)
    mu0 = m0 / w0.clamp(min=1e-12)
    mu1 = (m0[-1] - m0) / w1.clamp(min=1e-12)
    between = w0 * w1 * (mu0 - mu1) ** 2
    between[-1] = -1  # the last split leaves group 1 empty
    k = int(torch.argmax(between))
    return lo + (k + 1) * (hi - lo) / bins  # upper edge of the last bin of group 0


def otsu_beta(heatmap: torch.Tensor, bins: int = 200) -> float:
    """Eq. (8): the fraction of the map above Otsu's threshold - the mask's target mean, in (0, 1)."""
    t = otsu_threshold(heatmap, bins)
    beta = float((heatmap > t).double().mean())
    n = heatmap.numel()
    return min(max(beta, 1.0 / n), 1.0 - 1.0 / n)
