"""The metrics step: apply the suites to a finished build and store the results (``atlas metrics``).

It reads only the store (images and ``meta.json`` of finished jobs, stage results) and the real-image pool.
Per model, the results are *units* - one per (method, target kind), a "real images" baseline and a t-SNE -
each stored as JSON under the hash of everything it depends on (jobs and their image checksums, the
metrics settings, the pool, the identity of every backbone's weights). Fresh units are skipped; stale or
missing ones are recomputed, their features coming from a per-image cache, so a new job costs only its own
forward passes. Backbones are loaded one at a time, only if some feature is missing.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from .. import __version__
from ..config import AtlasConfig, stable_hash
from ..data import open_model_pool, open_pool
from ..data.pools import model_labels
from ..errors import AtlasError
from ..methods.base import METHODS
from ..models import check_model_name
from ..pipeline.planner import Plan
from ..progress import stage
from ..pipeline.store import Store
from .backbones import Unavailable, roles_for
from .cache import ItemGroup
from .context import JobRef, MetricContext, Request
from .model_units import (BASELINE_VERSION, TSNE_VERSION, baseline_compute, baseline_requests, tsne_classes,
                          tsne_compute, tsne_refs, tsne_requests)
from .results import read_result, scope_id, write_index, write_result
from .suites import SUITES

log = logging.getLogger(__name__)
BATCH = 16


@dataclass
class Unit:
    """One stored result: its name, key, the features it needs and how to compute it."""

    name: str
    key: str
    requests: Callable[[], List[Request]]
    compute: Callable[[], dict]


@dataclass
class MetricsReport:
    computed: List[str] = field(default_factory=list)
    fresh: int = 0
    unavailable: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def check_metrics_config(cfg: AtlasConfig) -> None:
    """One-line errors for unknown judge or substitute models, before anything runs."""
    for name in (*cfg.metrics.judges, cfg.metrics.substitute, *cfg.metrics.fid_models):
        check_model_name(name)
    if cfg.metrics.tsne_classes:
        bad = [c for c in cfg.metrics.tsne_classes if not 0 <= c < 1000]
        if bad:
            raise AtlasError(f"unknown class {bad[0]} in metrics.tsne_classes; valid ids are 0-999")


def done_refs(plan: Plan, store: Store, model: str) -> List[JobRef]:
    """The plan's finished jobs of ``model`` with their metadata and the checksum of the image the metrics
    judge (the method's ``judged`` file: e.g. attribution visualization's masked composite)."""
    refs = []
    for job in plan.jobs:
        if job.model != model:
            continue
        meta = store.meta(job.key)
        files = (meta or {}).get("files", {})
        judged = METHODS.get(job.method).judged if job.method in METHODS else "image.png"
        name = judged if judged in files else "image.png"
        if name in files:
            refs.append(JobRef(job, meta, files[name], name))
    return refs


def planned_neurons(plan: Plan, model: str) -> Dict[str, List[int]]:
    """{layer: sorted channels} of every neuron target the plan has for ``model``."""
    out: Dict[str, set] = defaultdict(set)
    for j in plan.jobs:
        if j.model == model and j.target.kind == "neuron":
            out[j.target.layer].add(j.target.channel)
    return {k: sorted(v) for k, v in out.items()}


def _merge(into: dict, more: dict) -> dict:
    """Recursive dict update (per-target details from several suites)."""
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


class LazyPool:
    """Opens the configured image pool, in ``model``'s class ids, on first use (the metrics may need no real
    image at all)."""

    def __init__(self, spec: str, model: Optional[str] = None):
        self.spec, self.model, self.pool = spec, model, None

    def __call__(self):
        if self.pool is None:
            self.pool = open_model_pool(self.spec, self.model) if self.model else open_pool(self.spec)
        return self.pool


class LoadedImages:
    """The images loaded for one backbone, kept for the next one (up to ``budget`` bytes; the least recently
    used go first). The backbones run one after the other over the same FVs and real images, and loading a
    real image (decoding, a random resized crop at 299 px) three times cost ~5 % of the demo's metrics step;
    every other backbone walks the images in reverse order, so what the last one loaded is what the next one
    asks for first."""

    def __init__(self, budget: int = 512 << 20):
        self.budget, self.used = budget, 0
        self.items: "OrderedDict[str, torch.Tensor]" = OrderedDict()

    def load(self, group: ItemGroup, idx: Sequence[int]) -> List[Optional[torch.Tensor]]:
        missing = [i for i in idx if group.ids[i] not in self.items]
        fresh = dict(zip(missing, group.load(missing))) if missing else {}
        out = [fresh[i] if i in fresh else self.items[group.ids[i]] for i in idx]  # read all before keeping any
        for i, img in zip(idx, out):
            if img is not None:
                self._keep(group.ids[i], img)
        return out

    def _keep(self, item: str, img: torch.Tensor) -> None:
        if item in self.items:
            self.items.move_to_end(item)
            return
        size = img.numel() * img.element_size()
        if size > self.budget:
            return
        self.items[item] = img
        self.used += size
        while self.used > self.budget:
            _, old = self.items.popitem(last=False)
            self.used -= old.numel() * old.element_size()


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    if img.shape[-1] == size and img.shape[-2] == size:
        return img
    return F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


class MetricsRunner:
    """Computes the metrics of a plan's finished jobs into ``store``."""

    def __init__(self, cfg: AtlasConfig, store: Store, device=None, progress: bool = True):
        from ..pipeline.runner import pick_device

        self.cfg, self.store, self.progress = cfg, store, progress
        self.device = pick_device(str(device or cfg.device))

    def run(self, plan: Plan) -> MetricsReport:
        check_metrics_config(self.cfg)
        start = time.perf_counter()
        report = MetricsReport()
        eval_pool = self.cfg.data.eval_pool
        pools: Dict[tuple, tuple] = {}  # per label set: models with the same labels share the pools
        for model in self.cfg.models:
            labels = model_labels(model)
            if labels not in pools:
                pools[labels] = (LazyPool(self.cfg.data.pool, model),
                                 LazyPool(eval_pool, model) if eval_pool and eval_pool != self.cfg.data.pool else None)
            pool_factory, real_pool_factory = pools[labels]
            m = self.cfg.metrics
            roles = roles_for(model, m.judges, m.substitute, m.clip, m.fid_models)
            ctx = MetricContext(self.cfg, model, self.store, roles, self.device, pool_factory, self.progress,
                                layer_channels=planned_neurons(plan, model), real_pool_factory=real_pool_factory)
            try:
                self._run_model(ctx, plan, model, report)
            finally:
                ctx.close()
            report.unavailable.update({f"{model} {r}": ctx.reason(r) for r in roles if ctx.reason(r)})
        report.seconds = time.perf_counter() - start
        return report

    # ------------------------------------------------------------------ units
    def units(self, ctx: MetricContext, plan: Plan, model: str) -> List[Unit]:
        refs = done_refs(plan, self.store, model)
        classes = list(plan.classes.get(model, []))
        common = {"atlas": __version__, "model": model, "metrics": self.cfg.metrics, "pool": ctx.fingerprint,
                  **({"eval_pool": ctx.real_fingerprint} if ctx.real_pool_factory is not None else {}),
                  "roles": {n: [r.probe.id, ctx.reason(n)] for n, r in sorted(ctx.roles.items())}}
        groups: Dict[tuple, List[JobRef]] = defaultdict(list)
        for r in refs:
            groups[(r.job.method, r.job.target.kind)].append(r)
        units = []
        for (method, kind), rs in groups.items():
            suites = [(n, s) for n, s in SUITES.in_order() if kind in s.kinds]
            key = stable_hash({**common, "unit": "group", "method": method, "kind": kind,
                               "suites": [[n, s.version] for n, s in suites],
                               "jobs": sorted([r.job.key, r.file, r.sha] for r in rs)}, length=24)
            units.append(Unit(f"{method}/{kind}", key,
                              lambda s=suites, rs=rs: [q for _, su in s for q in su.requests(ctx, rs)],
                              lambda s=suites, rs=rs, m=method, k=kind: self._group(ctx, s, rs, m, k)))
        if classes:
            key = stable_hash({**common, "unit": "baseline", "v": BASELINE_VERSION, "classes": classes}, length=24)
            units.append(Unit("baseline", key, lambda: baseline_requests(ctx, classes),
                              lambda: dict(baseline_compute(ctx, classes), model=model)))
        tcls = tsne_classes(ctx, classes)
        trefs = tsne_refs(refs, tcls)
        key = stable_hash({**common, "unit": "tsne", "v": TSNE_VERSION, "classes": tcls,
                           "jobs": sorted([r.job.key, r.file, r.sha] for r in trefs)}, length=24)
        units.append(Unit("tsne", key, lambda: tsne_requests(ctx, trefs, tcls),
                          lambda: dict(tsne_compute(ctx, trefs, tcls), model=model)))
        return units

    def _group(self, ctx: MetricContext, suites, refs: List[JobRef], method: str, kind: str) -> dict:
        cells: dict = {}
        details: dict = {}
        for name, suite in suites:
            c, d = suite.compute(ctx, refs)
            cells.update(c)
            _merge(details, d)
        return {"model": ctx.model, "method": method, "kind": kind, "cells": cells, "targets": dict(details),
                "jobs": {r.job.key: r.sha for r in refs}, "suites": [n for n, _ in suites]}

    def _run_model(self, ctx: MetricContext, plan: Plan, model: str, report: MetricsReport) -> None:
        if ctx.reason("self"):
            raise AtlasError(f"cannot compute the metrics of model {model}: {ctx.reason('self')}")
        units = self.units(ctx, plan, model)
        stale = [u for u in units if read_result(self.store, u.key) is None]
        report.fresh += len(units) - len(stale)
        if stale:
            requests = [q for u in stale for q in u.requests()]
            self.compute_features(ctx, requests)
            with stage(f"metrics · {model}", len(stale), unit="result", enabled=self.progress) as bar:
                for u in stale:
                    write_result(self.store, u.key, dict(u.compute(), unit=u.name))
                    report.computed.append(f"{model}/{u.name}")
                    bar.update(1)
        index = {"model": model, "units": {u.name: u.key for u in units if u.name not in ("baseline", "tsne")},
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        index.update({u.name: u.key for u in units if u.name in ("baseline", "tsne")})
        write_index(self.store, scope_id(self.cfg, model, plan.classes.get(model, [])), index)

    # ------------------------------------------------------------------ features
    def compute_features(self, ctx: MetricContext, requests: Sequence[Request]) -> None:
        """Compute every requested feature that is not cached, backbone by backbone."""
        by_role: Dict[str, Dict[tuple, tuple]] = defaultdict(dict)
        for q in requests:
            entry = by_role[q.role].setdefault(q.group.ids, (q.group, set()))
            entry[1].add(q.output)
        by_backbone: Dict[str, Dict[tuple, tuple]] = defaultdict(dict)
        first_role: Dict[str, str] = {}
        for role, entries in by_role.items():
            bid = ctx.roles[role].probe.id
            first_role.setdefault(bid, role)
            for ids, (group, outs) in entries.items():
                by_backbone[bid].setdefault(ids, (group, set()))[1].update(outs)
        loaded, runs = LoadedImages(), 0
        for bid, entries in by_backbone.items():
            role = first_role[bid]
            if ctx.reason(role):
                continue
            todo, scheduled = [], set()
            for group, outs in entries.values():
                # an image in several groups (the top images of many neurons of one layer: every channel's
                # CoSy control set, whose output is the whole layer's) is computed once per output
                idx = [i for i, item in enumerate(group.ids)
                       if any((item, o) not in scheduled and not ctx.cache.has(bid, o, item) for o in outs)]
                scheduled.update((group.ids[i], o) for i in idx for o in outs)
                if idx:
                    todo.append((group, idx, sorted(outs)))
            ready = ctx.roles[role].ready
            if not todo and (ready is None or ready(ctx.cache)):
                continue
            try:
                backbone = ctx.open(role)
            except Unavailable as exc:
                log.warning("metrics: %s unavailable: %s", role, exc)
                continue
            if backbone.prepare is not None:
                backbone.prepare(ctx.cache)
            if runs % 2:  # the images the previous backbone loaded last come first
                todo = [(group, idx[::-1], outs) for group, idx, outs in reversed(todo)]
            runs += 1
            # images of every group that asks the same outputs share full batches: the groups are small
            # (a class's FVs of one method, its real images, a neuron's patches), and on the CPU a forward
            # of 2-8 images ran the metrics at 0.37 of the raw forward (bench/metrics.py)
            pending: Dict[tuple, List[tuple]] = defaultdict(list)

            def flush(outs: tuple) -> None:
                items = pending.pop(outs, [])
                if items:
                    out = backbone.run(torch.stack([x for _, x in items]), list(outs))
                    for o in outs:
                        for (item, _), v in zip(items, out[o].detach().cpu().numpy()):
                            ctx.cache.put(bid, o, item, v)

            with stage(f"metrics · {backbone.label}", sum(len(i) for _, i, _ in todo), unit="image",
                       enabled=self.progress) as bar:
                for group, idx, outs in todo:
                    key = tuple(outs)
                    for s in range(0, len(idx), BATCH):
                        chunk = idx[s:s + BATCH]
                        for i, img in zip(chunk, loaded.load(group, chunk)):
                            if img is not None:
                                pending[key].append((group.ids[i], _resize(img, backbone.input_size)))
                                if len(pending[key]) == BATCH:
                                    flush(key)
                        bar.update(len(chunk))
                for key in list(pending):
                    flush(key)
            if role != "self":
                ctx.close(role)
