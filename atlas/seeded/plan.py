"""The ``image`` target source: ``[targets] images = M`` plans M real images per class (ids from
:func:`atlas.data.seed_images.seed_image_ids`, no image read), each toward its own class and toward its rival
(:data:`atlas.data.seed_images.GOALS`)."""
from __future__ import annotations

import logging
from typing import List

from ..config import AtlasConfig
from ..data.seed_images import GOALS, seed_image_ids
from ..errors import AtlasError
from ..pipeline.planner import TARGET_SOURCES, SourceSkipped
from ..targets import Target

log = logging.getLogger(__name__)


@TARGET_SOURCES.register("image")
def image_targets(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """``[targets] images = M``: M real images per class, each toward its class and toward its rival."""
    m = cfg.targets.images
    if m <= 0:
        return []
    out, missing = [], []
    for c in classes:
        try:
            ids = seed_image_ids(cfg.data.pool, c, m)
        except AtlasError as exc:  # e.g. the bundled pool has no photo of this class
            missing.append((c, str(exc)))
            continue
        for image_id in ids:
            out.extend(Target.of_image(image_id, c, toward=g) for g in GOALS)
    if missing and not out:
        raise SourceSkipped(f"{len(missing)} class(es) without images in the pool: {missing[0][1]}")
    if missing:
        log.warning("image targets: %d class(es) without images in the pool skipped (%s)", len(missing),
                    ", ".join(str(c) for c, _ in missing[:10]))
    return out
