"""Dataset examples of concepts across the whole pool, for their labels (:mod:`atlas.concepts.labels`).

A CRAFT concept is factorised from one class's patches, so its own top patches all come from that class.
What it responds to is read from the pool instead: one sweep over the pool's images at the concept layer
scores every patch against every concept vector of the model (the spatial mean of the activations' dot
product with it, :class:`atlas.data.patches.TopDirectionPatches`), and each concept keeps its top-N
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
from ..data.patches import NeuronExamples, TopDirectionPatches, ask, patch_images
from .bank import find_banks, fit_hash
from .examples import pool_census
from .layers import concept_layer, has_concept_layer
from .lookup import latest_entries

STAGE = "concept_examples"
VERSION = "1"


def unit_key(class_id: int, k: int) -> str:
    return f"{int(class_id)}-{int(k)}"


def concept_question(layer: str, banks: Dict[int, np.ndarray], n: int) -> TopDirectionPatches:
    """The sweep's question for the concept vectors ``banks`` ({class: W (K, C)}), rows in class order."""
    vectors = np.concatenate([banks[c] for c in sorted(banks)]).astype(np.float32)
    return TopDirectionPatches(layer, torch.from_numpy(vectors), n)


def concept_example_files(model, pool, banks: Dict[int, np.ndarray], ids, found: List[NeuronExamples],
                          mosaic: int):
    """The stage's ``(files, meta)`` from the sweep's answer ``found`` (one per concept, in class order)."""
    units = [(c, k) for c in sorted(banks) for k in range(banks[c].shape[0])]
    files = {"pool.json": json.dumps(pool_census(ids)).encode()}
    out = {}
    for (c, k), ex in zip(units, found):
        out[unit_key(c, k)] = {"sources": ex.sources, "boxes": [list(b) for b in ex.boxes], "scores": ex.scores}
        head = NeuronExamples(ex.layer, k, ex.sources[:mosaic], ex.boxes[:mosaic], ex.scores[:mosaic])
        patches = patch_images(pool, head, 64, size=model.input_size)
        files[f"pool-{c:04d}-{k:02d}.png"] = mosaic_png(patches, cols=min(10, max(1, len(patches))), tile=48)
    files["examples.json"] = json.dumps(out).encode()
    return files, {}


def compute_concept_examples(model, pool, layer: str, banks: Dict[int, np.ndarray], n: int, mosaic: int,
                             max_images: Optional[int] = None, progress=None):
    """The stage's ``(files, meta)`` for the concept vectors ``banks`` ({class: W (K, C)}): a sweep of its own
    (:mod:`atlas.concepts.pool_scan` shares one with the neurons' dataset examples)."""
    ids = pool.source_ids(max_images)
    found = ask(model, pool, ids, [concept_question(layer, banks, n)], progress=progress)[0]
    return concept_example_files(model, pool, banks, ids, found, mosaic)


def _key(cfg, model: str, pool, layer: str, classes: List[int]) -> dict:
    ncfg = neuron_config(cfg)
    return {"model": model, "layer": layer, "fit": fit_hash(cfg, layer), "classes": sorted(classes),
            "pool": pool.fingerprint(), "n": ncfg.examples, "max_images": ncfg.max_images,
            "mosaic": min(10, ncfg.mosaic), "v": VERSION}


def concept_examples_needed(runner, model: str) -> Optional[tuple]:
    """``(key, layer, banks)`` of the concept examples this whole-plan run still has to compute for
    ``model``, or None (none planned, none missing, or a shard: it leaves them to a whole-plan run)."""
    cfg = runner.cfg
    if cfg.targets.concepts < 1 or not has_concept_layer(cfg, model) or runner.scope is not None:
        return None
    from ..config import stable_hash
    from ..pipeline.planner import resolve_classes

    layer = concept_layer(cfg, model)
    classes = resolve_classes(cfg)
    banks = {c: b.W for c, b in find_banks(runner.store, model, fit_hash(cfg, layer), classes).items()}
    if not banks:
        return None
    key = _key(cfg, model, runner.pool(model), layer, sorted(banks))
    if runner.store.get_stage(STAGE, stable_hash(key, length=20)) is not None:
        return None
    return key, layer, banks


def concept_examples_stage(runner, model: str) -> None:
    """Run stage: every concept's top patches in the pool (after the CRAFT stage; whole-plan runs only;
    usually found stored by the shared sweep of :mod:`atlas.concepts.pool_scan`)."""
    needed = concept_examples_needed(runner, model)
    if needed is None:
        return
    from ..progress import stage

    key, layer, banks = needed
    pool = runner.pool(model)
    ncfg = neuron_config(runner.cfg)
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
