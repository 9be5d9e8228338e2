"""The one PNG encoder: float arrays in [0, 1] to 8-bit PNG bytes (numpy and PIL only, no torch, so the
store and the site generator can use it as well as the methods and the feature stages)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: How a value in [0, 1] becomes a byte: ``"nearest"`` rounds v * 255 to the nearest integer (every stored
#: result image), ``"floor"`` truncates it (the patch mosaics, whose stored bytes were made that way).
ROUNDING = ("nearest", "floor")


def png_bytes(arr: np.ndarray, rounding: str = "nearest") -> bytes:
    """Float array (H, W) or (H, W, 3) -> PNG bytes (8 bit); NaN counts as 0, values are clipped to [0, 1]."""
    if rounding not in ROUNDING:
        raise ValueError(f"rounding must be one of {ROUNDING}, got {rounding!r}")
    a = np.clip(np.nan_to_num(np.asarray(arr, dtype=np.float32)), 0, 1) * 255
    if rounding == "nearest":
        a = a + 0.5
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
