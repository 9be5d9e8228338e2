"""The natural-image magnitude spectrum that MACO keeps fixed (MACO paper §3: r = E_x |F(x)|).

Estimated from the *configured* image pool - the mean |rfft2| of its photos (every natural photo it has:
:meth:`~atlas.data.pools.ImagePool.spectrum_items`) in decorrelated colour space, images in [0, 1], the DC
term (each channel's mean brightness) kept as the paper's r keeps it - at exactly the size and channel
count the parameterisation asks for, and cached on disk keyed by the pool's fingerprint, the size, the
channel count and the number of images. Never downloaded.

Greyscale photos (all three channels equal) carry no colour: they enter the first decorrelated channel
only (its chroma channels average the colour photos), and every photo enters a one-channel spectrum as its
luminance.

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
from ..errors import AtlasError
from ..models.handle import LUMA
from ..optim.color import decorrelate
from .pools import ImagePool, UnreadableImage, center_crop_tensor, random_resized_crop

log = logging.getLogger(__name__)
#: 2: every natural photo of the pool, DC term kept, greyscale photos in the luminance channel only.
SPECTRUM_VERSION = 2


def is_grey(x: torch.Tensor, tol: float = 1.5 / 255) -> bool:
    """Whether a (3, H, W) image in [0, 1] has (nearly) equal channels."""
    return bool((x - x.mean(0, keepdim=True)).abs().max() <= tol)


def image_spectrum(x: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """|rfft2| of one (3, H, W) image in [0, 1], DC included: (channels, H, W // 2 + 1) float64, in
    decorrelated colour space for 3 channels, of the luminance for 1."""
    x = x.double()
    if channels == 1:
        y = torch.einsum("c,chw->hw", torch.tensor(LUMA, dtype=x.dtype), x)[None]
    elif channels == 3:
        y = decorrelate(x[None])[0]
    else:
        raise ValueError(f"a spectrum has 1 or 3 channels, not {channels}")
    return torch.fft.rfft2(y).abs()


def estimate_spectrum(
    pool: ImagePool, size: int, n_images: int, seed: int = 0, progress: Optional[Callable[[int], None]] = None,
    channels: int = 3,
) -> np.ndarray:
    """Mean |rfft2| over ``n_images`` views of the pool's photos -> float32 (channels, size, size // 2 + 1).

    Every photo is first resized and centre-cropped to ``size``; when ``n_images`` exceeds the number of
    photos, the rest are random resized crops (30-100 % of the area) and flips of them, in turn. A greyscale
    photo adds to the first decorrelated channel only (3 channels); a colour photo to all. The DC
    coefficient ``[:, 0, 0]`` is the sum of the pixels (MACO's r = E|F(x)| keeps it).
    """
    items = pool.spectrum_items()
    if not items:
        raise AtlasError(f"{pool.name} holds no image to estimate the MACO spectrum from; choose another "
                         f"folder with --data")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    total = torch.zeros(channels, size, size // 2 + 1, dtype=torch.float64)
    count = torch.zeros(channels, 1, 1, dtype=torch.float64)
    first_error = None
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
        spec = image_spectrum(x, channels)
        carried = slice(0, 1) if channels == 3 and is_grey(x) else slice(0, channels)
        total[carried] += spec[carried]
        count[carried] += 1
        if progress is not None:
            progress(1)
    if not count.any():
        raise AtlasError(f"no readable image in {pool.name} ({min(n_images, len(items))} files tried, e.g. {first_error}); "
                         f"check the files or choose another folder with --data")
    return (total / count.clamp(min=1)).float().numpy()


SPECTRUM_FILE = "spectrum.npy"


def spectrum_path(cache_dir: Path, pool: ImagePool, size: int, n_images: int, channels: int = 3) -> Path:
    """The cached array's file (in its checked folder ``spectrum-<size>-<key>/``)."""
    key = stable_hash({"pool": pool.fingerprint(), "photos": len(pool.spectrum_items()), "size": size,
                       "n": n_images, "channels": channels, "v": SPECTRUM_VERSION})
    return Path(cache_dir) / f"spectrum-{size}-{key}" / SPECTRUM_FILE


def _cached(path: Path, size: int, channels: int = 3) -> Optional[np.ndarray]:
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
    if not isinstance(arr, np.ndarray) or arr.shape != (channels, size, size // 2 + 1) or not np.isfinite(arr).all():
        warn_once(path, f"{what}: {SPECTRUM_FILE} is malformed; estimating it again")
        return None
    return arr


def load_or_estimate_spectrum(
    pool: ImagePool, size: int, n_images: int, cache_dir: Optional[Path], progress=None, channels: int = 3
) -> np.ndarray:
    """The cached spectrum for (pool, size, channels, n_images), or a fresh estimate written atomically to
    the cache.

    A missing, unreadable, malformed or altered cache entry is a miss (altered ones with a warning), never
    a crash; a full or read-only cache folder raises the OSError the store turns into its one-line error.
    """
    if cache_dir is None:
        return estimate_spectrum(pool, size, n_images, progress=progress, channels=channels)
    path = spectrum_path(cache_dir, pool, size, n_images, channels)
    if path.parent.exists():
        arr = _cached(path, size, channels)
        if arr is not None:
            return arr
    arr = estimate_spectrum(pool, size, n_images, progress=progress, channels=channels)
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.float32), allow_pickle=False)
    files = {SPECTRUM_FILE: buf.getvalue()}
    meta = dict(checked_record(files), key=path.parent.name, size=size, n_images=n_images, channels=channels,
                pool=pool.fingerprint(), version=SPECTRUM_VERSION)
    files["meta.json"] = sealed_json(meta)
    atomic_folder(path.parent.parent, path.parent.name, files, lambda: _cached(path, size, channels) is not None)
    return arr
