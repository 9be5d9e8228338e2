"""Model-level results: the "real images" baseline row (VITAL Table 1's "ImageNet" row) and the t-SNE of
real images and FVs (VITAL Fig. 9)."""
from __future__ import annotations

from collections import Counter
from typing import Dict, List

import numpy as np

from ..embedding import default_perplexity, tsne_2d
from .backbones import Unavailable
from .context import JobRef, MetricContext, Request
from .suites import accuracy_cells

BASELINE_VERSION = "1"
TSNE_VERSION = "1"


# --------------------------------------------------------------------------------------------- baseline
def baseline_requests(ctx: MetricContext, classes: List[int]) -> List[Request]:
    reqs = []
    for c in classes:
        g = ctx.real(c)
        reqs += [Request("self", "logits", g), Request("clip", "embedding", g)]
        reqs += [Request(j, "logits", g) for j in ctx.judges()]
    return reqs


def baseline_compute(ctx: MetricContext, classes: List[int]) -> dict:
    """Accuracy of the model, the judges and CLIP on the real images themselves, and per class the model's
    most frequent top-1 prediction."""
    present = [c for c in classes if len(ctx.feats("self", "logits", ctx.real(c)))]
    if not present:
        return {"cells": {}, "classes": {}, "unavailable": "no real images of the configured classes in the pool"}
    from .cache import ItemGroup

    groups = [ctx.real(c) for c in present]
    ids = tuple(i for g in groups for i, r in zip(g.ids, ctx.rows("self", "logits", g)) if r is not None)
    labels = [c for g, c in zip(groups, present) for r in ctx.rows("self", "logits", g) if r is not None]
    union = ItemGroup("real images", ids, lambda idx: [])
    details = [{"label": c, "seed": 0} for c in labels]
    cells = accuracy_cells(ctx, union, labels, details)
    per: Dict[str, dict] = {}
    for c in present:
        rows = [d for d in details if d["label"] == c]
        top = Counter(d["top2"][0][0] for d in rows).most_common(1)[0][0]
        probs = [d["top2"][0][1] for d in rows if d["top2"][0][0] == c]
        per[str(c)] = {"n": len(rows), "acc": 100.0 * sum(d["correct"] for d in rows) / len(rows),
                       "top1": int(top), "class_prob": float(np.mean(probs)) if probs else None}
    return {"cells": cells, "classes": per}


# --------------------------------------------------------------------------------------------- t-SNE
def tsne_classes(ctx: MetricContext, classes: List[int]) -> List[int]:
    return list(ctx.cfg.metrics.tsne_classes or classes[:10])


def tsne_refs(refs: List[JobRef], classes: List[int]) -> List[JobRef]:
    """The class-logit FVs (every method, every seed) of the t-SNE's classes."""
    keep = set(classes)
    return [r for r in refs if r.job.target.kind == "class" and r.job.target.class_id in keep]


def tsne_requests(ctx: MetricContext, refs: List[JobRef], classes: List[int]) -> List[Request]:
    reqs = [Request("self", "penultimate", ctx.real(c)) for c in classes]
    if refs:
        reqs.append(Request("self", "penultimate", ctx.fv(refs)))
    return reqs


def tsne_compute(ctx: MetricContext, refs: List[JobRef], classes: List[int]) -> dict:
    """Penultimate features of real images and FVs embedded together; one point per image."""
    points, feats = [], []
    try:
        for c in classes:
            f = ctx.feats("self", "penultimate", ctx.real(c))
            feats += list(f)
            points += [{"class_id": c, "method": "real"} for _ in range(len(f))]
        if refs:
            for r, row in zip(refs, ctx.rows("self", "penultimate", ctx.fv(refs))):
                if row is not None:
                    feats.append(row)
                    points.append({"class_id": r.job.target.class_id, "method": r.job.method, "key": r.job.key,
                                   "seed": r.job.seed})
    except Unavailable as exc:
        return {"unavailable": str(exc), "points": []}
    if len(feats) < 4:
        return {"unavailable": f"t-SNE needs at least 4 images, got {len(feats)}", "points": []}
    seed = ctx.cfg.metrics.seed
    xy = tsne_2d(np.stack(feats), seed=seed)
    for p, (x, y) in zip(points, xy):
        p["x"], p["y"] = round(float(x), 5), round(float(y), 5)
    return {"points": points, "classes": classes, "seed": seed, "perplexity": default_perplexity(len(feats)),
            "backbone": f"{ctx.label('self')} penultimate", "n_real": sum(p["method"] == "real" for p in points),
            "n_fv": sum(p["method"] != "real" for p in points), "centroid_distance": _centroid_distances(points)}


def _centroid_distances(points: List[dict]) -> Dict[str, float]:
    """Per method: mean distance of its FVs to the centroid of their class's real images in the embedding
    (VITAL: "positions generated features at the center of their respective clusters"); lower is closer."""
    real: Dict[int, list] = {}
    for p in points:
        if p["method"] == "real":
            real.setdefault(p["class_id"], []).append((p["x"], p["y"]))
    cents = {c: np.mean(v, 0) for c, v in real.items()}
    out: Dict[str, list] = {}
    for p in points:
        if p["method"] != "real" and p["class_id"] in cents:
            out.setdefault(p["method"], []).append(float(np.hypot(*(np.array([p["x"], p["y"]]) - cents[p["class_id"]]))))
    return {m: float(np.mean(v)) for m, v in out.items()}

