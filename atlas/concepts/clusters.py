"""Polysemantic neurons split by k-means (VITAL supplementary §1.1, Fig. 22).

The ``cluster_patches`` patches (VITAL: 1000) that most activate the neuron - not restricted to unique
source images - are described by their spatially averaged activations at the neuron's layer (all
channels) and grouped by k-means (:func:`atlas.data.patches.cluster_patches`). Each cluster gets:
its members' top patches with unique sources (the references VITAL matches), a mosaic, and its
centroid, the direction MACO and Fourier (which take no references) maximise for a cluster target
(dot x cos^2, as for concepts).

Stage ``neuron_clusters``, one entry per neuron; resource ``neuron_clusters``: ``provider(target)`` ->
``(layer, centroid)`` for a neuron target with ``cluster`` set, and ``provider.references(target, n,
size)`` -> the cluster's patches (for VITAL).
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..config import NeuronConfig, neuron_config, stable_hash
from ..models.user import model_key
from ..data.mosaic import mosaic_png
from ..data.patches import NeuronExamples, cluster_patches, patch_images, top_patch_features
from ..errors import AtlasError
from .neurons import check_channels

STAGE = "neuron_clusters"
VERSION = "1"


def cluster_fit(cfg) -> str:
    """Hash of the clustering settings (goes into cluster targets, hence into their jobs' keys)."""
    n = neuron_config(cfg)
    return stable_hash({"clusters": n.clusters, "patches": n.cluster_patches, "max_images": n.max_images,
                        "pool": cfg.data.pool, "v": VERSION}, length=12)


def split_neuron(found: dict, layer: str, channel: int, k: int, examples: int, seed: int = 0) -> List[dict]:
    """k-means on one neuron's top patches -> per cluster: size, centroid and unique-source examples."""
    if len(found["scores"]) < k:
        raise AtlasError(f"neuron {layer}#{channel}: {len(found['scores'])} patches cannot form {k} clusters")
    labels = cluster_patches(found["features"], k, seed=seed)
    out = []
    for j in range(k):
        idx = [i for i in np.argsort(-found["scores"], kind="stable") if labels[i] == j]
        ex = NeuronExamples(layer, channel)
        for i in idx:
            if found["sources"][i] not in ex.sources and len(ex.sources) < examples:
                ex.sources.append(found["sources"][i])
                ex.boxes.append(tuple(found["boxes"][i]))
                ex.scores.append(float(found["scores"][i]))
        centroid = found["features"][idx].mean(0)
        out.append({"size": len(idx), "centroid": centroid.tolist(), "examples": ex.__dict__})
    out.sort(key=lambda c: -max(c["examples"]["scores"] or [0.0]))  # cluster 0 holds the best patch
    return out


def _key(model: str, pool, layer: str, channel: int, ncfg: NeuronConfig) -> dict:
    return {"model": model, "layer": layer, "channel": int(channel), "clusters": ncfg.clusters,
            "patches": ncfg.cluster_patches, "max_images": ncfg.max_images, "examples": ncfg.examples,
            "pool": pool.fingerprint(), "v": VERSION, **model_key(model)}


def neuron_clusters(store, get_model, model_name: str, pool, layer: str, channels: Sequence[int],
                    ncfg: NeuronConfig) -> Dict[int, List[dict]]:
    """Clusters of each neuron in ``channels`` (stage ``neuron_clusters``; one sweep for all missing)."""
    keys = {c: _key(model_name, pool, layer, c, ncfg) for c in channels}
    out, missing = {}, []
    for c, key in keys.items():
        d = store.get_stage(STAGE, stable_hash(key, length=20)) if store is not None else None
        if d is not None:
            out[c] = json.loads((d / "clusters.json").read_bytes())
        else:
            missing.append(c)
    if missing:
        model = get_model()
        check_channels(model, layer, missing)
        found = top_patch_features(model, pool, layer, missing, ncfg.cluster_patches, ncfg.max_images or None)
        for c in missing:
            clusters = split_neuron(found[c], layer, c, ncfg.clusters, ncfg.examples, ncfg.seed)
            files = {"clusters.json": json.dumps(clusters).encode()}
            for j, cl in enumerate(clusters):
                ex = NeuronExamples(**{**cl["examples"], "boxes": [tuple(b) for b in cl["examples"]["boxes"]]})
                patches = patch_images(pool, ex, 64, size=model.input_size)[: ncfg.mosaic]
                files[f"mosaic-k{j}.png"] = mosaic_png(patches, cols=min(10, max(1, len(patches))), tile=48)
            if store is not None:
                store.put_stage(STAGE, stable_hash(keys[c], length=20), files, {"inputs": keys[c]})
            out[c] = clusters
    return out


class ClusterProvider:
    """The ``neuron_clusters`` resource (see the module docstring)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cache: Dict[tuple, List[dict]] = {}

    def clusters(self, target) -> dict:
        if target.cluster is None:
            raise AtlasError(f"target {target.slug()} is not a cluster of a neuron")
        key = (target.layer, target.channel)
        if key not in self.cache:
            from ..config import AtlasConfig

            ncfg = neuron_config(self.ctx.config or AtlasConfig())
            self.cache[key] = neuron_clusters(self.ctx.store, lambda: self.ctx.model, self.ctx.model.name,
                                              self.ctx.pool, target.layer, [target.channel], ncfg)[target.channel]
        found = self.cache[key]
        if not 0 <= target.cluster < len(found):
            raise AtlasError(f"cluster {target.cluster} of neuron {target.layer}#{target.channel} does not exist; "
                             f"there are {len(found)}")
        return found[target.cluster]

    def __call__(self, target):
        return target.layer, torch.tensor(self.clusters(target)["centroid"], dtype=torch.float32)

    def references(self, target, n: Optional[int] = None, size: Optional[int] = None) -> torch.Tensor:
        """The cluster's top patches (unique sources) as (n, 3, size, size) in [0, 1]."""
        cl = self.clusters(target)["examples"]
        ex = NeuronExamples(cl["layer"], cl["channel"], cl["sources"][:n], [tuple(b) for b in cl["boxes"][:n]],
                            cl["scores"][:n])
        size = size or self.ctx.model.input_size
        return patch_images(self.ctx.pool, ex, size, size=self.ctx.model.input_size)
