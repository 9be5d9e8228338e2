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
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Unsupported
from ..models.handle import ModelHandle, channel_means
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
    for rows, acts in scan_patch_layers(model, pool, ids, [layer], patch, stride, batch_images, progress):
        yield rows, acts[layer]


def scan_patch_layers(model: ModelHandle, pool: ImagePool, ids: Sequence[str], layers: Sequence[str],
                      patch: Optional[int] = None, stride: Optional[int] = None, batch_images: int = 8,
                      progress=None) -> Iterator[Tuple[List[int], Dict[str, torch.Tensor]]]:
    """:func:`scan_patches` at several layers at once: one forward pass per batch of patches, stopped at the
    deepest of ``layers``, gives ``{layer: activations}``."""
    size = model.input_size
    for rows, images, tried in source_batches(pool, ids, size, batch_images):
        if rows:
            x = extract_patches(images.to(model.device), size, patch, stride)
            yield rows, model.activations(x, list(layers))
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


class PatchQuestion(ABC):
    """What one sweep over the pool's patches is asked (:func:`ask`): a score per patch and column at one
    layer (``score(acts) -> (P, width)``); per source image the sweep keeps each column's best patch (and,
    with ``lowest``, its worst), and :meth:`answer` ranks the images. Several questions, at one layer or
    several, share one sweep: the patches are cut and run through the model once."""

    layer: str
    width: int
    lowest: bool = False

    @abstractmethod
    def score(self, act: torch.Tensor) -> torch.Tensor:
        """(patches, width) scores of the activations of :attr:`layer` on a batch of patches."""

    @abstractmethod
    def answer(self, ids: List[str], boxes, best, where, ok, worst=None, where_worst=None):
        """The result, from each source image's best (and worst) patch per column."""


class TopChannelPatches(PatchQuestion):
    """The top-``n`` patches (unique source images) of each channel in ``channels`` of ``layer``, scored by
    the channel's spatial mean; with ``bottom``, also the bottom-``n``. Answer: ``{channel: NeuronExamples}``."""

    def __init__(self, layer: str, channels: Sequence[int], n: int, bottom: bool = False):
        self.layer, self.n, self.lowest = layer, n, bottom
        self.channels = torch.as_tensor(list(channels))
        self.width = len(self.channels)

    def score(self, act):
        return channel_means(act)[:, self.channels.to(act.device)]

    def answer(self, ids, boxes, best, where, ok, worst=None, where_worst=None):
        out = {c: _ranked(self.layer, c, j, ids, boxes, best, where, ok, self.n)
               for j, c in enumerate(self.channels.tolist())}
        if self.lowest:
            for j, c in enumerate(self.channels.tolist()):
                _with_bottom(out[c], j, ids, boxes, worst, where_worst, ok, self.n)
        return out


class TopDirectionPatches(PatchQuestion):
    """The top-``n`` patches (unique source images) of each direction (row of ``directions`` (J, C)) at
    ``layer``, scored by the spatial mean of the activations' dot product with it (e.g. CRAFT concepts).
    Answer: a list of :class:`NeuronExamples`, one per row (its ``channel`` is the row)."""

    def __init__(self, layer: str, directions, n: int):
        self.layer, self.n = layer, n
        self.vectors = torch.as_tensor(directions, dtype=torch.float32)
        self.width = self.vectors.shape[0]

    def score(self, act):
        a = channel_means(act)
        return a.float() @ self.vectors.to(a.device).T

    def answer(self, ids, boxes, best, where, ok, worst=None, where_worst=None):
        return [_ranked(self.layer, j, j, ids, boxes, best, where, ok, self.n) for j in range(self.width)]


