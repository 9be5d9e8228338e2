"""The concept map: every concept vector of a model (all classes' CRAFT banks) embedded together in 2-D
(UMAP where umap-learn is installed, else scikit-learn's t-SNE; :func:`atlas.embedding.map_2d`), so that
concepts that resemble each other - within and across classes - sit near each other (Lens's concept
similarity, LeafLens's map of all concepts, Activation Atlas). Points are coloured by class group
(:func:`class_groups`). The coordinates are a cached stage (``concept_map``), keyed by the vectors, so a
re-render computes nothing; the site draws them as an SVG in which every point links to its concept page.
"""
from __future__ import annotations

import hashlib
import json
from typing import Dict, Sequence

import numpy as np

from ..config import stable_hash

STAGE = "concept_map"
VERSION = "1"
#: Colours on the map: at most this many groups (the site's palette).
GROUPS = 10


def class_groups(classes: Sequence[int], class_names: Sequence[str], wnids: Sequence[str]) -> Dict[int, str]:
    """``{class: group name}``: each class its own group when there are at most :data:`GROUPS`; for an
    ImageNet-1k model the coarse ImageNet groups (:data:`atlas.models.classes.IMAGENET_GROUPS`); otherwise
    :data:`GROUPS` runs of consecutive class ids."""
    from ..models.classes import imagenet_classes, imagenet_group

    classes = sorted(set(int(c) for c in classes))
    if len(classes) <= GROUPS:
        return {c: class_names[c] if c < len(class_names) else f"class {c}" for c in classes}
    if tuple(wnids) == imagenet_classes()[1]:
        return {c: imagenet_group(c) for c in classes}
    size = -(-len(class_names) // GROUPS)
    return {c: f"classes {c // size * size}-{min(len(class_names), (c // size + 1) * size) - 1}" for c in classes}


def concept_map(store, model: str, banks: Dict[int, np.ndarray], seed: int = 0, method: str = "auto") -> dict:
    """``{"method": name, "points": [[class, k, x, y], ...]}`` for the concept vectors ``banks`` ({class:
    W (K, C)}), from the store when this map was computed before (stage ``concept_map``)."""
    from ..embedding import map_2d, umap_available

    classes = sorted(banks)
    if not classes:
        return {"method": "", "points": []}
    V = np.concatenate([np.asarray(banks[c], dtype=np.float64) for c in classes])
    rows = [(c, k) for c in classes for k in range(banks[c].shape[0])]
    resolved = "umap" if method == "umap" or (method == "auto" and umap_available()) else "tsne"
    digest = hashlib.sha256(np.ascontiguousarray(V, dtype=np.float32).tobytes()).hexdigest()[:20]
    key = {"model": model, "vectors": digest, "rows": stable_hash(rows, length=16),
           "seed": seed, "method": resolved, "v": VERSION}

    def compute():
        xy, name = map_2d(V, seed, resolved)
        points = [[c, k, round(float(x), 5), round(float(y), 5)] for (c, k), (x, y) in zip(rows, xy)]
        return {"map.json": json.dumps({"method": name, "points": points}).encode()}, {}

    if store is None:
        return json.loads(compute()[0]["map.json"])
    d = store.cached_stage(STAGE, key, compute)
    return json.loads((d / "map.json").read_bytes())
