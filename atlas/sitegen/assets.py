"""The site's assets and where their bytes come from. Producers return bytes, called when writing; the
writer writes bytes that changed and never rewrites an immutable (versioned) file.

Every image of a site has a versioned path (:func:`atlas.sitegen.paths.versioned`): the figure's images the
job key, an image read from a store folder that folder's key (store folders never change), any other image
the hash of its bytes. A later render therefore adds images and never changes one that was published.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

from .. import webp

#: Suffixes of the files that must be versioned (images and downloads); other assets (JSON) may change.
IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".gif", ".svg")
_STORE_KEY = re.compile(r"[0-9a-f]{12,64}")


def read_png(path: Path):
    """The pixels of a PNG as a NumPy array (RGB or greyscale)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)


def file_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def source_file(producer: Callable[[], bytes]) -> Optional[Path]:
    """The file a producer copies (``partial(file_bytes, path)``), or None."""
    if isinstance(producer, partial) and producer.func is file_bytes and len(producer.args) == 1:
        return Path(producer.args[0])
    return None


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def version_of(producer: Callable[[], bytes], length: int = 16) -> str:
    """The version of an asset whose producer was given none: the key of the store folder it is read from
    (a store folder is named by the hash of what made it and never changes), else the hash of its bytes."""
    src = source_file(producer)
    if src is not None and _STORE_KEY.fullmatch(src.parent.name):
        return src.parent.name[:length]
    return hashlib.sha256(producer()).hexdigest()[:length]


@dataclass(frozen=True)
class Derived:
    """A derived image of a stored job (:data:`atlas.webp.DERIVED`): the bytes the store made when the job
    was stored, or - for jobs stored before - made here from its PNG."""

    store: object
    key: str
    meta: dict
    name: str

    def __call__(self) -> bytes:
        data = self.store.derived(self.key, self.name, self.meta)
        if data is not None:
            return data
        png = (self.store.job_dir(self.key) / "image.png").read_bytes()
        return webp.thumb_webp(png) if self.name == "thumb.webp" else webp.view_webp(png)
