"""The core's target sources (the composition root registers them in ``TARGET_SOURCES``, before every
feature's): the configured classes, the neurons listed in ``[targets] neurons`` and the real images that
the image-seeded methods explain (``[targets] images = M``: M images per class, ids from
:func:`atlas.data.seed_images.seed_image_ids` - no image is read - each toward its own class and its rival,
:data:`atlas.data.seed_images.GOALS`)."""
from __future__ import annotations

import logging
from typing import List

from ..config import AtlasConfig
from ..errors import AtlasError, SourceSkipped
from ..data.seed_images import GOALS, seed_image_ids
from ..targets import Target

log = logging.getLogger(__name__)


def class_targets(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    return [Target.of_class(c) for c in classes] if cfg.targets.classes else []


def listed_neurons(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """The neurons listed in ``[targets] neurons``, checked against the model's architecture (no weights
    needed): an unknown layer or a channel out of range is a one-line error before anything runs. With
    several models, a layer that only some of them have is skipped (with the reason) for the others."""
    from ..models.zoo import layer_width

    out = []
    for layer, channel in cfg.targets.neurons:
        try:
            width = layer_width(model, layer)
        except AtlasError as exc:
            if len(cfg.models) > 1 and str(exc).startswith("unknown layer"):
                raise SourceSkipped(f"{model} has no layer {layer!r}") from None
            raise
        if not 0 <= channel < width:
            raise AtlasError(f"neuron {channel} out of range for layer {layer} of {model}: "
                             f"valid channels are 0-{width - 1}")
        out.append(Target.of_neuron(layer, channel))
    return out


def image_targets(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """``[targets] images = M``: M real images per class, each toward its class and toward its rival."""
    from .planner import classes_with_images, no_images_reason

    m = cfg.targets.images
    if m <= 0:
        return []
    out, missing = [], []
    have = classes_with_images(cfg, model)
    for c in classes:
        if have is not None and c not in have:
            missing.append((c, no_images_reason(cfg, model, c)))
            continue
        try:
            ids = seed_image_ids(cfg.data.pool, c, m)
            if have is not None and cfg.data.pool != "bundled":
                ids = ids[:have[c]]  # a folder with fewer than M images of the class: the ones it has
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
