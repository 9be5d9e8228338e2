"""The ``image`` target source: ``[targets] images = M`` plans M real images per class (ids from
:func:`atlas.seeded.images.seed_image_ids`, no image read), each toward its own class and toward its rival
(:data:`atlas.seeded.images.GOALS`)."""
from __future__ import annotations

from typing import List

from ..config import AtlasConfig
from ..pipeline.planner import TARGET_SOURCES
from ..targets import Target
from .images import GOALS, seed_image_ids


@TARGET_SOURCES.register("image")
def image_targets(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """``[targets] images = M``: M real images per class, each toward its class and toward its rival."""
    m = cfg.targets.images
    if m <= 0:
        return []
    out = []
    for c in classes:
        for image_id in seed_image_ids(cfg.data.pool, c, m):
            out.extend(Target.of_image(image_id, c, toward=g) for g in GOALS)
    return out
