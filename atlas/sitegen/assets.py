"""Image assets derived from stored artifacts: PNG originals, WebP thumbnails, transparency and masked
views. Producers return bytes; the writer only writes bytes that changed."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

THUMB_SIZE = 192  # grid thumbnails (index, model, method pages)
VIEW_SIZE = 448  # the image as class and compare pages show it (PNG originals stay for download)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)


def thumb_webp(png_path: Path, size: int = THUMB_SIZE, quality: int = 82) -> bytes:
    """A lazy-loaded grid thumbnail: WebP, at most ``size`` px on its longer side."""
    with Image.open(png_path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size), Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="WEBP", quality=quality, method=4)
        return buf.getvalue()


def view_webp(png_path: Path, size: int = VIEW_SIZE) -> bytes:
    """The image for side-by-side viewing: WebP, at most ``size`` px, near-lossless quality."""
    return thumb_webp(png_path, size, quality=90)


def masked_png(image_path: Path, alpha_path: Path) -> bytes:
    """RGBA: the image with the transparency map as its alpha channel (shown over the page colour)."""
    with Image.open(image_path) as img, Image.open(alpha_path) as alpha:
        rgba = img.convert("RGB").copy()
        a = alpha.convert("L")
        if a.size != rgba.size:
            a = a.resize(rgba.size, Image.BILINEAR)
        rgba.putalpha(a)
        buf = io.BytesIO()
        rgba.save(buf, format="PNG", compress_level=6)
        return buf.getvalue()


def file_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()
