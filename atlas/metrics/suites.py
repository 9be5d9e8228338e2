"""Metric suites: which features a group of FVs (one model, method and target kind) needs, and the table
cells computed from them. A new metric family = one registered :class:`Suite`.

* ``classification`` (class logits and real-image explanations): self top-1 and top-2 (VITAL Tables 1, 3),
  transferability (MACO Table 2), CLIP zero-shot top-1/top-5 (VITAL Table 1), plausibility (MACO Table 1),
  FID and KID to real images of the same classes (MACO Table 1: Inception-v3), and FID in ResNet50's and
  in the model's own penultimate features (VITAL Table 1), each column naming its backbone; the FVs enter
  FID/KID centre-cropped, as the real images do (the evaluation crop 224/256). Every image is judged
  against its *goal* (:func:`goal_of`): a class FV against its class, an explanation of a real image against
  the class it was driven toward (its own class, or its rival for an accentuation toward the rival).
* ``neurons``: CoSy AUC and MAD against the neuron's top-50 real images (VITAL supp. §2.1, Table 2; its top
  patches with ``metrics.control_from = "patches"``).
* ``reported``: the metrics a method stores itself in ``meta.json`` (path similarity, visualization
  correlation, classification consistency, ...), averaged over the group.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from ..errors import AtlasError
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


def goal_of(ref: JobRef) -> int:
    """The class an FV is judged against: a class target's class; for an image target, the goal the job
    recorded (``info.goal`` / ``scores.goal``: its own class or the rival it was driven toward), else its
    own class when it was driven toward it (``toward`` unset)."""
    t = ref.job.target
    if t.kind == "image":
        for part in ("info", "scores"):
            goal = (ref.meta.get(part) or {}).get("goal")
            if isinstance(goal, (int, float)) and not isinstance(goal, bool):
                return int(goal)
        if t.toward is not None and str(t.toward).isdigit():
            return int(t.toward)
        if t.toward is not None:  # a rival is resolved when the job runs: every finished job records it
            raise AtlasError(f"job {ref.job.label()} recorded no goal class in its meta.json")
    return int(t.class_id)


def _classes(refs: List[JobRef]) -> List[int]:
    return sorted({goal_of(r) for r in refs})


# --------------------------------------------------------------------------------------------- classification
def fid_columns(ctx: MetricContext) -> List[Tuple[str, str]]:
    """(column, role) of the FIDs besides Inception's: the model's own penultimate features ("self", VITAL
    Table 1's "Arch.") and each ``metrics.fid_models`` model's (``fid:<name>``, VITAL's "RN50")."""
    return [("fid:self", "self")] + [(r, r) for r in ctx.roles if r.startswith("fid:")]


def classification_requests(ctx: MetricContext, refs: List[JobRef]) -> List[Request]:
    fv, crops = ctx.fv(refs), ctx.fv(refs, crop=True)
    role, out = ctx.fid_role()
    reqs = [Request("self", "logits", fv), Request("self", "penultimate", fv), Request(role, out, crops),
            Request("clip", "embedding", fv)]
    reqs += [Request(j, "logits", fv) for j in ctx.judges()]
    reqs += [Request(r, "penultimate", crops) for _, r in fid_columns(ctx)]
    for c in _classes(refs):
        reqs += [Request("self", "penultimate", ctx.real(c)), Request(role, out, ctx.real(c))]
        reqs += [Request(r, "penultimate", ctx.real(c)) for _, r in fid_columns(ctx) if r != "self"]
    return reqs


def _ranked(ctx: MetricContext, role: str, group, k: int = 5) -> Tuple[np.ndarray, np.ndarray]:
    rows = ctx.rows(role, "logits", group)
    if any(r is None for r in rows):
        raise Unavailable(f"{role}: features missing for {sum(r is None for r in rows)} images")
    return fn.top_predictions(np.stack(rows), k)


def clip_ranking(ctx: MetricContext, group) -> np.ndarray:
    """Top-5 CLIP zero-shot class ids per image of ``group`` (Unavailable without CLIP weights)."""
    from .backbones import own_classnames
    from .clip import imagenet_text_weights, zero_shot_ranking

    rows = ctx.rows("clip", "embedding", group)
    weights = imagenet_text_weights(ctx.cache, ctx.roles["clip"].probe.id, own_classnames(ctx.model))
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


def fid_cell(title: str, label: str, fv_feats: np.ndarray, real_feats: np.ndarray) -> dict:
    """FID between FVs and real images in one backbone's features (unavailable when rank-deficient)."""
    n_a, n_b = len(fv_feats), len(real_feats)
    dim = fv_feats.shape[1] if fv_feats.ndim == 2 else 0
    why = fn.fid_unavailable(n_a, n_b, dim)
    return cell(title, None if why else fn.fid(fv_feats, real_feats), "lower", label, why, n=n_a,
                note=f"{n_a} FVs (centre crops) vs {n_b} real images")


def distribution_cells(ctx: MetricContext, fv_feats: np.ndarray, real_feats: np.ndarray) -> Cells:
    """FID and KID between FVs and real images, on Inception-v3 or the labelled substitute."""
    role = ctx.roles["fid"]
    cells: Cells = {}
    sub = "_sub" if role.replaces else ""
    if role.replaces:
        cells["fid"] = cell("FID", better="lower", backbone=role.replaces.label, unavailable=role.replaces.reason)
    label = ctx.label("fid")
    n_a, n_b = len(fv_feats), len(real_feats)
    cells[f"fid{sub}"] = fid_cell("FID", label, fv_feats, real_feats)
    if min(n_a, n_b) < 2:
        cells[f"kid{sub}"] = cell("KID", better="lower", backbone=label,
                                  unavailable=f"KID needs >= 2 images per set ({n_a} FVs, {n_b} real)")
    else:
        mean, std = fn.kid(fv_feats, real_feats, seed=ctx.cfg.metrics.seed)
        cells[f"kid{sub}"] = cell("KID", mean, "lower", label, n=n_a, std=std,
                                  note=f"{n_a} FVs (centre crops) vs {n_b} real images")
    return cells


def backbone_fid_cells(ctx: MetricContext, refs: List[JobRef]) -> Cells:
    """FID in the model's own penultimate features and in each ``metrics.fid_models`` model's (VITAL
    Table 1 reports FID in ResNet50's and in the architecture's own), one column each, naming its backbone."""
    cells: Cells = {}
    crops, classes = ctx.fv(refs, crop=True), _classes(refs)
    for col, role in fid_columns(ctx):
        if role == "self":
            title, label = "FID (own features)", f"{ctx.label('self')} penultimate (VITAL Table 1 'Arch.')"
        else:
            name = role[4:]
            title = f"FID ({name} features)"
            label = f"{ctx.label(role)} penultimate" + (" (VITAL Table 1 'RN50')" if name == "resnet50" else "")
        try:
            fv_f = ctx.feats(role, "penultimate", crops)
            real_f = ctx.stacked(role, "penultimate", [ctx.real(c) for c in classes])
        except Unavailable as exc:
            cells[col] = cell(title, better="lower", backbone=label, unavailable=str(exc))
            continue
        cells[col] = fid_cell(title, label, fv_f, real_f)
    return cells


def classification_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    fv = ctx.fv(refs)
    labels = [goal_of(r) for r in refs]
    details = [{"label": c, "seed": r.job.seed, "target": r.job.target.slug()} for r, c in zip(refs, labels)]
    cells = accuracy_cells(ctx, fv, labels, details)
    # plausibility: distance of each FV to its nearest real image of the class, model's penultimate space
    pen = ctx.rows("self", "penultimate", fv)
    dists = []
    by_class: Dict[int, List[int]] = defaultdict(list)  # one pass over the FVs (not one per class)
    for i, lab in enumerate(labels):
        by_class[lab].append(i)
    for c in _classes(refs):
        real = ctx.feats("self", "penultimate", ctx.real(c))
        idx = by_class[c]
        if real.size and all(pen[i] is not None for i in idx):
            for i, d in zip(idx, fn.nearest_distances(np.stack([pen[i] for i in idx]), real)):
                details[i]["plausibility"] = float(d)
                dists.append(float(d))
    cells["plausibility"] = cell("Plausibility (1-NN dist.)", float(np.mean(dists)), "lower", ctx.label("self"),
                                 n=len(dists)) if dists else cell(
        "Plausibility (1-NN dist.)", better="lower", backbone=ctx.label("self"), unavailable="no real images")
    role, out = ctx.fid_role()
    try:
        fv_f = ctx.feats(role, out, ctx.fv(refs, crop=True))
        real_f = ctx.stacked(role, out, [ctx.real(c) for c in _classes(refs)])
        cells.update(distribution_cells(ctx, fv_f, real_f))
    except Unavailable as exc:
        for col in ("fid", "kid"):
            cells[col] = cell(col.upper(), better="lower", backbone=ctx.label("fid"), unavailable=str(exc))
    cells.update(backbone_fid_cells(ctx, refs))
    per: Details = defaultdict(dict)
    for d in details:
        per[d.pop("target")][str(d["seed"])] = d
    return cells, dict(per)


SUITES.add("classification", Suite("3", ("class", "image"), classification_requests, classification_compute))


# --------------------------------------------------------------------------------------------- neurons
def _by_neuron(refs: List[JobRef]) -> Dict[object, List[JobRef]]:
    """The maximising visualisations by neuron (a channel's negative and diverse pictures are not what
    CoSy's AUC/MAD judge: a neuron is compared with its top real patches)."""
    out: Dict[object, List[JobRef]] = defaultdict(list)
    for r in refs:
        if r.job.target.facet is None:
            out[r.job.target].append(r)
    return out


def _control_from_images(ctx: MetricContext) -> bool:
    """The control set is whole images, whose activations the sweep that ranked them measured
    (:meth:`MetricContext.control_scores`); top patches are run through the model (cut and resized)."""
    return ctx.cfg.metrics.control_from != "patches"


def neuron_requests(ctx: MetricContext, refs: List[JobRef]) -> List[Request]:
    reqs = []
    for t, rs in _by_neuron(refs).items():
        out = f"layer:{t.layer}"
        reqs.append(Request("self", out, ctx.fv(rs)))
        control = ctx.control(t.layer, t.channel)  # mined here: every planned layer in one sweep
        if not _control_from_images(ctx):
            reqs.append(Request("self", out, control))
    return reqs


def neuron_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    aucs, mads, per = [], [], {}
    for t, rs in sorted(_by_neuron(refs).items(), key=lambda kv: kv[0].slug()):
        out = f"layer:{t.layer}"
        a1 = ctx.feats("self", out, ctx.fv(rs))
        a1 = a1[:, t.channel] if len(a1) else a1.reshape(0)
        if _control_from_images(ctx):
            a0 = ctx.control_scores(t.layer, t.channel)
        else:
            a0 = ctx.feats("self", out, ctx.control(t.layer, t.channel))
            a0 = a0[:, t.channel] if len(a0) else a0.reshape(0)
        if len(a0) < 2 or len(a1) < 1:
            per[t.slug()] = {"unavailable": f"{len(a0)} control {ctx.cfg.metrics.control_from}, {len(a1)} FVs"}
            continue
        a, m = fn.auc(a0, a1), fn.mad(a0, a1)
        aucs.append(a)
        mads.append(m)
        per[t.slug()] = {"auc": a, "mad": m, "n_control": len(a0), "n_synthetic": len(a1), "layer": t.layer,
                         "channel": t.channel, "synthetic_mean": float(a1.mean()), "control_mean": float(a0.mean())}
    m = ctx.cfg.metrics
    label = f"{ctx.label('self')} (control: top-{m.control} real {'patches' if m.control_from == 'patches' else 'images'})"
    if not aucs:
        why = f"no neuron had enough control {m.control_from} and FVs"
        return {"auc": cell("AUC", better="higher", backbone=label, unavailable=why),
                "mad": cell("MAD", better="higher", backbone=label, unavailable=why)}, per
    return {"auc": cell("AUC", float(np.mean(aucs)), "higher", label, n=len(aucs), std=float(np.std(aucs))),
            "mad": cell("MAD", float(np.mean(mads)), "higher", label, n=len(mads), std=float(np.std(mads)))}, per


SUITES.add("neurons", Suite("2", ("neuron",), neuron_requests, neuron_compute))


# --------------------------------------------------------------------------------------------- reported
def reported_compute(ctx: MetricContext, refs: List[JobRef]) -> Tuple[Cells, Details]:
    return gather_reported([r.meta for r in refs])


SUITES.add("reported", Suite("2", ("class", "concept", "neuron", "image"), lambda ctx, refs: [], reported_compute))
