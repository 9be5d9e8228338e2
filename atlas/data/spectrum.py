"""The natural-image magnitude spectrum that MACO keeps fixed (MACO paper §3: r = E_x |F(x)|).

Estimated from the *configured* image pool - mean |rfft2| of the images in decorrelated colour space -
at exactly the size the parameterisation asks for, and cached on disk keyed by the pool's fingerprint,
the size and the number of images. Never downloaded.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..config import stable_hash
from ..errors import AtlasError
from ..optim.color import decorrelate
from .pools import ImagePool, UnreadableImage, center_crop_tensor, random_resized_crop

log = logging.getLogger(__name__)
SPECTRUM_VERSION = 1


def estimate_spectrum(
    pool: ImagePool, size: int, n_images: int, seed: int = 0, progress: Optional[Callable[[int], None]] = None
) -> np.ndarray:
    """Mean |rfft2| over ``n_images`` pool images -> float32 array (3, size, size // 2 + 1).

    Each image is resized and centre-cropped to ``size`` (a pool smaller than ``n_images`` is topped up
    with random resized crops and flips of its images), centred per channel and decorrelated with the
    inverse of the colour matrix the parameterisation recorrelates with.
    """
    items = pool.all_items()
    if not items:
        raise AtlasError(f"{pool.name} holds no image to estimate the magnitude spectrum from; choose another "
                         f"folder with --data")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    total = torch.zeros(3, size, size // 2 + 1, dtype=torch.float64)
    count, first_error = 0, None
    for i in range(n_images):
        try:
            img = pool.load(items[order[i % len(items)]])
        except UnreadableImage as exc:
            first_error = first_error or str(exc)
            continue
        if i < len(items):
            x = center_crop_tensor(img, size, resize_ratio=1.0)
        else:
            x = random_resized_crop(img, size, rng, scale=(0.3, 1.0))
        x = x - x.mean(dim=(1, 2), keepdim=True)
        total += torch.fft.rfft2(decorrelate(x[None])[0].double()).abs()
        count += 1
        if progress is not None:
            progress(1)
    if count == 0:
        raise AtlasError(f"no readable image in {pool.name} ({min(n_images, len(items))} files tried, e.g. {first_error}); check the "
                         f"files or choose another folder with --data")
    return (total / count).float().numpy()


def spectrum_path(cache_dir: Path, pool: ImagePool, size: int, n_images: int) -> Path:
    key = stable_hash({"pool": pool.fingerprint(), "size": size, "n": n_images, "v": SPECTRUM_VERSION})
    return Path(cache_dir) / f"spectrum-{size}-{key}.npy"


def load_or_estimate_spectrum(
    pool: ImagePool, size: int, n_images: int, cache_dir: Optional[Path], progress=None
) -> np.ndarray:
    """The cached spectrum for (pool, size, n_images), or a fresh estimate written atomically to the cache.

    An unreadable or malformed cache file is a miss (with a warning), never a crash.
    """
    if cache_dir is None:
        return estimate_spectrum(pool, size, n_images, progress=progress)
    path = spectrum_path(cache_dir, pool, size, n_images)
    if path.is_file():
        try:
            arr = np.load(path)
            if arr.shape == (3, size, size // 2 + 1) and np.isfinite(arr).all():
                return arr
        except (OSError, ValueError, EOFError):
            pass
        log.warning("cached spectrum %s is unreadable; estimating it again", path)
    arr = estimate_spectrum(pool, size, n_images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)
    return arr
