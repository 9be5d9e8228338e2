"""Pictures of concepts and neurons for the site, made when the stage runs (the site never reads images):
concept maps over real images and mosaics of patches."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.mosaic import mosaic_png
from ..png import png_bytes


def concept_map_png(images: torch.Tensor, maps: np.ndarray, threshold: float, tile: int = 160) -> bytes:
    """A strip of images (n, 3, S, S) with one concept's map (n, h, w): the region at or above
    ``threshold`` (the class's percentile, CRAFT: 90th) in full colour and outlined, the rest dimmed."""
    n = images.shape[0]
    canvas = np.ones((tile, n * tile + (n - 1) * 4, 3), dtype=np.float32)
    for i in range(n):
        img = F.interpolate(images[i:i + 1].float(), size=(tile, tile), mode="bilinear", align_corners=False,
                            antialias=True)[0].permute(1, 2, 0).numpy()
        m = F.interpolate(torch.from_numpy(maps[i][None, None]).float(), size=(tile, tile), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
        inside = m >= threshold if threshold > 0 else m > 0
        out = np.where(inside[..., None], img, img * 0.25 + 0.05)
        edge = inside ^ np.roll(inside, 1, 0) | inside ^ np.roll(inside, 1, 1)
        out[edge] = (1.0, 0.85, 0.1)
        x0 = i * (tile + 4)
        canvas[:, x0:x0 + tile] = out
    return png_bytes(canvas)


def patch_mosaic(images: torch.Tensor, picks: Sequence[int], boxes: Sequence[tuple], patch: int,
                 cols: int = 5, tile: int = 64) -> bytes:
    """Mosaic of patches given as indices into the image-major patch grid of ``images`` (n, 3, S, S)."""
    per = len(boxes)
    crops = []
    for i in picks:
        y, x = boxes[i % per]
        crops.append(images[i // per, :, y:y + patch, x:x + patch])
    stack = torch.stack(crops) if crops else torch.ones(1, 3, patch, patch)
    return mosaic_png(stack.float(), cols=min(cols, max(1, len(crops))), tile=tile)