def ask(model: ModelHandle, pool: ImagePool, ids: Sequence[str], questions: Sequence[PatchQuestion],
        patch: Optional[int] = None, stride: Optional[int] = None, batch_images: int = 8, progress=None) -> list:
    """The answers to ``questions`` (in their order) from one sweep over the patches of the source images
    ``ids``: each patch is cut, resized and run through the model once, up to the deepest layer asked."""
    ids = list(ids)
    patch, stride = patch_grid(model.input_size, patch, stride)
    boxes = patch_boxes(model.input_size, patch, stride)
    kept = []
    for q in questions:
        best = torch.full((len(ids), q.width), -float("inf"))
        where = torch.zeros((len(ids), q.width), dtype=torch.long)
        worst = torch.full((len(ids), q.width), float("inf")) if q.lowest else None
        where_worst = torch.zeros((len(ids), q.width), dtype=torch.long) if q.lowest else None
        kept.append((best, where, worst, where_worst))
    ok = torch.zeros(len(ids), dtype=torch.bool)
    layers = list(dict.fromkeys(q.layer for q in questions))
    with torch.no_grad():
        for rows, acts in scan_patch_layers(model, pool, ids, layers, patch, stride, batch_images, progress):
            ok[rows] = True
            for q, (best, where, worst, where_worst) in zip(questions, kept):
                score = q.score(acts[q.layer]).float().cpu().view(len(rows), len(boxes), q.width)
                val, arg = score.max(1)
                best[rows], where[rows] = val, arg
                if q.lowest:
                    val, arg = score.min(1)
                    worst[rows], where_worst[rows] = val, arg
    return [q.answer(ids, boxes, best, where, ok, worst, where_worst)
            for q, (best, where, worst, where_worst) in zip(questions, kept)]


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
    examples of the negative visualisation), from the same sweep (:class:`TopChannelPatches`)."""
    question = TopChannelPatches(layer, channels, n, bottom)
    return ask(model, pool, pool.source_ids(max_images), [question], patch, stride, batch_images, progress)[0]


def top_images(model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
               max_images: Optional[int] = None, batch_images: int = 8, progress=None) -> Dict[int, NeuronExamples]:
    """The top-``n`` whole images of each channel in ``channels`` of ``layer``, scored by the channel's mean
    (:func:`~atlas.models.handle.channel_means`) on the full image at the model's input size (CoSy's
    control set, VITAL supp. §2.1: "the top-50 real ImageNet images that most strongly activate the target
    neurons"). Each example's box is ``(0, 0)`` and covers the whole image."""
    return top_images_of_layers(model, pool, {layer: channels}, n, max_images, batch_images, progress)[layer]


def top_images_of_layers(model: ModelHandle, pool: ImagePool, layers: Dict[str, Sequence[int]], n: int,
                         max_images: Optional[int] = None, batch_images: int = 8,
                         progress=None) -> Dict[str, Dict[int, NeuronExamples]]:
    """:func:`top_images` of several layers in one sweep (one forward per batch, stopped at the deepest
    layer)."""
    ids = pool.source_ids(max_images)
    names = list(layers)
    chans = {layer: torch.as_tensor(list(layers[layer])) for layer in names}
    scores = {layer: torch.full((len(ids), len(chans[layer])), -float("inf")) for layer in names}
    with torch.no_grad():
        for rows, images, tried in source_batches(pool, ids, model.input_size, batch_images):
            if rows:
                acts = model.activations(images.to(model.device), names)
                for layer in names:
                    a = channel_means(acts[layer])
                    scores[layer][rows] = a[:, chans[layer].to(a.device)].float().cpu()
            if progress is not None:
                progress(tried)
    out: Dict[str, Dict[int, NeuronExamples]] = {}
    for layer in names:
        sc, out[layer] = scores[layer], {}
        for j, c in enumerate(chans[layer].tolist()):
            order = [int(i) for i in torch.argsort(sc[:, j], descending=True) if torch.isfinite(sc[i, j])][:n]
            out[layer][c] = NeuronExamples(layer, c, [ids[i] for i in order], [(0, 0)] * len(order),
                                           [float(sc[i, j]) for i in order])
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
            feats = channel_means(a).float().cpu()
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


def top_patches_key(model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
                    patch: Optional[int] = None, stride: Optional[int] = None, max_images: Optional[int] = None,
                    bottom: bool = False) -> dict:
    """The inputs of a stored :func:`top_patches` scan (stage ``top_patches``)."""
    patch, stride = patch_grid(model.input_size, patch, stride)
    key = {"model": model.name, "pool": pool.fingerprint(), "layer": layer, "channels": sorted(set(channels)),
           "n": n, "patch": patch, "stride": stride, "max_images": max_images, "size": model.input_size, "v": 1,
           **model_key(model.name)}
    if bottom:
        key["bottom"] = True
    return key


