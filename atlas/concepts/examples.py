"""Dataset examples of neurons (VITAL §1.3) as a stage, and the run stages of concepts and neurons.

Stage ``neuron_examples``, one entry per neuron: ``examples.json`` (the top-N patches with unique
source images: sources, boxes, scores - N = 50 is also the CoSy AUC/MAD control set, VITAL §2.1 - and the
bottom-N, each source image's lowest-scoring patch: the examples of the negative visualisation, as
OpenAI Microscope shows them), ``mosaic.png`` (the first ``mosaic`` top patches) and ``negative.png`` (the
first ``mosaic`` bottom ones), and ``pool.json`` (how many scanned images each class has: the base rate the
labels are read against). One sweep over the pool per layer serves every neuron of that layer, top and
bottom (:func:`atlas.data.patches.cached_top_patches`, itself cached as stage ``top_patches``).
"""
from __future__ import annotations

import json
from typing import Dict, List, Sequence, Tuple

from ..config import NeuronConfig, neuron_config, stable_hash
from ..models.user import model_key
from ..data.mosaic import mosaic_png
from ..data.patches import (NeuronExamples, cached_top_patches, example_from_dict, patch_images,
                             stored_top_patches, top_patches_key)
from .clusters import neuron_clusters
from .lookup import latest_entries
from .neurons import check_channels

STAGE = "neuron_examples"
VERSION = "2"


def _key(model: str, pool, layer: str, channel: int, ncfg: NeuronConfig) -> dict:
    return {"model": model, "layer": layer, "channel": int(channel), "examples": ncfg.examples,
            "max_images": ncfg.max_images, "mosaic": ncfg.mosaic, "pool": pool.fingerprint(), "v": VERSION,
            **model_key(model)}


def neuron_examples(store, get_model, model_name: str, pool, layer: str, channels: Sequence[int],
                    ncfg: NeuronConfig, progress=None) -> Dict[int, NeuronExamples]:
    """Top-N patches (unique sources) of each neuron of ``layer`` in ``channels``, stored per neuron."""
    keys = {c: _key(model_name, pool, layer, c, ncfg) for c in channels}
    out, missing = {}, []
    for c, key in keys.items():
        d = store.get_stage(STAGE, stable_hash(key, length=20))
        if d is None:
            missing.append(c)
        else:
            out[c] = _examples(json.loads((d / "examples.json").read_bytes()))
    if missing:
        model = get_model()
        check_channels(model, layer, keys)
        found = cached_top_patches(store, model, pool, layer, sorted(keys), ncfg.examples,
                                   max_images=ncfg.max_images or None, progress=progress, bottom=True)
        census = json.dumps(pool_census(pool.source_ids(ncfg.max_images or None))).encode()
        for c in missing:
            ex = found[c]
            shown = ex.head(ncfg.mosaic)
            files = {"examples.json": json.dumps(ex.__dict__).encode(), "pool.json": census}
            for name, part in (("mosaic.png", shown), ("negative.png", shown.negative())):
                patches = patch_images(pool, part, 64, size=model.input_size)
                files[name] = mosaic_png(patches, cols=min(10, max(1, len(patches))), tile=48)
            store.put_stage(STAGE, stable_hash(keys[c], length=20), files, {"inputs": keys[c]})
            out[c] = ex
    return out


def pool_census(source_ids: Sequence[str]) -> Dict[str, int]:
    """``{class id: number of source images}`` of a scan (source ids are ``"<class>/<image>"``)."""
    out: Dict[str, int] = {}
    for s in source_ids:
        c = s.partition("/")[0]
        out[c] = out.get(c, 0) + 1
    return out


def _examples(d: dict) -> NeuronExamples:
    return example_from_dict(d)


def find_examples(store, model: str, cfg) -> Dict[tuple, object]:
    """``{(layer, channel): folder}`` of the stored dataset examples of ``model`` (newest; no model)."""
    ncfg = neuron_config(cfg)
    found = latest_entries(store, STAGE, {"model": model, "examples": ncfg.examples, "max_images": ncfg.max_images,
                                          "mosaic": ncfg.mosaic, "v": VERSION}, ("layer", "channel"))
    return found


