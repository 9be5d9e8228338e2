"""The derived images of a figure, made once from its PNG where the figure is made (the store writes them
next to ``image.png``), so that rendering a site copies bytes instead of encoding images: a WebP thumbnail
for grids and a WebP view for side-by-side pages. numpy/PIL only (no torch): the store and the site
generator both use it.

Formats by measurement (bench/README.md, "Image formats"): on the demo's 82 real 224-px results a lossless
WebP is only 13% smaller than the stored PNG and takes ~100 ms to encode, so the downloadable original stays
a PNG (which LaTeX also reads); the lossy views are 5-9x smaller than the PNG; the masked view is drawn by
the browser from the view and the transparency map instead of being stored (it was the largest file).
"""
from __future__ import annotations

import io
from typing import Dict

from PIL import Image

THUMB_SIZE = 192  # grid thumbnails (index, model, method pages)
VIEW_SIZE = 448  # the image as class and compare pages show it (the PNG original stays for download)
#: The derived files of a figure, as the store names them.
DERIVED = ("thumb.webp", "view.webp")


def webp_from_png(png: bytes, size: int, quality: int) -> bytes:
    """A WebP of the PNG ``png``, at most ``size`` px on its longer side (never enlarged)."""
    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size), Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="WEBP", quality=quality, method=4)
        return buf.getvalue()


def thumb_webp(png: bytes) -> bytes:
    """The lazy-loaded grid thumbnail."""
    return webp_from_png(png, THUMB_SIZE, quality=82)


def view_webp(png: bytes) -> bytes:
    """The image for side-by-side viewing (near-lossless quality)."""
    return webp_from_png(png, VIEW_SIZE, quality=90)


def derived_images(png: bytes) -> Dict[str, bytes]:
    """``{"thumb.webp": ..., "view.webp": ...}`` of the PNG ``png``."""
    return {"thumb.webp": thumb_webp(png), "view.webp": view_webp(png)}
