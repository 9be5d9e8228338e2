"""Mosaics: a grid of small images on a white canvas (a neuron's dataset examples, a concept's patches, the
reference images VITAL matched)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..png import png_bytes


def mosaic(images: torch.Tensor, cols: int = 5, tile: int = 64) -> np.ndarray:
    """(rows * tile, cols * tile, 3) float32 array in [0, 1]: ``images`` (n, 3, H, W) in [0, 1], each resized
    to ``tile`` x ``tile`` (bilinear, antialiased), row by row; cells past the last image stay white."""
    x = images.float().cpu()
    n = x.shape[0]
    rows = max(1, -(-n // cols))
    small = F.interpolate(x, size=(tile, tile), mode="bilinear", align_corners=False, antialias=True)
    canvas = np.ones((rows * tile, cols * tile, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = small[i].permute(1, 2, 0).numpy()
    return np.clip(canvas, 0, 1)


def mosaic_png(images: torch.Tensor, cols: int = 5, tile: int = 64) -> bytes:
    """:func:`mosaic` as PNG bytes (values truncated to bytes, as these pictures always were)."""
    return png_bytes(mosaic(images, cols, tile), rounding="floor")
