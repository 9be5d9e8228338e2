"""Colour decorrelation (Olah et al. 2017, lucid): the ImageNet colour-correlation square root.

``C`` is lucid's 3x3 matrix; normalised by its largest column norm (0.4619) it equals the matrix that
horama and xplique hard-code (reference/01_maco_fourier.md). Parameterisations work in decorrelated colour
space and :func:`recorrelate` maps back to RGB before the sigmoid.
"""
from __future__ import annotations

import torch

_C = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64)
COLOR_CORRELATION = (_C / _C.norm(dim=0).max()).float()
COLOR_DECORRELATION = torch.linalg.inv(COLOR_CORRELATION.double()).float()


def recorrelate(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in decorrelated space -> correlated (RGB-like) space; images of other channel counts (a
    one-channel model's) have no colour to correlate and pass unchanged."""
    if x.shape[1] != 3:
        return x
    m = COLOR_CORRELATION.to(x.device, x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)


def decorrelate(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`recorrelate`."""
    if x.shape[1] != 3:
        return x
    m = COLOR_DECORRELATION.to(x.device, x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)
