"""Run the pending jobs of a plan on this machine, batch by batch, storing each result atomically.

Batches are formed from the whole plan (:func:`atlas.pipeline.sharding.plan_batches`), so a job is
optimised in the same batch whether the run is fresh, resumed or one shard of many; finished jobs are
skipped. Models are loaded once per (model, method) group. A job that fails numerically (NaN/Inf) is
recorded as failed with its reason and the build goes on. Each stored batch is appended to the ledger.
The GPU settings of ``cfg.compute`` (bf16 autocast, channels-last, cuDNN autotuning) apply for the run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..config import AtlasConfig
from ..data import open_pool
from ..errors import Unsupported
from ..methods import METHODS, RunContext
from ..models import load_model
from ..optim.loop import NonFiniteLoss
from .compute import autocast_dtype, compute_settings, prepare_model
from .disk import disk_errors
from ..registry import Registry
from .jobs import Job
from .ledger import Ledger
from ..progress import stage
from .sharding import Batch, plan_batches
from .store import Store

log = logging.getLogger(__name__)

#: ``--retry-failed`` runs a failed job again with its target seed plus this offset (recorded in the
#: job's meta as ``retry_of``), so a NaN that one seed's start provoked is not simply met again.
RETRY_SEED_OFFSET = 1000


#: Run stages: ``stage(runner, model) -> None``, run once per model before its jobs (CRAFT concept banks,
#: neuron dataset examples, ...). A stage keeps its results in the store (``Store.cached_stage``) and loads
#: the model (``runner.context(model)``) only when something is missing.
RUN_STAGES: Registry[Callable[["Runner", str], None]] = Registry("run stage")


@dataclass
class RunReport:
    done: int = 0
    cached: int = 0
    failed: List[str] = field(default_factory=list)
    seconds: float = 0.0
    stored: List[str] = field(default_factory=list)  # keys of the jobs this run computed and stored


def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def batches(jobs: Sequence[Job], size: int) -> List[List[Job]]:
    """The jobs of :func:`~atlas.pipeline.sharding.plan_batches`, as lists."""
    return [list(b.jobs) for b in plan_batches(jobs, size)]


class Runner:
    """Executes jobs for one configuration; models and pools are loaded once and reused.

    ``tags`` (e.g. the shard and submission) are written with every ledger record of this runner.
    """

    def __init__(self, cfg: AtlasConfig, store: Store, device: str | torch.device | None = None,
                 progress: bool = True, tags: Optional[Dict[str, object]] = None, retry_failed: bool = False):
        self.cfg = cfg
        self.retry_failed = retry_failed
        self.store = store
        self.device = pick_device(str(device or cfg.device))
        self.progress = progress
        self.ledger = Ledger(store.root, tags)
        self.precision = "fp32"
        self.weights: Optional[str] = None  # of the loaded model, recorded with every job
        self._pool = None
        self._contexts: Dict[str, RunContext] = {}
        #: What the run's own batches hold, per model: {model: {(kind, class_id), ...}}, or None for a run
        #: of the whole plan. Run stages read it through :meth:`stage_scope`, so that a shard prepares only
        #: what its jobs need (another shard prepares the rest) instead of every class's stages.
        self.scope: Optional[Dict[str, set]] = None

    def pool(self):
        if self._pool is None:
            self._pool = open_pool(self.cfg.data.pool)
        return self._pool

    def context(self, model: str) -> RunContext:
        if model not in self._contexts:
            self._contexts.clear()  # one model in memory at a time
            handle = load_model(model, device=self.device, download=self.cfg.download)
            self.precision = prepare_model(handle, self.cfg.compute, self.device)
            self.weights = handle.weights or None
            self._contexts[model] = RunContext(
                model=handle, data=self.cfg.data, cache_dir=self.store.cache_dir, pool_factory=self.pool,
                store=self.store, config=self.cfg,
            )
        return self._contexts[model]

    def run(self, jobs: Sequence[Job]) -> RunReport:
        """Run the pending ``jobs`` (a plan's jobs), in the batches the whole plan forms; the run stages
        prepare everything the plan asks for (e.g. every class's concept bank, for the site)."""
        return self.run_batches(plan_batches(jobs, self.cfg.batch_size), whole_plan=True)

    def run_batches(self, batches: Sequence[Batch], whole_plan: bool = False) -> RunReport:
        """Run the pending jobs of ``batches``. A batch with some jobs stored already (a run killed while
        storing it) runs only the missing ones: no stored job is ever computed again. A full or read-only
        store stops the run with a one-line :class:`~atlas.pipeline.disk.DiskError`. Unless
        ``whole_plan``, ``batches`` are a share (a shard) and the run stages prepare only what these
        batches' jobs need."""
        self.scope = None
        if not whole_plan:
            self.scope = {}
            for b in batches:
                for j in b.jobs:
                    self.scope.setdefault(j.model, set()).add((j.target.kind, j.target.class_id))
        with disk_errors(self.store.root):
            return self._run_batches(batches)

    def stage_scope(self, model: str, kind: str) -> Optional[set]:
        """The class ids of ``kind`` targets of ``model`` in this run's batches (empty: none), or None
        when the run covers the whole plan (a stage then prepares everything)."""
        if self.scope is None:
            return None
        return {c for k, c in self.scope.get(model, ()) if k == kind}

    def _run_batches(self, batches: Sequence[Batch]) -> RunReport:
        start = time.perf_counter()
        report = RunReport()
        self.store.clean_temp()
        order: Dict[tuple, List[List[Job]]] = {}
        models = []
        for b in batches:
            models.append(b.model)
            pending = [j for j in b.jobs if not self.store.intact(j.key)]  # corrupt: warned, recomputed
            report.cached += len(b.jobs) - len(pending)
            if pending:
                order.setdefault((b.model, b.method), []).append(pending)
        busy = {m for m, _ in order}
        for model in dict.fromkeys(models):  # models without pending jobs: stages only
            if model not in busy:
                self._run_stages(model)
        staged = set()
        with compute_settings(self.cfg.compute, self.device):
            for (model, method_name), group in order.items():
                if model not in staged:  # a model's stages run right before its first jobs
                    staged.add(model)
                    self.context(model)  # weights missing offline: one line before any stage's bar
                    self._run_stages(model)
                method = METHODS.get(method_name)
                ctx = self.context(model)
                total = sum(len(b) for b in group)
                with stage(f"{method_name} · {model}", total, enabled=self.progress) as bar:
                    for batch in group:
                        self._run_batch(ctx, method, batch, report)
                        bar.update(len(batch))
        self.store_references([j for b in batches for j in b.jobs])
        report.seconds = time.perf_counter() - start
        return report

    def _run_stages(self, model: str) -> None:
        for _, run_stage in RUN_STAGES.in_order():
            run_stage(self, model)

    def store_references(self, jobs: Sequence[Job]) -> int:
        """Store thumbnails of the real images of every class these jobs visualise (for the site;
        cached, cheap when present). See :mod:`atlas.pipeline.references`."""
        from .references import store_class_references

        classes = {j.target.class_id for j in jobs if j.target.kind == "class"}
        return store_class_references(self.cfg, self.store, self.pool, classes, progress=self.progress)

    def _run_batch(self, ctx: RunContext, method, batch: List[Job], report: RunReport) -> None:
        cfg = batch[0].config
        start = time.perf_counter()
        retries = {j.key: self.store.failure(j.key) for j in batch} if self.retry_failed else {}
        retries = {k: v for k, v in retries.items() if v is not None}
        seeds = [j.target_seed + (RETRY_SEED_OFFSET if j.key in retries else 0) for j in batch]
        self.precision = batch[0].precision  # a job is computed in the precision its key names
        if ctx is not None:
            ctx.model.autocast = autocast_dtype(self.precision)
        try:
            results = method.run(ctx, cfg, [j.target for j in batch], seeds)
        except Unsupported as exc:  # decided only once the model is loaded: recorded, the build goes on
            for job in batch:
                self.store.put_failure(job, str(exc))
                report.failed.append(job.key)
            log.warning("%s: %s", method.name, exc)
            return
        except NonFiniteLoss as exc:
            if len(batch) > 1:  # find which target diverged
                for j in batch:
                    self._run_batch(ctx, method, [j], report)
                return
            note = f" (retry with target seed {seeds[0]})" if batch[0].key in retries else ""
            self.store.put_failure(batch[0], f"{exc}{note}", exc.step)
            report.failed.append(batch[0].key)
            log.warning("%s failed: %s", batch[0].label(), exc)
            return
        for job, seed, vis in zip(batch, seeds, results):
            vis.info = dict(vis.info, device=self.device.type, precision=self.precision, weights=self.weights)
            failure = retries.get(job.key)
            retry = None if failure is None else {
                "target_seed": job.target_seed, "retry_seed": seed, "reason": failure.get("reason"),
                "step": failure.get("step"), "when": failure.get("when")}
            self.store.put(job, vis, retry_of=retry)
            report.done += 1
            report.stored.append(job.key)
        extra = {"retried": sorted(retries)} if retries else {}
        self.ledger.record([j.key for j in batch], time.perf_counter() - start,
                           model=batch[0].model, method=batch[0].method, **extra)