def find_clusters(store, model: str, cfg) -> Dict[tuple, object]:
    """``{(layer, channel): folder}`` of the stored clusters of ``model``'s polysemantic neurons."""
    from .clusters import STAGE as CSTAGE
    from .clusters import VERSION as CVERSION

    ncfg = neuron_config(cfg)
    return latest_entries(store, CSTAGE, {"model": model, "clusters": ncfg.clusters, "patches": ncfg.cluster_patches,
                                          "max_images": ncfg.max_images, "examples": ncfg.examples, "v": CVERSION},
                          ("layer", "channel"))


def neuron_targets(cfg, model: str) -> List:
    """Every neuron target the configuration plans for ``model`` (all target sources)."""
    from ..pipeline.planner import resolve_classes, targets_for

    return [t for t in targets_for(cfg, model, resolve_classes(cfg, model)) if t.kind == "neuron"]


def planned_channels(cfg, model: str) -> Tuple[Dict[str, List[int]], Dict[str, List[int]]]:
    """``({layer: channels}, {layer: clustered channels})`` of every neuron target planned for ``model``."""
    by_layer: Dict[str, List[int]] = {}
    clustered: Dict[str, List[int]] = {}
    for t in neuron_targets(cfg, model):
        by_layer.setdefault(t.layer, [])
        if t.channel not in by_layer[t.layer]:
            by_layer[t.layer].append(t.channel)
        if t.cluster is not None and t.channel not in clustered.setdefault(t.layer, []):
            clustered[t.layer].append(t.channel)
    return by_layer, clustered


def missing_examples(runner, model: str, by_layer: Dict[str, List[int]]) -> List[str]:
    """The layers of ``by_layer`` with a neuron whose dataset examples are not stored."""
    ncfg = neuron_config(runner.cfg)
    pool = runner.pool(model)
    return [layer for layer, channels in by_layer.items()
            if any(runner.store.get_stage(STAGE, stable_hash(_key(model, pool, layer, c, ncfg), length=20)) is None
                   for c in channels)]


def layers_to_scan(runner, model: str, by_layer: Dict[str, List[int]]) -> List[str]:
    """The layers of ``by_layer`` whose dataset examples are missing and whose ``top_patches`` scan is not
    stored either: each needs a sweep over the pool (shared by :mod:`atlas.concepts.pool_scan`)."""
    return [layer for layer in missing_examples(runner, model, by_layer)
            if stored_top_patches(runner.store, scan_key(runner, model, layer, by_layer[layer])) is None]


def scan_key(runner, model: str, layer: str, channels: Sequence[int]) -> dict:
    """The ``top_patches`` scan that the dataset examples of ``channels`` of ``layer`` are cut from."""
    ncfg = neuron_config(runner.cfg)
    return top_patches_key(runner.context(model).model, runner.pool(model), layer, sorted(channels),
                           ncfg.examples, max_images=ncfg.max_images or None, bottom=True)


def neuron_stage(runner, model: str) -> None:
    """Run stage: dataset examples of every planned neuron, and the clusters of polysemantic ones (their
    scans usually found stored by the shared sweep of :mod:`atlas.concepts.pool_scan`)."""
    from ..progress import stage

    cfg = runner.cfg
    by_layer, clustered = planned_channels(cfg, model)
    if not by_layer or runner.stage_scope(model, "neuron") == set():
        return  # a shard without neuron jobs leaves the scan to the shards that have them
    ncfg = neuron_config(cfg)
    pool = runner.pool(model)
    get_model = lambda: runner.context(model).model  # noqa: E731
    sweeps = layers_to_scan(runner, model, by_layer)
    images = len(pool.source_ids(ncfg.max_images or None)) if sweeps else 0
    with stage(f"dataset examples · {model}", images * len(sweeps), unit="image", enabled=runner.progress) as bar:
        for layer, channels in by_layer.items():
            neuron_examples(runner.store, get_model, model, pool, layer, channels, ncfg, progress=bar.update)
    for layer, channels in clustered.items():
        neuron_clusters(runner.store, get_model, model, pool, layer, channels, ncfg)
