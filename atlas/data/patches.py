"""Dataset examples: the image patches that most activate a neuron (VITAL §1.3; CRAFT's patching).

Images are cut into ``patch`` x ``patch`` squares with stride ``stride`` (VITAL and CRAFT: 64 and 51 at
224 px; by default the same fractions of a smaller or larger input, :func:`patch_grid`), each resized to the
model input, and scored by the spatial mean of the neuron's channel. The
top-N patches with *unique source images* are kept. Scoring every channel of a layer in one pass lets one
sweep over the pool serve many neurons; results are cached as a store stage.

For polysemantic neurons (VITAL Fig. 22, §1.1: "1000 patches for k-Means"), :func:`cluster_patches` splits a
neuron's top patches into k groups by their features, one reference set (and one visualisation) each.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Unsupported
from ..models.handle import ModelHandle
from ..models.user import model_key
from .pools import ImagePool, UnreadableImage

PATCH, STRIDE = 64, 51  # at 224 px (VITAL, CRAFT)
REFERENCE_SIZE = 224


def patch_grid(size: int, patch: Optional[int] = None, stride: Optional[int] = None) -> Tuple[int, int]:
    """``(patch, stride)`` on a ``size``-px image: as given, or by default VITAL's and CRAFT's 64 and 51 px
    at 224 px scaled to ``size`` (9 and 7 at 32 px). A patch larger than the image is an
    :class:`~atlas.errors.Unsupported` error naming both."""
    scale = size / REFERENCE_SIZE
    patch = patch if patch is not None else max(1, round(PATCH * scale))
    stride = stride if stride is not None else max(1, round(STRIDE * scale))
    if patch > size:
        raise Unsupported(f"{patch}-px patches do not fit a {size}-px input; set the patch size to at most {size} "
                          f"(its default follows the input size)")
    return patch, stride


def patch_boxes(size: int, patch: Optional[int] = None, stride: Optional[int] = None) -> List[Tuple[int, int]]:
    """Top-left corners (y, x) of the patches of a ``size`` x ``size`` image (4 x 4 = 16 at 224 px)."""
    patch, stride = patch_grid(size, patch, stride)
    starts = list(range(0, size - patch + 1, stride))
    return [(y, x) for y in starts for x in starts]


def extract_patches(images: torch.Tensor, out_size: int, patch: Optional[int] = None,
                    stride: Optional[int] = None) -> torch.Tensor:
    """(N, C, S, S) -> (N * P, C, out_size, out_size): every patch, bilinearly resized (image-major)."""
    patch, stride = patch_grid(images.shape[-1], patch, stride)
    boxes = patch_boxes(images.shape[-1], patch, stride)
    crops = torch.stack([images[:, :, y:y + patch, x:x + patch] for y, x in boxes], 1).flatten(0, 1)
    return F.interpolate(crops, size=(out_size, out_size), mode="bilinear", align_corners=False)


@dataclass
class NeuronExamples:
    """The top patches of one neuron: source image ids, patch corners (y, x) at the model input size,
    and scores (spatial mean of the channel), best first; and, when the scan asked for them, the bottom
    patches (``negative_*``: the lowest-scoring patch of each source image, lowest first)."""

    layer: str
    channel: int
    sources: List[str] = field(default_factory=list)
    boxes: List[Tuple[int, int]] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)
    negative_sources: List[str] = field(default_factory=list)
    negative_boxes: List[Tuple[int, int]] = field(default_factory=list)
    negative_scores: List[float] = field(default_factory=list)

    def negative(self) -> "NeuronExamples":
        """The bottom patches as a :class:`NeuronExamples` of their own (e.g. to cut them out)."""
        return NeuronExamples(self.layer, self.channel, self.negative_sources, self.negative_boxes,
                              self.negative_scores)

    def head(self, n: int) -> "NeuronExamples":
        """The first ``n`` top and bottom patches."""
        return NeuronExamples(self.layer, self.channel, self.sources[:n], self.boxes[:n], self.scores[:n],
                              self.negative_sources[:n], self.negative_boxes[:n], self.negative_scores[:n])


def scan_patches(model: ModelHandle, pool: ImagePool, ids: Sequence[str], layer: str, patch: Optional[int] = None,
                 stride: Optional[int] = None, batch_images: int = 8,
                 progress=None) -> Iterator[Tuple[List[int], torch.Tensor]]:
    """The one sweep over the pool: for every batch of ``batch_images`` source images, the indices into ``ids``
    of the readable ones and the activations of ``layer`` on all their patches (image-major, ``len(rows) * P``
    rows). Unreadable images are skipped; ``progress(n)`` follows each batch. Run it under ``torch.no_grad``."""
    size = model.input_size
    for rows, images, tried in source_batches(pool, ids, size, batch_images):
        if rows:
            x = extract_patches(images.to(model.device), size, patch, stride)
            yield rows, model.activations(x, [layer])[layer]
        if progress is not None:
            progress(tried)


def source_batches(pool: ImagePool, ids: Sequence[str], size: int,
                   batch_images: int) -> Iterator[Tuple[List[int], Optional[torch.Tensor], int]]:
    """The pool's source images ``ids`` at ``size`` px in batches of ``batch_images``: (indices into ``ids``
    of the readable ones, their stacked images or None if none is, how many were tried)."""
    for start in range(0, len(ids), batch_images):
        chunk, rows = [], []
        stop = min(start + batch_images, len(ids))
        for i in range(start, stop):
            try:
                chunk.append(pool.source_image(ids[i], size))
                rows.append(i)
            except UnreadableImage:
                continue
        yield rows, (torch.stack(chunk) if chunk else None), stop - start


def _best_per_image(model: ModelHandle, pool: ImagePool, ids: List[str], layer: str, score_fn, width: int, patch: int,
                    stride: int, batch_images: int, progress, lowest: bool = False) -> Tuple[torch.Tensor, ...]:
    """For every source image: its best patch's score per column of ``score_fn(acts) -> (P, width)``, which
    patch gave it, and whether the image was readable; with ``lowest``, also its worst patch's score and
    which patch gave it (from the same sweep)."""
    boxes = patch_boxes(model.input_size, patch, stride)
    best = torch.full((len(ids), width), -float("inf"))
    where = torch.zeros((len(ids), width), dtype=torch.long)
    worst = torch.full((len(ids), width), float("inf")) if lowest else None
    where_worst = torch.zeros((len(ids), width), dtype=torch.long) if lowest else None
    ok = torch.zeros(len(ids), dtype=torch.bool)
    with torch.no_grad():
        for rows, act in scan_patches(model, pool, ids, layer, patch, stride, batch_images, progress):
            score = score_fn(act).float().cpu().view(len(rows), len(boxes), width)
            val, arg = score.max(1)
            best[rows], where[rows], ok[rows] = val, arg, True
            if lowest:
                val, arg = score.min(1)
                worst[rows], where_worst[rows] = val, arg
    if lowest:
        return best, where, ok, worst, where_worst
    return best, where, ok


def _ranked(layer: str, channel: int, column: int, ids, boxes, best, where, ok, n: int) -> NeuronExamples:
    order = torch.argsort(best[:, column], descending=True)
    order = [int(i) for i in order if ok[i]][:n]
    return NeuronExamples(layer, channel, [ids[i] for i in order], [boxes[int(where[i, column])] for i in order],
                          [float(best[i, column]) for i in order])


def _with_bottom(ex: NeuronExamples, column: int, ids, boxes, worst, where_worst, ok, n: int) -> NeuronExamples:
    order = torch.argsort(worst[:, column], stable=True)
    order = [int(i) for i in order if ok[i]][:n]
    ex.negative_sources = [ids[i] for i in order]
    ex.negative_boxes = [boxes[int(where_worst[i, column])] for i in order]
    ex.negative_scores = [float(worst[i, column]) for i in order]
    return ex


def top_patches(
    model: ModelHandle,
    pool: ImagePool,
    layer: str,
    channels: Sequence[int],
    n: int,
    patch: Optional[int] = None,
    stride: Optional[int] = None,
    max_images: Optional[int] = None,
    batch_images: int = 8,
    progress=None,
    bottom: bool = False,
) -> Dict[int, NeuronExamples]:
    """The top-``n`` patches (unique source images) of each channel in ``channels`` of ``layer``; with
    ``bottom``, also the bottom-``n`` (each source image's lowest-scoring patch, lowest first: the dataset
    examples of the negative visualisation), from the same sweep."""
    patch, stride = patch_grid(model.input_size, patch, stride)
    ids = pool.source_ids(max_images)
    chans = torch.as_tensor(list(channels))

    def score(act):
        return (act.flatten(2).mean(-1) if act.dim() > 2 else act)[:, chans.to(act.device)]

    got = _best_per_image(model, pool, ids, layer, score, len(chans), patch, stride, batch_images, progress,
                          lowest=bottom)
    best, where, ok = got[:3]
    boxes = patch_boxes(model.input_size, patch, stride)
    out = {c: _ranked(layer, c, j, ids, boxes, best, where, ok, n) for j, c in enumerate(chans.tolist())}
    if bottom:
        for j, c in enumerate(chans.tolist()):
            _with_bottom(out[c], j, ids, boxes, got[3], got[4], ok, n)
    return out


def top_direction_patches(
    model: ModelHandle,
    pool: ImagePool,
    layer: str,
    directions: torch.Tensor,
    n: int,
    sources: Optional[Sequence[str]] = None,
    patch: Optional[int] = None,
    stride: Optional[int] = None,
    batch_images: int = 8,
    progress=None,
) -> List[NeuronExamples]:
    """The top-``n`` patches (unique source images) of each direction (row of ``directions`` (J, C)) at
    ``layer``, scored by the spatial mean of the activations' dot product with it (e.g. CRAFT concepts);
    ``sources`` restricts the search (e.g. to one class's images). ``channel`` of each result is its row."""
    patch, stride = patch_grid(model.input_size, patch, stride)
    ids = list(sources) if sources is not None else pool.source_ids()
    vecs = torch.as_tensor(directions, dtype=torch.float32)

    def score(act):
        a = act.flatten(2).mean(-1) if act.dim() > 2 else act
        return a.float() @ vecs.to(a.device).T

    best, where, ok = _best_per_image(model, pool, ids, layer, score, vecs.shape[0], patch, stride, batch_images,
                                      progress)
    boxes = patch_boxes(model.input_size, patch, stride)
    return [_ranked(layer, j, j, ids, boxes, best, where, ok, n) for j in range(vecs.shape[0])]


def top_images(model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
               max_images: Optional[int] = None, batch_images: int = 8, progress=None) -> Dict[int, NeuronExamples]:
    """The top-``n`` whole images of each channel in ``channels`` of ``layer``, scored by the spatial mean of
    the channel on the full image at the model's input size (CoSy's control set, VITAL supp. §2.1: "the
    top-50 real ImageNet images that most strongly activate the target neurons"). Each example's box is
    ``(0, 0)`` and covers the whole image."""
    ids = pool.source_ids(max_images)
    chans = torch.as_tensor(list(channels))
    size = model.input_size
    scores = torch.full((len(ids), len(chans)), -float("inf"))
    with torch.no_grad():
        for rows, images, tried in source_batches(pool, ids, size, batch_images):
            if rows:
                a = model.activations(images.to(model.device), [layer])[layer]
                a = a.flatten(2).mean(-1) if a.dim() > 2 else a
                scores[rows] = a[:, chans.to(a.device)].float().cpu()
            if progress is not None:
                progress(tried)
    out = {}
    for j, c in enumerate(chans.tolist()):
        order = [int(i) for i in torch.argsort(scores[:, j], descending=True) if torch.isfinite(scores[i, j])][:n]
        out[c] = NeuronExamples(layer, c, [ids[i] for i in order], [(0, 0)] * len(order),
                                [float(scores[i, j]) for i in order])
    return out


def top_patch_features(model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], m: int,
                       max_images: Optional[int] = None, batch_images: int = 4) -> Dict[int, dict]:
    """Per channel: the ``m`` best patches (any source, not only one per image) with their scores, sources,
    boxes and features (spatial mean of all channels of ``layer``) - one sweep over the pool for all
    ``channels`` (e.g. to split a polysemantic neuron's patches by k-means)."""
    boxes = patch_boxes(model.input_size)
    ids = pool.source_ids(max_images)
    chans = list(channels)
    best = {c: (torch.empty(0), torch.empty(0, 0), torch.empty(0, dtype=torch.long)) for c in chans}
    with torch.no_grad():
        for rows, a in scan_patches(model, pool, ids, layer, batch_images=batch_images):
            feats = (a.flatten(2).mean(-1) if a.dim() > 2 else a).float().cpu()
            where = torch.tensor([r * len(boxes) + b for r in rows for b in range(len(boxes))])
            for c in chans:
                s, f, w = best[c]
                s = torch.cat([s, feats[:, c]])
                f = torch.cat([f, feats]) if f.numel() else feats
                w = torch.cat([w, where])
                top = torch.topk(s, min(m, s.shape[0])).indices
                best[c] = (s[top], f[top], w[top])
    out = {}
    for c, (s, f, w) in best.items():
        out[c] = {"scores": s.numpy(), "features": f, "sources": [ids[int(i) // len(boxes)] for i in w],
                  "boxes": [boxes[int(i) % len(boxes)] for i in w]}
    return out


def patch_images(pool: ImagePool, ex: NeuronExamples, out_size: int, patch: Optional[int] = None,
                 size: Optional[int] = None) -> torch.Tensor:
    """The example patches of ``ex`` (boxes on ``size``-px images, default ``out_size``) as
    (n, 3, out_size, out_size) in [0, 1] (e.g. VITAL references)."""
    size = size or out_size
    patch = patch_grid(size, patch)[0]
    crops = []
    for src, (y, x) in zip(ex.sources, ex.boxes):
        img = pool.source_image(src, size)
        crops.append(img[:, y:y + patch, x:x + patch])
    if not crops:
        return torch.zeros(0, 3, out_size, out_size)
    return F.interpolate(torch.stack(crops), size=(out_size, out_size), mode="bilinear", align_corners=False)


def examples_to_json(examples: Dict[int, NeuronExamples]) -> bytes:
    return json.dumps({str(c): asdict(e) for c, e in examples.items()}, indent=1).encode()


def example_from_dict(d: dict) -> NeuronExamples:
    return NeuronExamples(d["layer"], d["channel"], d["sources"], [tuple(b) for b in d["boxes"]], d["scores"],
                          d.get("negative_sources", []), [tuple(b) for b in d.get("negative_boxes", [])],
                          d.get("negative_scores", []))


def examples_from_json(data: bytes) -> Dict[int, NeuronExamples]:
    return {int(c): example_from_dict(d) for c, d in json.loads(data).items()}


def cached_top_patches(store, model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
                       patch: Optional[int] = None, stride: Optional[int] = None, max_images: Optional[int] = None,
                       progress=None, bottom: bool = False) -> Dict[int, NeuronExamples]:
    """:func:`top_patches` cached in the store (stage ``top_patches``), keyed by everything it depends on.
    A scan that also kept the bottom patches (``bottom``) answers a request without them too."""
    patch, stride = patch_grid(model.input_size, patch, stride)
    key = {"model": model.name, "pool": pool.fingerprint(), "layer": layer, "channels": sorted(set(channels)),
           "n": n, "patch": patch, "stride": stride, "max_images": max_images, "size": model.input_size, "v": 1,
           **model_key(model.name)}
    if bottom:
        key["bottom"] = True

    def compute():
        ex = top_patches(model, pool, layer, sorted(set(channels)), n, patch, stride, max_images, progress=progress,
                         bottom=bottom)
        return {"examples.json": examples_to_json(ex)}, {}

    if store is None:
        _, files = None, compute()[0]
        return examples_from_json(files["examples.json"])
    wanted = set(key["channels"])

    def covers(inputs: dict) -> bool:  # a scan of more channels / more top sources answers this one too
        same = all(inputs.get(k) == v for k, v in key.items() if k not in ("channels", "n", "bottom"))
        return (same and wanted <= set(inputs.get("channels", ())) and int(inputs.get("n", 0)) >= n
                and (inputs.get("bottom", False) or not bottom))

    d = store.find_stage("top_patches", covers) or store.cached_stage("top_patches", key, compute)
    found = examples_from_json((d / "examples.json").read_bytes())
    return {c: e.head(n) for c, e in found.items() if c in wanted}


def cached_top_images(store, model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
                      max_images: Optional[int] = None, progress=None) -> Dict[int, NeuronExamples]:
    """:func:`top_images` cached in the store (stage ``top_images``; a scan of more channels or more images
    per channel answers a smaller question too)."""
    key = {"model": model.name, "pool": pool.fingerprint(), "layer": layer, "channels": sorted(set(channels)),
           "n": n, "max_images": max_images, "size": model.input_size, "v": 1, **model_key(model.name)}

    def compute():
        ex = top_images(model, pool, layer, sorted(set(channels)), n, max_images, progress=progress)
        return {"examples.json": examples_to_json(ex)}, {}

    if store is None:
        return examples_from_json(compute()[0]["examples.json"])
    wanted = set(key["channels"])

    def covers(inputs: dict) -> bool:
        same = all(inputs.get(k) == v for k, v in key.items() if k not in ("channels", "n"))
        return same and wanted <= set(inputs.get("channels", ())) and int(inputs.get("n", 0)) >= n

    d = store.find_stage("top_images", covers) or store.cached_stage("top_images", key, compute)
    found = examples_from_json((d / "examples.json").read_bytes())
    return {c: NeuronExamples(e.layer, e.channel, e.sources[:n], e.boxes[:n], e.scores[:n])
            for c, e in found.items() if c in wanted}


def cluster_patches(features: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels (M,) of patch features (M, D) (e.g. spatially averaged activations of a layer), for
    splitting a polysemantic neuron's examples into k groups (VITAL Fig. 22)."""
    from sklearn.cluster import KMeans

    x = features.detach().float().cpu().numpy()
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
