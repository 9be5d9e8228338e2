"""Real seed images for the image-seeded methods: their ids (planning) and their pixels (running).

An image target names one real image of a class by an id that planning can produce without reading any
image (``atlas plan`` works offline):

* ``"<name>"`` - a photo of the bundled pool (``chelsea``, ``motorcycle_left``, ...);
* ``"<name>~<k>"`` - the k-th deterministic random resized crop of that photo (the bundled pool's extra
  "source images"): the bundled pool has only one or two photos per class, so a class's second image is
  a crop of its photo (documented on the site);
* ``"@<k>"`` - the k-th image of the class in an image folder, in sorted file order, resolved when the
  job runs (the file's name is recorded with the result).

Each image is planned twice: toward its own class and toward its rival (``Target.toward = "rival"``, the
highest-scoring other class: the second-highest logit, or the predicted class of a misclassified image -
feature-accentuation paper, §3 "Misclassifications", Fig. 9).
"""
from __future__ import annotations

from typing import List, Tuple

import torch

from ..errors import AtlasError
from .pools import BUNDLED_PHOTOS, BundledPool, ImagePool, ImageRef

#: The goals each image is explained toward (``Target.toward``): its own class and its rival.
GOALS: Tuple[str | None, ...] = (None, "rival")


def bundled_ids(class_id: int, m: int) -> List[str]:
    """The ids of ``m`` bundled images of ``class_id``: its photos first, then crops ``<photo>~<k>``
    taken round-robin over the photos."""
    photos = [name for name, (c, _) in BUNDLED_PHOTOS.items() if c == class_id]
    if not photos:
        raise AtlasError(f"no bundled photo shows class {class_id}; bundled classes are "
                         f"{sorted({c for c, _ in BUNDLED_PHOTOS.values()})}")
    ids = photos[:m]
    k = 1
    while len(ids) < m:
        for name in photos:
            if len(ids) < m:
                ids.append(f"{name}~{k}")
        k += 1
    return ids


def seed_image_ids(pool: str, class_id: int, m: int) -> List[str]:
    """The ids of the first ``m`` seed images of ``class_id`` in the pool ``pool`` (no image is read)."""
    if pool == "bundled":
        return bundled_ids(class_id, m)
    return [f"@{k}" for k in range(m)]


def load_seed_image(pool: ImagePool, class_id: int, image_id: str, size: int) -> Tuple[torch.Tensor, str]:
    """(3, size, size) in [0, 1] and the source it came from (``"<class>/<file or photo>[~k]"``)."""
    if image_id.startswith("@"):
        refs = pool.items(class_id)
        k = int(image_id[1:])
        if k >= len(refs):
            raise AtlasError(f"image {image_id} of class {class_id}: the pool {pool.name} has only "
                             f"{len(refs)} images of that class")
        return pool.load_tensor(refs[k], size), f"{class_id}/{refs[k].id}"
    source = f"{class_id}/{image_id}"
    if isinstance(pool, BundledPool):
        name = image_id.partition("~")[0]
        if BUNDLED_PHOTOS.get(name, (None,))[0] != class_id:
            photos = [n for n, (c, _) in BUNDLED_PHOTOS.items() if c == class_id] or ["none"]
            raise AtlasError(f"image {image_id!r} is not a bundled photo of class {class_id} (or a crop "
                             f"<photo>~<k> of one); its photos: {', '.join(photos)}")
        return pool.source_image(source, size), source
    return pool.load_tensor(ImageRef(image_id, class_id), size), source


def load_seed_images(pool: ImagePool, targets, size: int) -> Tuple[torch.Tensor, List[str]]:
    """The seed images of ``targets`` as one batch (K, 3, size, size) and their sources."""
    pairs = [load_seed_image(pool, t.class_id, t.image, size) for t in targets]
    return torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]