def stored_top_patches(store, key: dict):
    """The folder of a stored ``top_patches`` scan that answers ``key``'s question (the same scan of as many
    or more channels and top sources, with the bottom patches if asked), or None."""
    wanted = set(key["channels"])

    def covers(inputs: dict) -> bool:
        same = all(inputs.get(k) == v for k, v in key.items() if k not in ("channels", "n", "bottom"))
        return (same and wanted <= set(inputs.get("channels", ())) and int(inputs.get("n", 0)) >= key["n"]
                and (inputs.get("bottom", False) or not key.get("bottom", False)))

    return store.find_stage("top_patches", covers)


def put_top_patches(store, key: dict, examples: Dict[int, NeuronExamples]):
    """Store a scan's answer (e.g. of :func:`ask`, sharing a sweep) under ``key``; its folder."""
    return store.cached_stage("top_patches", key, lambda: ({"examples.json": examples_to_json(examples)}, {}))


def cached_top_patches(store, model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
                       patch: Optional[int] = None, stride: Optional[int] = None, max_images: Optional[int] = None,
                       progress=None, bottom: bool = False) -> Dict[int, NeuronExamples]:
    """:func:`top_patches` cached in the store (stage ``top_patches``), keyed by everything it depends on.
    A scan of more channels or top sources answers a smaller question, and one that also kept the bottom
    patches answers a request without them."""
    key = top_patches_key(model, pool, layer, channels, n, patch, stride, max_images, bottom)

    def compute():
        return top_patches(model, pool, layer, key["channels"], n, key["patch"], key["stride"], max_images,
                           progress=progress, bottom=bottom)

    if store is None:
        return compute()
    d = stored_top_patches(store, key) or put_top_patches(store, key, compute())
    found = examples_from_json((d / "examples.json").read_bytes())
    return {c: e.head(n) for c, e in found.items() if c in set(key["channels"])}


def cached_top_images(store, model: ModelHandle, pool: ImagePool, layer: str, channels: Sequence[int], n: int,
                      max_images: Optional[int] = None, progress=None) -> Dict[int, NeuronExamples]:
    """:func:`top_images` cached in the store (stage ``top_images``; a scan of more channels or more images
    per channel answers a smaller question too)."""
    return cached_top_images_of_layers(store, model, pool, {layer: channels}, n, max_images, progress)[layer]


def cached_top_images_of_layers(store, model: ModelHandle, pool: ImagePool, layers: Dict[str, Sequence[int]],
                                n: int, max_images: Optional[int] = None,
                                progress=None) -> Dict[str, Dict[int, NeuronExamples]]:
    """:func:`cached_top_images` of several layers: each layer's answer is its own ``top_images`` stage (found
    as before), and the layers none answers are scanned together in one sweep
    (:func:`top_images_of_layers`)."""
    fingerprint = pool.fingerprint()
    keys = {layer: {"model": model.name, "pool": fingerprint, "layer": layer, "channels": sorted(set(chans)),
                    "n": n, "max_images": max_images, "size": model.input_size, "v": 1, **model_key(model.name)}
            for layer, chans in layers.items()}

    def covering(key: dict):
        def covers(inputs: dict) -> bool:
            same = all(inputs.get(k) == v for k, v in key.items() if k not in ("channels", "n"))
            return same and set(key["channels"]) <= set(inputs.get("channels", ())) and int(inputs.get("n", 0)) >= n
        return covers

    found = {} if store is None else \
        {layer: d for layer, key in keys.items() if (d := store.find_stage("top_images", covering(key))) is not None}
    missing = [layer for layer in layers if layer not in found]
    out: Dict[str, Dict[int, NeuronExamples]] = {}
    if missing:
        scanned = top_images_of_layers(model, pool, {layer: keys[layer]["channels"] for layer in missing}, n,
                                       max_images, progress=progress)
        for layer in missing:
            files = {"examples.json": examples_to_json(scanned[layer])}
            if store is None:
                out[layer] = scanned[layer]
            else:
                found[layer] = store.cached_stage("top_images", keys[layer], lambda f=files: (f, {}))
    for layer, d in found.items():
        out[layer] = examples_from_json((d / "examples.json").read_bytes())
    return {layer: {c: NeuronExamples(e.layer, e.channel, e.sources[:n], e.boxes[:n], e.scores[:n])
                    for c, e in out[layer].items() if c in set(keys[layer]["channels"])} for layer in layers}


def cluster_patches(features: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels (M,) of patch features (M, D) (e.g. spatially averaged activations of a layer), for
    splitting a polysemantic neuron's examples into k groups (VITAL Fig. 22)."""
    from sklearn.cluster import KMeans

    x = features.detach().float().cpu().numpy()
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
