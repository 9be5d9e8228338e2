"""VITAL's reference sets (supplementary §1.3) and their features at the matched blocks.

* class neurons: N random images of the class from the configured pool;
* intermediate neurons: the neuron's top-N patches (64 px, stride 51, unique source images, scored by the
  channel's spatial mean activation, upsampled to the input size) - :mod:`atlas.data.patches`;
* polysemantic neurons (Fig. 22): k-means on the features of the neuron's top patches (§1.1: 1000), then
  the top-N patches of one cluster;
* concepts (§2.3): the top-N patches of the class's images along the concept direction.

Features are the block activations A (class neurons) or A x R_norm (relevance variants, §2.1-2.3), where
R is the LRP relevance from the target and, as in VITAL's reference code, R_norm is min-max normalised over
the positions of each (image, channel) and each channel's importance (max relevance, min-max normalised over
the channels of an image) weights its term of the loss, averaged over the references.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..data.patches import cached_top_patches, cluster_patches, patch_images, top_direction_patches
from ..errors import AtlasError
from ..models.handle import as_channels
from ..optim.sortmatch import MatchedBlock, reference_quantiles
from ..relevance import Start, relevance
from ..targets import Target


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
    from ..config import neuron_config

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


# ------------------------------------------------------------------------------------------ features
def normalised_relevance(r: torch.Tensor, layout: str = "nchw") -> Tuple[torch.Tensor, torch.Tensor]:
    """(R_norm shaped like (B, C, L), importance (B, C)): R min-max normalised over the positions of each
    (image, channel); importance = max relevance per channel, min-max normalised over the channels."""
    r = as_channels(r, layout).float()
    lo, hi = r.amin(-1, keepdim=True), r.amax(-1, keepdim=True)
    span = hi - lo
    rn = torch.where(span > 0, (r - lo) / span.clamp(min=1e-12), torch.ones_like(r))
    imp = r.amax(-1)
    ilo, ihi = imp.amin(-1, keepdim=True), imp.amax(-1, keepdim=True)
    imp = (imp - ilo) / (ihi - ilo).clamp(min=1e-12)
    return rn, imp


def plain_reference_stats(model, images: torch.Tensor, blocks: Sequence[MatchedBlock],
                          batch: int = 16) -> Dict[str, torch.Tensor]:
    """{block: (C, L) mean sorted activations} of the reference ``images``."""
    feats: Dict[str, List[torch.Tensor]] = {b.key: [] for b in blocks}
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            acts = model.activations(images[i:i + batch].to(model.device), [b.key for b in blocks])
            for b in blocks:
                feats[b.key].append(as_channels(acts[b.key], b.layout).float().sort(-1).values.cpu())
    return {k: torch.cat(v).mean(0) for k, v in feats.items()}


def relevance_reference_stats(model, images: torch.Tensor, blocks: Sequence[MatchedBlock], start: Start,
                              batch: int = 8) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """({block: (C, L) mean sorted A x R_norm}, {block: (C,) mean channel importance}) of ``images``,
    relevance from ``start`` (applied to every reference)."""
    keys = [b.key for b in blocks]
    q: Dict[str, List[torch.Tensor]] = {k: [] for k in keys}
    w: Dict[str, List[torch.Tensor]] = {k: [] for k in keys}
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        rel = relevance(model, x, start, keys, batch_size=batch)
        with torch.no_grad():  # the plain model's activations (a BN merge changes a conv's own output)
            acts = model.activations(x.to(model.device), keys)
        for b in blocks:
            rn, imp = normalised_relevance(rel.layers[b.key], b.layout)
            q[b.key].append((as_channels(acts[b.key], b.layout).float() * rn.to(acts[b.key].device)).sort(-1).values.cpu())
            w[b.key].append(imp.cpu())
    return ({k: reference_quantiles(torch.cat(v)) for k, v in q.items()},
            {k: torch.cat(v).mean(0) for k, v in w.items()})


def stack_stats(per_target: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """[{block: tensor}] per target -> {block: stacked (K, ...)}."""
    return {k: torch.stack([d[k] for d in per_target]) for k in per_target[0]}


def execution_order(model, keys: Sequence[str]) -> List[str]:
    """``keys`` in the order their modules finish during a forward pass."""
    seen: List[str] = []
    handles = []
    for k in dict.fromkeys(keys):
        mod = model.module_at(k)
        if k.endswith(":in"):
            handles.append(mod.register_forward_pre_hook(lambda m, a, _k=k: seen.append(_k)))
        else:
            handles.append(mod.register_forward_hook(lambda m, a, o, _k=k: seen.append(_k)))
    try:
        with torch.no_grad():
            s = model.input_size
            model(torch.zeros(1, 3, s, s, device=model.device))
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(seen))
