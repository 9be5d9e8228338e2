"""Run the pending jobs of a plan on this machine, batch by batch, storing each result atomically.

Jobs are grouped by model (each model is loaded once), then by method, then into batches of up to
``batch_size`` targets that may share one optimisation. A job that fails numerically (NaN/Inf) is
recorded as failed with its reason and the build goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import torch

from ..config import AtlasConfig
from ..data import open_pool
from ..methods import METHODS, RunContext
from ..models import load_model
from ..optim.loop import NonFiniteLoss
from .jobs import Job
from .progress import stage
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    done: int = 0
    cached: int = 0
    failed: List[str] = field(default_factory=list)
    seconds: float = 0.0


def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def batches(jobs: Sequence[Job], size: int) -> List[List[Job]]:
    """Consecutive groups of up to ``size`` jobs that share a batch group (order preserved)."""
    groups: Dict[tuple, List[Job]] = {}
    for j in jobs:
        groups.setdefault(j.batch_group(), []).append(j)
    out = []
    for g in groups.values():
        out.extend(g[i : i + size] for i in range(0, len(g), size))
    return out


class Runner:
    """Executes jobs for one configuration; models and pools are loaded once and reused."""

    def __init__(self, cfg: AtlasConfig, store: Store, device: str | torch.device | None = None,
                 progress: bool = True):
        self.cfg = cfg
        self.store = store
        self.device = pick_device(str(device or cfg.device))
        self.progress = progress
        self._pool = None
        self._contexts: Dict[str, RunContext] = {}

    def pool(self):
        if self._pool is None:
            self._pool = open_pool(self.cfg.data.pool)
        return self._pool

    def context(self, model: str) -> RunContext:
        if model not in self._contexts:
            self._contexts.clear()  # one model in memory at a time
            handle = load_model(model, device=self.device, download=self.cfg.download)
            self._contexts[model] = RunContext(
                model=handle, data=self.cfg.data, cache_dir=self.store.cache_dir, pool_factory=self.pool,
                store=self.store, config=self.cfg,
            )
        return self._contexts[model]

    def run(self, jobs: Sequence[Job]) -> RunReport:
        start = time.perf_counter()
        report = RunReport()
        self.store.clean_temp()
        pending = [j for j in jobs if not self.store.has(j.key)]
        report.cached = len(jobs) - len(pending)
        order: Dict[tuple, List[Job]] = {}
        for j in pending:
            order.setdefault((j.model, j.method), []).append(j)
        for (model, method_name), group in order.items():
            method = METHODS.get(method_name)
            ctx = self.context(model)
            size = self.cfg.batch_size if method.batchable else 1
            with stage(f"{method_name} · {model}", len(group), enabled=self.progress) as bar:
                for batch in batches(group, size):
                    self._run_batch(ctx, method, batch, report)
                    bar.update(len(batch))
        self.store_references(jobs)
        report.seconds = time.perf_counter() - start
        return report

    def store_references(self, jobs: Sequence[Job]) -> int:
        """Store thumbnails of the real images of every class these jobs visualise (for the site;
        cached, cheap when present). See :mod:`atlas.pipeline.references`."""
        from .references import store_class_references

        classes = {j.target.class_id for j in jobs if j.target.kind == "class"}
        return store_class_references(self.cfg, self.store, self.pool, classes, progress=self.progress)

    def _run_batch(self, ctx: RunContext, method, batch: List[Job], report: RunReport) -> None:
        cfg = batch[0].config
        try:
            results = method.run(ctx, cfg, [j.target for j in batch], [j.target_seed for j in batch])
        except NonFiniteLoss as exc:
            if len(batch) > 1:  # find which target diverged
                for j in batch:
                    self._run_batch(ctx, method, [j], report)
                return
            self.store.put_failure(batch[0], str(exc), exc.step)
            report.failed.append(batch[0].key)
            log.warning("%s failed: %s", batch[0].label(), exc)
            return
        for job, vis in zip(batch, results):
            self.store.put(job, vis)
            report.done += 1
