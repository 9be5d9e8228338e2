"""Metric suites: which features a group of FVs (one model, method and target kind) needs, and the table
cells computed from them. A new metric family = one registered :class:`Suite`.

* ``classification`` (class logits and real-image explanations): self top-1 and top-2 (VITAL Tables 1, 3),
  transferability (MACO Table 2), CLIP zero-shot top-1/top-5 (VITAL Table 1), plausibility (MACO Table 1),
  FID and KID to real images of the same classes (VITAL Table 1, MACO Table 1).
* ``neurons``: CoSy AUC and MAD against the neuron's top real patches (VITAL Table 2).
* ``reported``: the metrics a method stores itself in ``meta.json`` (path similarity, visualization
  correlation, classification consistency, ...), averaged over the group.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from ..registry import Registry
from . import functions as fn
from .backbones import Unavailable
from .context import JobRef, MetricContext, Request
from .results import cell
from .reported import gather_reported

Cells = Dict[str, dict]
Details = Dict[str, dict]


@dataclass(frozen=True)
class Suite:
    version: str
    kinds: Tuple[str, ...]
    requests: Callable[[MetricContext, List[JobRef]], List[Request]]
    compute: Callable[[MetricContext, List[JobRef]], Tuple[Cells, Details]]


SUITES: Registry[Suite] = Registry("metric suite")


def _classes(refs: List[JobRef]) -> List[int]:
    return sorted({r.job.target.class_id for r in refs})


# --------------------------------------------------------------------------------------------- classification
def classification_requests(ctx: MetricContext, refs: List[JobRef]) -> List[Request]:
    fv = ctx.fv(refs)
    role, out = ctx.fid_role()
    reqs = [Request("self", "logits", fv), Request("self", "penultimate", fv), Request(role, out, fv),
            Request("clip", "embedding", fv)]
    reqs += [Request(j, "logits", fv) for j in ctx.judges()]
    for c in _classes(refs):
        reqs += [Request("self", "penultimate", ctx.real(c)), Request(role, out, ctx.real(c))]
    return reqs


def _ranked(ctx: MetricContext, role: str, group, k: int = 5) -> Tuple[np.ndarray, np.ndarray]:
    rows = ctx.rows(role, "logits", group)
    if any(r is None for r in rows):
        raise Unavailable(f"{role}: features missing for {sum(r is None for r in rows)} images")
    return fn.top_predictions(np.stack(rows), k)


def clip_ranking(ctx: MetricContext, group) -> np.ndarray:
    """Top-5 CLIP zero-shot class ids per image of ``group`` (Unavailable without CLIP weights)."""
    from .clip import imagenet_text_weights, zero_shot_ranking

    rows = ctx.rows("clip", "embedding", group)
    weights = imagenet_text_weights(ctx.cache, ctx.roles["clip"].probe.id)
    if weights is None or any(r is None for r in rows):
        raise Unavailable("CLIP features were not computed")
    return zero_shot_ranking(np.stack(rows), weights, 5)


def accuracy_cells(ctx: MetricContext, group, labels: List[int], details: List[dict]) -> Cells:
    """Self top-1, transferability per judge and CLIP top-1/top-5 of ``group`` (also used for real images);
    fills each image's ``details`` entry (top-2 predictions, judges' top-1, CLIP top-5)."""
    cells: Cells = {}
    ids, probs = _ranked(ctx, "self", group)
    hits = ids[:, 0] == np.asarray(labels)
    cells["acc"] = cell("Acc. top-1 (%)", fn.accuracy(hits), "higher", ctx.label("self"), n=len(labels))
    for d, i, p in zip(details, ids, probs):
        d["top2"] = [[int(i[0]), float(p[0])], [int(i[1]), float(p[1])]]
        d["correct"] = bool(i[0] == d["label"])
    for j in ctx.judges():
        col, title = f"transfer:{j[6:]}", f"Transfer {j[6:]} (%)"
        try:
            jid, _ = _ranked(ctx, j, group, 1)
        except Unavailable as exc:
            cells[col] = cell(title, better="higher", backbone=ctx.label(j), unavailable=str(exc))
            continue
        cells[col] = cell(title, fn.accuracy(jid[:, 0] == np.asarray(labels)), "higher", ctx.label(j), n=len(labels))
        for d, v in zip(details, jid[:, 0]):
            d.setdefault("judges", {})[j[6:]] = int(v)
    try:
        top5 = clip_ranking(ctx, group)
    except Unavailable as exc:
        for col, title in (("clip_top1", "CLIP top-1 (%)"), ("clip_top5", "CLIP top-5 (%)")):
            cells[col] = cell(title, better="higher", backbone=ctx.label("clip"), unavailable=str(exc))
    else:
        for k in (1, 5):
            cells[f"clip_top{k}"] = cell(f"CLIP top-{k} (%)", fn.accuracy(fn.topk_hits(top5, labels, k)), "higher",
                                         ctx.label("clip"), n=len(labels))
        for d, row in zip(details, top5):
            d["clip_top5"] = [int(v) for v in row]
    return cells


def distribution_cells(ctx: MetricContext, fv_feats: np.ndarray, real_feats: np.ndarray) -> Cells:
    """FID and KID between FVs and real images, on Inception-v3 or the labelled substitute."""
    role = ctx.roles["fid"]
    cells: Cells = {}
    sub = "_sub" if role.replaces else ""
    if role.replaces:
        cells["fid"] = cell("FID", better="lower", backbone=role.replaces.label, unavailable=role.replaces.reason)
    label = ctx.label("fid")
    n_a, n_b = len(fv_feats), len(real_feats)
    dim = fv_feats.shape[1] if fv_feats.ndim == 2 else 0
    why = fn.fid_unavailable(n_a, n_b, dim)
    cells[f"fid{sub}"] = cell("FID", None if why else fn.fid(fv_feats, real_feats), "lower", label, why,
                              n=n_a, note=f"{n_a} FVs vs {n_b} real images")
    if min(n_a, n_b) < 2:
        cells[f"kid{sub}"] = cell("KID", better="lower", backbone=label,
                                  unavailable=f"KID needs >= 2 images per set ({n_a} FVs, {n_b} real)")
    else:
        mean, std = fn.kid(fv_feats, real_feats, seed=ctx.cfg.metrics.seed)
        cells[f"kid{sub}"] = cell("KID", mean, "lower", label, n=n_a, std=std, note=f"{n_a} FVs vs {n_b} real images")
    return cells


def classification_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    fv = ctx.fv(refs)
    labels = [r.job.target.class_id for r in refs]
    details = [{"label": c, "seed": r.job.seed, "target": r.job.target.slug()} for r, c in zip(refs, labels)]
    cells = accuracy_cells(ctx, fv, labels, details)
    # plausibility: distance of each FV to its nearest real image of the class, model's penultimate space
    pen = ctx.rows("self", "penultimate", fv)
    dists = []
    for c in _classes(refs):
        real = ctx.feats("self", "penultimate", ctx.real(c))
        idx = [i for i, lab in enumerate(labels) if lab == c]
        if real.size and all(pen[i] is not None for i in idx):
            for i, d in zip(idx, fn.nearest_distances(np.stack([pen[i] for i in idx]), real)):
                details[i]["plausibility"] = float(d)
                dists.append(float(d))
    cells["plausibility"] = cell("Plausibility (1-NN dist.)", float(np.mean(dists)), "lower", ctx.label("self"),
                                 n=len(dists)) if dists else cell(
        "Plausibility (1-NN dist.)", better="lower", backbone=ctx.label("self"), unavailable="no real images")
    role, out = ctx.fid_role()
    try:
        fv_f = ctx.feats(role, out, fv)
        real_f = ctx.stacked(role, out, [ctx.real(c) for c in _classes(refs)])
        cells.update(distribution_cells(ctx, fv_f, real_f))
    except Unavailable as exc:
        for col in ("fid", "kid"):
            cells[col] = cell(col.upper(), better="lower", backbone=ctx.label("fid"), unavailable=str(exc))
    per: Details = defaultdict(dict)
    for d in details:
        per[d.pop("target")][str(d["seed"])] = d
    return cells, dict(per)


SUITES.add("classification", Suite("1", ("class", "image"), classification_requests, classification_compute))


# --------------------------------------------------------------------------------------------- neurons
def _by_neuron(refs: List[JobRef]) -> Dict[object, List[JobRef]]:
    """The maximising visualisations by neuron (a channel's negative and diverse pictures are not what
    CoSy's AUC/MAD judge: a neuron is compared with its top real patches)."""
    out: Dict[object, List[JobRef]] = defaultdict(list)
    for r in refs:
        if r.job.target.facet is None:
            out[r.job.target].append(r)
    return out


def neuron_requests(ctx: MetricContext, refs: List[JobRef]) -> List[Request]:
    reqs = []
    for t, rs in _by_neuron(refs).items():
        out = f"layer:{t.layer}"
        reqs += [Request("self", out, ctx.fv(rs)), Request("self", out, ctx.control(t.layer, t.channel))]
    return reqs


def neuron_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    aucs, mads, per = [], [], {}
    for t, rs in sorted(_by_neuron(refs).items(), key=lambda kv: kv[0].slug()):
        out = f"layer:{t.layer}"
        a1 = ctx.feats("self", out, ctx.fv(rs))
        a0 = ctx.feats("self", out, ctx.control(t.layer, t.channel))
        if len(a0) < 2 or len(a1) < 1:
            per[t.slug()] = {"unavailable": f"{len(a0)} control patches, {len(a1)} FVs"}
            continue
        a, m = fn.auc(a0[:, t.channel], a1[:, t.channel]), fn.mad(a0[:, t.channel], a1[:, t.channel])
        aucs.append(a)
        mads.append(m)
        per[t.slug()] = {"auc": a, "mad": m, "n_control": len(a0), "n_synthetic": len(a1), "layer": t.layer,
                         "channel": t.channel, "synthetic_mean": float(a1[:, t.channel].mean()),
                         "control_mean": float(a0[:, t.channel].mean())}
    label = f"{ctx.label('self')} (control: top-{ctx.cfg.metrics.control} real patches)"
    if not aucs:
        why = "no neuron had enough control patches and FVs"
        return {"auc": cell("AUC", better="higher", backbone=label, unavailable=why),
                "mad": cell("MAD", better="higher", backbone=label, unavailable=why)}, per
    return {"auc": cell("AUC", float(np.mean(aucs)), "higher", label, n=len(aucs), std=float(np.std(aucs))),
            "mad": cell("MAD", float(np.mean(mads)), "higher", label, n=len(mads), std=float(np.std(mads)))}, per


SUITES.add("neurons", Suite("1", ("neuron",), neuron_requests, neuron_compute))


# --------------------------------------------------------------------------------------------- reported
def reported_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    return gather_reported([r.meta for r in refs])


SUITES.add("reported", Suite("1", ("class", "concept", "neuron", "image"), lambda ctx, refs: [], reported_compute))
