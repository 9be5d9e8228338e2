"""Random transforms: plain functions ``(x, rng) -> x`` chained by :func:`compose` (lucid style).

The batch is ordered target-major: with K targets and n views each, view j of target k is row k * n + j.
Every transform draws its randomness per target from :class:`~atlas.optim.rng.TargetRNG`, so a target's
views do not depend on the other targets in the batch.

The image-seeded methods' augmentations:

* :class:`PairedCrops` - feature accentuation (§2.3, Appendix A): ``n`` box crops with side ~ U(min, max)
  and a uniformly placed corner, resized to the model input, plus Gaussian and uniform pixel noise; the
  *same* crops and noise are applied to the seed image (Def. 2.1: f_l(tau(F^-1(z))) vs f_l(tau(x0))).
* :func:`affine_views` - attribution visualization (§4): pad 12, jitter 9, scale 0.9-1.3, rotate +-12 deg,
  shear +-4 deg, jitter 4, crop/pad back to size, reflection padding - composed into one affine map per
  view and applied with a single ``grid_sample`` (reflection padding stands in for the explicit pad).

Olah et al.'s Fourier baseline as MACO's benchmark ran it: :func:`standard_robustness` - "all 10
transformations set from the Lucid library" (MACO §4, via Xplique's implementation).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .masks import gaussian_kernel
from .rng import TargetRNG

Transform = Callable[[torch.Tensor, TargetRNG], torch.Tensor]


def compose(*transforms: Transform) -> Transform:
    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        for t in transforms:
            x = t(x, rng)
        return x

    return run


def identity(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
    return x


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, n: int, out_size: int) -> torch.Tensor:
    """Cut ``boxes`` (B * n, 4) = (x0, y0, x1, y1) in pixels out of image ``i // n`` and resize each to
    ``out_size`` (bilinear; antialiased when the crop is larger than ``out_size``).

    Integer slicing plus ``interpolate`` is about 8x faster on the CPU than ``roi_align`` (forward and
    backward), which matters because it runs on every step (bench/loop.py).
    """
    b = boxes.round().long().tolist()
    parts = []
    for i, (x0, y0, x1, y1) in enumerate(b):
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        crop = x[i // n : i // n + 1, :, y0:y1, x0:x1]
        shrink = (x1 - x0) > out_size or (y1 - y0) > out_size
        parts.append(F.interpolate(crop, size=(out_size, out_size), mode="bilinear", align_corners=False,
                                   antialias=shrink))
    return torch.cat(parts, 0)


def random_crops(
    n: int,
    out_size: int,
    size_mean: float = 0.25,
    size_std: float = 0.1,
    center_std: float = 0.15,
    size_range: tuple = (0.05, 1.0),
) -> Transform:
    """``n`` square crops per image, resized to ``out_size`` (MACO §4).

    Side (fraction of the image side) ~ N(size_mean, size_std) clipped to ``size_range``; centre ~
    0.5 + N(0, center_std) per axis, clipped so the box stays inside the image.
    """

    def crops(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        b, _, h, w = x.shape
        m = b // len(rng)  # images per target so far
        side = (rng.host.randn(m * n) * size_std + size_mean).clamp(*size_range)
        centre = rng.host.randn(m * n, 2) * center_std + 0.5
        half = side[:, None] / 2
        centre = torch.maximum(torch.minimum(centre, 1 - half), half)
        scale = torch.tensor([w, h], dtype=torch.float32)
        boxes = torch.cat([(centre - half) * scale, (centre + half) * scale], dim=1)
        return crop_resize(x, boxes, n, out_size)

    return crops


def uniform_boxes(rng: TargetRNG, count: int, h: int, w: int, min_side: float, max_side: float) -> torch.Tensor:
    """(K * count, 4) square boxes (x0, y0, x1, y1) in pixels, ``count`` per target from its own generator:
    side ~ U(min_side, max_side) as a fraction of the image side, top-left corner uniform inside the image."""
    side = rng.host.rand(count) * (max_side - min_side) + min_side
    corner = rng.host.rand(count, 2) * (1 - side[:, None])
    scale = torch.tensor([w, h], dtype=torch.float32)
    return torch.cat([corner * scale, (corner + side[:, None]) * scale], dim=1)


def box_crops(n: int, out_size: int, min_side: float = 0.05, max_side: float = 0.99) -> Transform:
    """``n`` crops per image with side ~ U(min_side, max_side) and a uniformly placed top-left corner
    (feature accentuation's ``box_crop``)."""

    def crops(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        b, _, h, w = x.shape
        boxes = uniform_boxes(rng, b // len(rng) * n, h, w, min_side, max_side)
        return crop_resize(x, boxes, n, out_size)

    return crops


def resize(out_size: int) -> Transform:
    """Resize every image to ``out_size`` (bilinear, antialiased when shrinking)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if x.shape[-1] == out_size and x.shape[-2] == out_size:
            return x
        shrink = x.shape[-1] > out_size
        return F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=shrink)

    return run


def uniform_noise(amount: float) -> Transform:
    """Add U(-amount, amount) per pixel (MACO: amount 0.1)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if amount <= 0:
            return x
        m = x.shape[0] // len(rng)
        return x + (rng.rand(m, *x.shape[1:]).to(x.dtype) * 2 - 1) * amount

    return run


def jitter(limit: int) -> Transform:
    """Roll each image by integers in [-limit, limit] along both axes (DeepInversion/VITAL: 30 px)."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        if limit <= 0:
            return x
        k = len(rng)
        m = x.shape[0] // k
        shifts = rng.randint(-limit, limit + 1, 2 * m).tolist()  # host integers: no device sync
        parts = []
        for t in range(k):
            for j in range(m):
                dy, dx = shifts[t][2 * j], shifts[t][2 * j + 1]
                parts.append(torch.roll(x[t * m + j : t * m + j + 1], shifts=(dy, dx), dims=(2, 3)))
        return torch.cat(parts, 0)

    return run


def random_flip(p: float = 0.5) -> Transform:
    """Mirror each image left-right with probability ``p``."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        m = x.shape[0] // len(rng)
        flip = (rng.rand(m) < p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(-1), x)

    return run


def repeat(n: int) -> Transform:
    """Repeat every image ``n`` times (target-major), e.g. for an augmentation ensemble."""

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        return x.repeat_interleave(n, dim=0)

    return run


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

    def __call__(self, x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        boxes = uniform_boxes(rng, self.n, x.shape[-2], x.shape[-1], self.min_side, self.max_side)
        views = crop_resize(x, boxes, self.n, self.out_size)
        with torch.no_grad():
            seed_views = crop_resize(self.seeds.to(x.device, x.dtype), boxes, self.n, self.out_size)
        if self.noise > 0:
            shape = (self.n, x.shape[1], self.out_size, self.out_size)
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


def standard_robustness(out_size: int) -> Transform:
    """Lucid's standard transformations in Xplique's sequence - the set MACO's Table 1-2 Fourier baseline used
    (MACO §4: "we used all 10 transformations set from the Lucid library ... available in the Xplique
    library"; reference/01_maco_fourier.md): with u = side // 16, pad 4u with black; random crops ("jitter")
    shrinking the side by 2u, 2u, 4u, 4u, 4u, each at an offset uniform in [0, shrink]; rescale by
    U(0.92, 0.96); Gaussian blur with sigma U(1.0, 1.1) pixels; two more jitters of u; a left-right flip
    with probability 1/2; then resize to ``out_size``. Xplique draws one offset, scale and sigma per batch;
    here each image draws its own from its target's generator, so a target's views do not depend on the
    batch. The blur's kernel spans +-3 sigma (Xplique: 10 taps).

    Computed as two matrix products per view (:func:`_axis_map`): everything after the first crop is linear
    and separable, and the pad is zero. The same views as the ops applied in turn (to 7e-7), at a third of
    their CPU time with the backward (Lite0's 224-px input: 3.0 against 9.3 ms per image, one thread).
    """
    first, second = (2, 2, 4, 4, 4), (1, 1)  # jitters (in units) before and after the scale and blur

    def run(x: torch.Tensor, rng: TargetRNG) -> torch.Tensor:
        b, c, h, w = x.shape
        u = max(1, min(h, w) // 16)
        # per image, from its target's stream: 2 offsets per jitter, then scale, sigma and flip
        draws = rng.host.rand(b // len(rng), 2 * 7 + 3)
        pad = 4 * u  # black: the pad's pixels are zero, so only the crop's part inside the image is read
        out = []
        for image, d in zip(x.unbind(0), draws.tolist()):
            (oy, ox), (h1, w1) = _jitters((h + 2 * pad, w + 2 * pad), first, u, d[0:10])
            scaled = [max(2, round(n * (0.92 + 0.04 * d[14]))) for n in (h1, w1)]
            sigma = 1.0 + 0.1 * d[15]
            (py, px), (h3, w3) = _jitters(scaled, second, u, d[10:14])
            rows, (y0, y1) = _inside(_axis_map(h1, scaled[0], sigma, py, h3, out_size, x), oy - pad, h)
            cols, (x0, x1) = _inside(_axis_map(w1, scaled[1], sigma, px, w3, out_size, x), ox - pad, w)
            if d[16] < 0.5:
                cols = cols.flip(0)
            out.append(rows @ image[:, y0:y1, x0:x1] @ cols.T)
        return torch.stack(out, 0)

    return run


def _jitters(size, shrinks, u: int, draws):
    """Xplique's ``random_jitter`` applied in turn: each crop is ``shrink * u`` pixels smaller, at offsets
    uniform in [0, shrink * u]. Crops of crops are one crop: returns its (top, left) and (height, width)."""
    (h, w), (oy, ox) = size, (0, 0)
    for j, shrink in enumerate(shrinks):
        cut = min(shrink * u, h - 1, w - 1)
        oy += min(int(draws[2 * j] * (cut + 1)), cut)
        ox += min(int(draws[2 * j + 1] * (cut + 1)), cut)
        h, w = h - cut, w - cut
    return (oy, ox), (h, w)


def _inside(m: torch.Tensor, start: int, n: int):
    """``m`` (out, L) reads a crop whose first pixel is at ``start`` of an axis of ``n`` pixels (negative or
    beyond ``n``: the zero pad): its columns over the image's pixels, and their span [lo, hi)."""
    lo, hi = max(0, start), min(n, start + m.shape[1])
    return m[:, lo - start : hi - start], (lo, hi)


def _axis_map(n: int, scaled: int, sigma: float, offset: int, kept: int, out_size: int, like: torch.Tensor):
    """The (out_size, n) matrix one axis of the first crop goes through: resize to ``scaled`` (bilinear,
    antialiased), Gaussian blur of std ``sigma`` (reflection at the border, +-3 sigma), the second jitters'
    crop (``kept`` from ``offset``), resize to ``out_size``. All four are linear along the axis and act on
    each axis separately, so a view is rows @ crop @ cols.T: two small matrix products instead of four
    passes over the image and their backward."""
    eye = torch.eye(n, dtype=like.dtype, device=like.device)[None, None]
    m = F.interpolate(eye, size=(scaled, n), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    k = gaussian_kernel(sigma, m)
    r = k.numel() // 2
    signals = F.pad(m.T[:, None, :], (r, r), mode="reflect")  # each column of m as a signal along the axis
    m = F.conv1d(signals, k.view(1, 1, -1))[:, 0].T[offset : offset + kept]
    eye = torch.eye(kept, dtype=like.dtype, device=like.device)[None, None]
    return F.interpolate(eye, size=(out_size, kept), mode="bilinear", align_corners=False,
                         antialias=kept > out_size)[0, 0] @ m


def per_target(values: torch.Tensor, k: int) -> torch.Tensor:
    """Average per-view values (K * n, ...) into per-target values (K,)."""
    return values.reshape(k, -1).mean(dim=1)
