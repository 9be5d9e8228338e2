"""Small WebP thumbnails of each class's real (reference) images, stored as a cached stage.

The site shows a class's real images next to its visualisations, but the renderer never opens the image
pool (it may be a 150 GB ImageNet folder on a cluster that the web host cannot see) and never loads a
model. So the pipeline, which has the pool at hand, writes a few thumbnails per class into the store
(``stages/class-references/<key>/``) when it runs; the renderer copies them.

The thumbnails are the first :data:`COUNT` images of the class's reference set for seed 0 - the very
images (same crops, for the bundled pool) that the data-driven methods use as references - resized to
:data:`SIZE` pixels. The stage key holds only configuration values (pool spec, class, count, size), so
the renderer can find a class's thumbnails without scanning the pool.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable, Iterable, List

import numpy as np
from PIL import Image

from ..config import stable_hash
from ..data.pools import UnreadableImage
from ..errors import AtlasError
from ..progress import stage
from .store import Store

log = logging.getLogger(__name__)

STAGE = "class-references"
COUNT = 8  # thumbnails per class (at most ``data.references``)
SIZE = 128  # pixels (square)
VERSION = 1


def reference_key(cfg, class_id: int, labels_id: str = "") -> dict:
    """The stage key object of ``class_id``'s thumbnails (configuration only: no pool access); ``labels_id``
    (``ModelInfo.labels_id``) tells a model's own label set from ImageNet's, whose class ids are the same
    numbers."""
    key = {"pool": cfg.data.pool, "class_id": int(class_id), "count": min(COUNT, cfg.data.references),
           "size": SIZE, "version": VERSION}
    if labels_id:
        key["labels"] = labels_id
    return key


def webp_bytes(chw) -> bytes:
    """A (3, H, W) image in [0, 1] as WebP bytes (quality 80)."""
    arr = (np.clip(np.asarray(chw, dtype=np.float32).transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="WEBP", quality=80, method=4)
    return buf.getvalue()


def _compute(pool, key: dict):
    def compute():
        images = pool.reference_images(key["class_id"], key["count"], key["size"], seed=0, allow_fewer=True)
        files = {f"{i:02d}.webp": webp_bytes(img.numpy()) for i, img in enumerate(images)}
        return files, {"pool_name": getattr(pool, "name", ""), "count": len(files)}

    return compute


def store_class_references(cfg, store: Store, pool_factory: Callable[[], object], class_ids: Iterable[int],
                           progress: bool = True, labels_id: str = "") -> int:
    """Make sure the store holds reference thumbnails of every class in ``class_ids`` that the pool has.

    The pool is opened (``pool_factory()``) only if some class has no thumbnails yet. Classes missing
    from the pool are skipped (the site then shows no real images for them); an unreadable class is
    logged and skipped, never fatal. Returns the number of classes that now have thumbnails.
    """
    wanted = sorted({int(c) for c in class_ids})
    todo = [c for c in wanted if store.get_stage(STAGE, _key(cfg, c, labels_id)) is None]  # missing or corrupt
    if todo:
        try:
            pool = pool_factory()
            available = set(pool.class_ids())
        except (AtlasError, OSError) as exc:
            log.warning("reference thumbnails skipped: %s", exc)
            todo = []
        else:
            todo = [c for c in todo if c in available]
    with stage("reference images", len(todo), unit="set", enabled=progress) as bar:
        for c in todo:
            key = reference_key(cfg, c, labels_id)
            try:
                store.cached_stage(STAGE, key, _compute(pool, key))
            except (AtlasError, UnreadableImage, OSError, ValueError) as exc:  # never fatal to a build
                log.warning("reference thumbnails of class %d skipped: %s", c, exc)
            bar.update(1)
    return sum(1 for c in wanted if store.get_stage(STAGE, _key(cfg, c, labels_id), verify=False) is not None)


def _key(cfg, class_id: int, labels_id: str = "") -> str:
    return stable_hash(reference_key(cfg, class_id, labels_id), length=20)


def class_reference_files(cfg, store: Store, class_id: int, labels_id: str = "") -> List[Path]:
    """The stored thumbnails of ``class_id`` in order (empty if the pipeline has not stored them)."""
    key = _key(cfg, class_id, labels_id)
    meta = store.stage_meta(STAGE, key)  # corrupt thumbnails are never copied to the site (warned once)
    if meta is None:
        return []
    d = store.stage_dir(STAGE, key)
    return [d / n for n in sorted(meta["files"]) if (d / n).is_file()]
