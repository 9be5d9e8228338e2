"""The two image-seeded methods' augmentations (plain ``(x, rng) -> views`` transforms, lucid style).

* :class:`PairedCrops` - feature accentuation (§2.3, Appendix A): ``n`` box crops with side ~ U(min, max)
  and a uniformly placed corner, resized to the model input, plus Gaussian and uniform pixel noise; the
  *same* crops and noise are applied to the seed image (Def. 2.1: f_l(tau(F^-1(z))) vs f_l(tau(x0))).
* :func:`affine_views` - attribution visualization (§4): pad 12, jitter 9, scale 0.9-1.3, rotate +-12 deg,
  shear +-4 deg, jitter 4, crop/pad back to size, reflection padding - composed into one affine map per
  view and applied with a single ``grid_sample`` (reflection padding stands in for the explicit pad).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..optim.rng import TargetRNG
from ..optim.transforms import crop_resize


class PairedCrops:
    """Crops + noise of the optimised images, with identical crops + noise of their seeds.

    Calling it returns the image views (K * n, 3, S, S); ``seed_views`` then holds the matching views of
    the seed images (no gradient). One instance serves one optimisation run.
    """

    def __init__(self, seeds: torch.Tensor, n: int, out_size: int, min_side: float = 0.05,
                 max_side: float = 0.99, noise: float = 0.02):
        self.seeds = seeds.detach()
        self.n, self.out_size, self.min_side, self.max_side, self.noise = n, out_size, min_side, max_side, noise
        self.seed_views: Optional[torch.Tensor] = None

    def boxes(self, h: int, w: int, rng: TargetRNG) -> torch.Tensor:
        """(K * n, 4) boxes, n per target from the target's own generator."""
        side = rng.host.rand(self.n) * (self.max_side - self.min_side) + self.min_side
        corner = rng.host.rand(self.n, 2) * (1 - side[:, None])
        scale = torch.tensor([w, h], dtype=torch.float32)
        return torch.cat([corner * scale, (corner + side[:, None]) * scale], dim=1)

    def __call__(self, x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        boxes = self.boxes(x.shape[-2], x.shape[-1], rng)
        views = crop_resize(x, boxes, self.n, self.out_size)
        with torch.no_grad():
            seed_views = crop_resize(self.seeds.to(x.device, x.dtype), boxes, self.n, self.out_size)
        if self.noise > 0:
            shape = (self.n, 3, self.out_size, self.out_size)
            noise = (rng.randn(*shape) * self.noise + (rng.rand(*shape) - 0.5) * self.noise).to(x.dtype)
            views = views + noise
            seed_views = seed_views + noise
        self.seed_views = seed_views
        return views


def affine_views(n: int, jitter1: int = 9, scale=(0.9, 1.3), rotate: float = 12.0,
                 shear: float = 4.0, jitter2: int = 4):
    """``n`` randomly transformed views per image at the image's own size (attribution visualization §4).

    The paper's "pad 12" only supplies content beyond the border for the later jitter, scaling and
    rotation; sampling with reflection padding supplies the same content, so no explicit pad is needed.
    """

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        k = len(rng)
        b, c, h, w = x.shape
        m = b // k * n
        u = rng.host.rand(m, 7)
        shift_px = (u[:, 0:2] - 0.5) * jitter1 + (u[:, 2:4] - 0.5) * jitter2  # both jitters, in pixels
        s = scale[0] + u[:, 4] * (scale[1] - scale[0])
        theta = torch.deg2rad((u[:, 5] * 2 - 1) * rotate)
        phi = torch.deg2rad((u[:, 6] * 2 - 1) * shear)
        # output -> input map in normalised coordinates: inverse of (scale * rotate * shear), then shift
        cos, sin, tan = torch.cos(theta), torch.sin(theta), torch.tan(phi)
        a11, a12 = cos, -sin + cos * tan
        a21, a22 = sin, cos + sin * tan
        det = a11 * a22 - a12 * a21
        inv = torch.stack([torch.stack([a22, -a12], -1), torch.stack([-a21, a11], -1)], -2) / (det * s)[:, None, None]
        t = torch.stack([shift_px[:, 0] * 2 / w, shift_px[:, 1] * 2 / h], -1)
        mat = torch.cat([inv, t[:, :, None]], dim=2).to(x.device, x.dtype)
        src = x.repeat_interleave(n, dim=0)
        grid = F.affine_grid(mat, list(src.shape), align_corners=False)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return run
