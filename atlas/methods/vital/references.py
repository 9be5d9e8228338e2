"""VITAL's reference sets (supplementary §1.3).

* class neurons: N random images of the class from the configured pool;
* intermediate neurons: the neuron's top-N patches (64 px, stride 51, unique source images, scored by the
  channel's spatial mean activation, upsampled to the input size) - :mod:`atlas.data.patches`;
* polysemantic neurons (Fig. 22): k-means on the features of the neuron's top patches (§1.1: 1000), then
  the top-N patches of one cluster;
* concepts (§2.3): the top-N patches of the class's images along the concept direction.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

import torch

from ...data.patches import cached_top_patches, cluster_patches, patch_images, top_direction_patches
from ...errors import AtlasError
from ...targets import Target


def _enough(images: torch.Tensor, n: int, what: str, allow_fewer: bool) -> torch.Tensor:
    if images.shape[0] == 0:
        raise AtlasError(f"no reference images for {what}")
    if images.shape[0] < n and not allow_fewer:
        raise AtlasError(f"{what} has {images.shape[0]} reference images, fewer than the {n} asked for; lower "
                         f"the vital setting 'references' or set allow_fewer = true to proceed with what exists")
    return images


def class_references(ctx, class_id: int, n: int, allow_fewer: bool) -> torch.Tensor:
    """N random images of ``class_id`` (fixed set: reference seed 0)."""
    size = ctx.model.input_size
    return ctx.pool.reference_images(class_id, n, size, seed=0, allow_fewer=allow_fewer)


def neuron_references(ctx, target: Target, n: int, cfg) -> torch.Tensor:
    """The neuron's top-N patches (unique sources), or, for a cluster target, the top-N of its cluster."""
    model, pool = ctx.model, ctx.pool
    if target.cluster is not None:
        return _cluster_references(ctx, target, n, cfg)
    channels = _layer_channels(ctx, target)
    ex = cached_top_patches(ctx.store, model, pool, target.layer, channels, n, cfg.patch, cfg.stride,
                            max_images=examples_max_images(ctx.config))[target.channel]
    imgs = patch_images(pool, ex, model.input_size, cfg.patch)
    return _enough(imgs, n, f"neuron {target.layer}:{target.channel}", cfg.allow_fewer)


def examples_max_images(config) -> Optional[int]:
    """The pool images searched for a neuron's top patches: the same as for its dataset examples
    (``[targets.neuron_settings] max_images``), so that one scan serves the neuron page, VITAL's references
    and the CoSy control set."""
    if config is None or not hasattr(config, "targets"):
        return None
    from ...config import neuron_config

    return neuron_config(config).max_images or None


def _layer_channels(ctx, target: Target) -> List[int]:
    """The configured neurons of the target's layer (one top-patch scan serves all of them)."""
    listed = [c for layer, c in getattr(getattr(ctx.config, "targets", None), "neurons", ()) if layer == target.layer]
    return sorted(set(listed + [target.channel]))


def _cluster_references(ctx, target: Target, n: int, cfg) -> torch.Tensor:
    if cfg.clusters < 2 or not 0 <= target.cluster < cfg.clusters:
        raise AtlasError(f"cluster {target.cluster} of neuron {target.layer}:{target.channel} needs the vital setting "
                         f"'clusters' >= 2 and the cluster index in 0-{max(cfg.clusters, 2) - 1}")
    model, pool = ctx.model, ctx.pool
    ex = cached_top_patches(ctx.store, model, pool, target.layer, [target.channel], cfg.cluster_patches, cfg.patch,
                            cfg.stride)[target.channel]
    labels = cluster_labels(ctx, target, ex, cfg)
    members = [i for i, lab in enumerate(labels) if lab == target.cluster][:n]
    ex.sources = [ex.sources[i] for i in members]
    ex.boxes = [ex.boxes[i] for i in members]
    ex.scores = [ex.scores[i] for i in members]
    imgs = patch_images(pool, ex, model.input_size, cfg.patch)
    return _enough(imgs, n, f"cluster {target.cluster} of neuron {target.layer}:{target.channel}", cfg.allow_fewer)


def cluster_labels(ctx, target: Target, ex, cfg) -> List[int]:
    """k-means labels of the neuron's top patches on their spatially averaged activations at the neuron's
    layer (all channels); cached as the store stage ``vital_clusters``."""
    model, pool = ctx.model, ctx.pool
    if len(ex.sources) < cfg.clusters:
        raise AtlasError(f"neuron {target.layer}:{target.channel} has {len(ex.sources)} top patches, fewer than the "
                         f"{cfg.clusters} clusters asked for")

    def compute():
        feats = []
        for i in range(0, len(ex.sources), 16):
            part = type(ex)(ex.layer, ex.channel, ex.sources[i:i + 16], ex.boxes[i:i + 16], ex.scores[i:i + 16])
            with torch.no_grad():
                a = model.activations(patch_images(pool, part, model.input_size, cfg.patch).to(model.device),
                                      [target.layer])[target.layer]
            feats.append(a.flatten(2).mean(-1).cpu() if a.dim() > 2 else a.cpu())
        labels = cluster_patches(torch.cat(feats), cfg.clusters, seed=0)
        return {"labels.json": json.dumps([int(v) for v in labels]).encode()}, {}

    key = {"model": model.name, "pool": pool.fingerprint(), "layer": target.layer, "channel": target.channel,
           "k": cfg.clusters, "patches": len(ex.sources), "sources": ex.sources[:3], "v": 1}
    if ctx.store is None:
        return json.loads(compute()[0]["labels.json"])
    d = ctx.store.cached_stage("vital_clusters", key, compute)
    return json.loads((d / "labels.json").read_text())


def concept_references(ctx, targets: Sequence[Target], layer: str, vectors: torch.Tensor, n: int,
                       cfg) -> List[torch.Tensor]:
    """Per concept target: the top-N patches of its class's images along its direction at ``layer``
    (one scan of a class's images serves every concept of that class in the batch)."""
    pool, model = ctx.pool, ctx.model
    out: Dict[int, torch.Tensor] = {}
    for cid in dict.fromkeys(t.class_id for t in targets):
        rows = [i for i, t in enumerate(targets) if t.class_id == cid]
        sources = [s for s in pool.source_ids() if s.split("/", 1)[0] == str(cid)]
        found = top_direction_patches(model, pool, layer, vectors[rows], n, sources=sources, patch=cfg.patch,
                                      stride=cfg.stride)
        for i, ex in zip(rows, found):
            out[i] = _enough(patch_images(pool, ex, model.input_size, cfg.patch), n,
                             f"concept {targets[i].slug()}", cfg.allow_fewer)
    return [out[i] for i in range(len(targets))]
