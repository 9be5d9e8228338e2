"""The natural-image magnitude spectrum that MACO keeps fixed (MACO paper §3: r = E_x |F(x)|).

Estimated from the *configured* image pool - mean |rfft2| of the images in decorrelated colour space -
at exactly the size the parameterisation asks for, and cached on disk keyed by the pool's fingerprint,
the size and the number of images. Never downloaded.

The cache entry is a checked folder (:mod:`atlas.atomic`): ``spectrum-<size>-<key>/spectrum.npy`` and a
``meta.json`` recording its size and SHA-256, written atomically through the one safe write (a full disk
is the store's one-line disk error). It is verified on every read: bit-rot that leaves the array finite
and of the right shape is still a checksum mismatch - warned about once, estimated again.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..atomic import (atomic_folder, checked_record, files_intact, read_json, record_problem, seal_problem,
                      sealed_json, warn_once)
from ..config import stable_hash
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
        raise ValueError("the image pool is empty")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    total = torch.zeros(3, size, size // 2 + 1, dtype=torch.float64)
    count = 0
    for i in range(n_images):
        try:
            img = pool.load(items[order[i % len(items)]])
        except UnreadableImage:
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
        raise ValueError("no readable image in the pool")
    return (total / count).float().numpy()


SPECTRUM_FILE = "spectrum.npy"


def spectrum_path(cache_dir: Path, pool: ImagePool, size: int, n_images: int) -> Path:
    """The cached array's file (in its checked folder ``spectrum-<size>-<key>/``)."""
    key = stable_hash({"pool": pool.fingerprint(), "size": size, "n": n_images, "v": SPECTRUM_VERSION})
    return Path(cache_dir) / f"spectrum-{size}-{key}" / SPECTRUM_FILE


def _cached(path: Path, size: int) -> Optional[np.ndarray]:
    """The verified cached spectrum at ``path``, or None (missing; damaged: warned once)."""
    folder = path.parent
    what = f"cached spectrum {folder.name}"
    meta = read_json(folder / "meta.json", what,
                     lambda m: seal_problem(m) or record_problem(m, required=(SPECTRUM_FILE,), key=folder.name))
    if meta is None or not files_intact(folder, meta, what):
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        arr = None
    if not isinstance(arr, np.ndarray) or arr.shape != (3, size, size // 2 + 1) or not np.isfinite(arr).all():
        warn_once(path, f"{what}: {SPECTRUM_FILE} is malformed; estimating it again")
        return None
    return arr


def load_or_estimate_spectrum(
    pool: ImagePool, size: int, n_images: int, cache_dir: Optional[Path], progress=None
) -> np.ndarray:
    """The cached spectrum for (pool, size, n_images), or a fresh estimate written atomically to the cache.

    A missing, unreadable, malformed or altered cache entry is a miss (altered ones with a warning), never
    a crash; a full or read-only cache folder raises the OSError the store turns into its one-line error.
    """
    if cache_dir is None:
        return estimate_spectrum(pool, size, n_images, progress=progress)
    path = spectrum_path(cache_dir, pool, size, n_images)
    if path.parent.exists():
        arr = _cached(path, size)
        if arr is not None:
            return arr
    arr = estimate_spectrum(pool, size, n_images, progress=progress)
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.float32), allow_pickle=False)
    files = {SPECTRUM_FILE: buf.getvalue()}
    meta = dict(checked_record(files), key=path.parent.name, size=size, n_images=n_images,
                pool=pool.fingerprint(), version=SPECTRUM_VERSION)
    files["meta.json"] = sealed_json(meta)
    atomic_folder(path.parent.parent, path.parent.name, files, lambda: _cached(path, size) is not None)
    return arr
