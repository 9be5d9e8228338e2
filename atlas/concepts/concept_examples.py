"""Dataset examples of concepts across the whole pool, for their labels (:mod:`atlas.concepts.labels`).

A CRAFT concept is factorised from one class's patches, so its own top patches all come from that class.
What it responds to is read from the pool instead: one sweep over the pool's images at the concept layer
scores every patch against every concept vector of the model (the spatial mean of the activations' dot
product with it, :func:`atlas.data.patches.top_direction_patches`), and each concept keeps its top-N
patches, one per source image. Their classes are the concept's label; the first ``mosaic`` of them are its
"top patches in the pool" picture.

Stage ``concept_examples``, one entry per (model, concept layer, CRAFT fit, classes, pool): ``examples.json``
(``{"<class>-<k>": {"sources", "boxes", "scores"}}``), ``pool.json`` (images per class of the scan) and
``pool-<class>-<k>.png``. Run after the CRAFT stage by a whole-plan run (a shard leaves it to the run that
has every class's bank).
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional

import numpy as np
import torch

from ..config import craft_config, neuron_config
from ..data.mosaic import mosaic_png
from ..data.patches import NeuronExamples, patch_images, top_direction_patches
from .bank import find_banks, fit_hash
from .examples import pool_census
from .layers import concept_layer, has_concept_layer
from .lookup import latest_entries

STAGE = "concept_examples"
VERSION = "1"


def unit_key(class_id: int, k: int) -> str:
    return f"{int(class_id)}-{int(k)}"


def compute_concept_examples(model, pool, layer: str, banks: Dict[int, np.ndarray], n: int, mosaic: int,
                             max_images: Optional[int] = None, progress=None):
    """The stage's ``(files, meta)`` for the concept vectors ``banks`` ({class: W (K, C)})."""
    units = [(c, k) for c in sorted(banks) for k in range(banks[c].shape[0])]
    vectors = torch.from_numpy(np.concatenate([banks[c] for c in sorted(banks)]).astype(np.float32))
    ids = pool.source_ids(max_images)
    found = top_direction_patches(model, pool, layer, vectors, n, sources=ids, progress=progress)
    files = {"pool.json": json.dumps(pool_census(ids)).encode()}
    out = {}
    for (c, k), ex in zip(units, found):
        out[unit_key(c, k)] = {"sources": ex.sources, "boxes": [list(b) for b in ex.boxes], "scores": ex.scores}
        head = NeuronExamples(layer, k, ex.sources[:mosaic], ex.boxes[:mosaic], ex.scores[:mosaic])
        patches = patch_images(pool, head, 64, size=model.input_size)
        files[f"pool-{c:04d}-{k:02d}.png"] = mosaic_png(patches, cols=min(10, max(1, len(patches))), tile=48)
    files["examples.json"] = json.dumps(out).encode()
    return files, {}


def _key(cfg, model: str, pool, layer: str, classes: List[int]) -> dict:
    ncfg = neuron_config(cfg)
    return {"model": model, "layer": layer, "fit": fit_hash(cfg, layer), "classes": sorted(classes),
            "pool": pool.fingerprint(), "n": ncfg.examples, "max_images": ncfg.max_images,
            "mosaic": min(10, ncfg.mosaic), "v": VERSION}


def concept_examples_stage(runner, model: str) -> None:
    """Run stage: every concept's top patches in the pool (after the CRAFT stage; whole-plan runs only)."""
    cfg = runner.cfg
    if cfg.targets.concepts < 1 or not has_concept_layer(cfg, model) or runner.scope is not None:
        return
    from ..pipeline.planner import resolve_classes
    from ..progress import stage

    layer = concept_layer(cfg, model)
    classes = resolve_classes(cfg)
    banks = {c: b.W for c, b in find_banks(runner.store, model, fit_hash(cfg, layer), classes).items()}
    if not banks:
        return
    pool = runner.pool()
    key = _key(cfg, model, pool, layer, sorted(banks))
    from ..config import stable_hash

    if runner.store.get_stage(STAGE, stable_hash(key, length=20)) is not None:
        return
    ncfg = neuron_config(cfg)
    images = len(pool.source_ids(ncfg.max_images or None))
    with stage(f"concept examples · {model}", images, unit="image", enabled=runner.progress) as bar:
        runner.store.cached_stage(STAGE, key, lambda: compute_concept_examples(
            runner.context(model).model, pool, layer, banks, ncfg.examples, key["mosaic"],
            ncfg.max_images or None, progress=bar.update))


def find_concept_examples(store, model: str, cfg) -> Optional[dict]:
    """``{"examples": {"<class>-<k>": {...}}, "census": {...}, "dir": folder}`` of the newest stored scan of
    ``model``'s concepts with this configuration's CRAFT fit (no model), or None."""
    if cfg.targets.concepts < 1 or not has_concept_layer(cfg, model):
        return None
    layer = concept_layer(cfg, model)
    craft_config(cfg)
    found = latest_entries(store, STAGE, {"model": model, "layer": layer, "fit": fit_hash(cfg, layer),
                                          "v": VERSION}, ())
    d = found.get(())
    if d is None:
        return None
    return {"examples": json.loads((d / "examples.json").read_bytes()),
            "census": json.loads((d / "pool.json").read_bytes()), "dir": d}
