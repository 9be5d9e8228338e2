"""Run the pending jobs of a plan on this machine, batch by batch, storing each result atomically.

Batches are formed from the whole plan (:func:`atlas.pipeline.sharding.plan_batches`), so a job is
optimised in the same batch whether the run is fresh, resumed or one shard of many - the batch is part of
its key; finished jobs are skipped, and a batch with some jobs finished is optimised whole again (its
finished jobs are not stored again), since a job's image depends on its batch-mates. Models are loaded once per (model, method) group. A job that fails numerically (NaN/Inf) is
recorded as failed with its reason and the build goes on. Each stored batch is appended to the ledger.
The GPU settings of ``cfg.compute`` (bf16 autocast, channels-last, cuDNN autotuning) apply for the run.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch

from ..config import AtlasConfig
from ..data import open_model_pool
from ..data.pools import model_labels
from ..errors import Unsupported
from ..methods import METHODS, RunContext
from ..models import load_model
from ..models.devices import pick_device  # noqa: F401  (also imported from here)
from ..optim.loop import NonFiniteLoss
from .compute import autocast_dtype, compute_settings, prepare_model
from .datakey import remember
from ..atomic import disk_errors
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


def batches(jobs: Sequence[Job], size: int) -> List[List[Job]]:
    """The jobs of :func:`~atlas.pipeline.sharding.plan_batches`, as lists."""
    return [list(b.jobs) for b in plan_batches(jobs, size)]


def _step_counter(bar, cfg, every: float = 1.0) -> Callable[[int], None]:
    """An ``on_step`` that shows ``step n/N`` of the running batch on its bar (at most every ``every``
    seconds), so that a job of many steps shows it is moving before its first job ends."""
    total = (getattr(cfg, "steps", 0) or 0) + (getattr(cfg, "low_res_steps", 0) or 0)
    count, last = 0, 0.0

    def on_step(step: int) -> None:
        nonlocal count, last
        count += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            bar.set_postfix_str(f"step {count}/{total}" if 0 < count <= total else f"step {count}")

    return on_step


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
        self._pools: Dict[tuple, object] = {}  # per label set: models with the same labels share one
        self._model: Optional[str] = None  # the model whose context is loaded
        self._contexts: Dict[str, RunContext] = {}
        #: What the run's own batches hold, per model: {model: {(kind, class_id), ...}}, or None for a run
        #: of the whole plan. Run stages read it through :meth:`stage_scope`, so that a shard prepares only
        #: what its jobs need (another shard prepares the rest) instead of every class's stages.
        self.scope: Optional[Dict[str, set]] = None

    def pool(self, model: Optional[str] = None):
        """The image pool read in ``model``'s class ids (default: the loaded model's, else the first)."""
        model = model or self._model or self.cfg.models[0]
        labels = model_labels(model)
        if labels not in self._pools:
            self._pools[labels] = open_model_pool(self.cfg.data.pool, model)
        return self._pools[labels]

    def context(self, model: str) -> RunContext:
        if model not in self._contexts:
            self._contexts.clear()  # one model in memory at a time
            handle = load_model(model, device=self.device, download=self.cfg.download)
            self.precision = prepare_model(handle, self.cfg.compute, self.device)
            self.weights = handle.weights or None
            self._model = model
            self._contexts[model] = RunContext(
                model=handle, data=self.cfg.data, cache_dir=self.store.cache_dir,
                pool_factory=functools.partial(self.pool, model), store=self.store, config=self.cfg,
            )
        return self._contexts[model]

    def run(self, jobs: Sequence[Job]) -> RunReport:
        """Run the pending ``jobs`` (a plan's jobs), in the batches the whole plan forms; the run stages
        prepare everything the plan asks for (e.g. every class's concept bank, for the site)."""
        return self.run_batches(plan_batches(jobs, self.cfg.batch_size), whole_plan=True)

    def run_batches(self, batches: Sequence[Batch], whole_plan: bool = False) -> RunReport:
        """Run the pending jobs of ``batches``. A batch with some jobs stored already (a run killed while
        storing it) runs only the missing ones: no stored job is ever computed again. A full or read-only
        store stops the run with a one-line :class:`~atlas.atomic.DiskError`. Unless
        ``whole_plan``, ``batches`` are a share (a shard) and the run stages prepare only what these
        batches' jobs need."""
        self.scope = None
        if not whole_plan:
            self.scope = {}
            for b in batches:
                for j in b.jobs:
                    self.scope.setdefault(j.model, set()).add((j.target.kind, j.target.class_id))
        with disk_errors(self.store.root):
            data = next((j.data for b in batches for j in b.jobs if j.data), None)
            if data:  # the data folder's fingerprint the plan measured: found again where the folder is not
                remember(self.store.root, dict(data))
            return self._run_batches(batches)

    def prepare(self, jobs: Sequence[Job]) -> None:
        """Run every model's run stages for the whole plan of ``jobs`` (concept banks, dataset examples,
        ...) and nothing else: what local worker processes, each running a shard, then find in the store
        instead of preparing it twice (:mod:`atlas.cli_workers`)."""
        self.scope = None
        with disk_errors(self.store.root), compute_settings(self.cfg.compute, self.device):
            for model in dict.fromkeys(j.model for j in jobs):
                self.context(model)  # weights missing offline: one line before any stage's bar
                self._run_stages(model)

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
        order: Dict[tuple, List[Tuple[List[Job], Set[str]]]] = {}
        models = []
        for b in batches:
            models.append(b.model)
            pending = [j for j in b.jobs if not self.store.intact(j.key)]  # corrupt: warned, recomputed
            report.cached += len(b.jobs) - len(pending)
            if pending:  # the whole batch runs (the images depend on it); only its pending jobs are stored
                order.setdefault((b.model, b.method), []).append((list(b.jobs), {j.key for j in pending}))
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
                total = sum(len(todo) for _, todo in group)
                with stage(f"{method_name} · {model}", total, enabled=self.progress) as bar:
                    for batch, todo in group:
                        step_bar = ctx is not None and hasattr(ctx, "on_step")  # (tests stand in a None)
                        if step_bar:
                            ctx.on_step = _step_counter(bar, batch[0].config)  # progress within a long job
                        try:
                            self._run_batch(ctx, method, batch, report, todo)
                        finally:
                            if step_bar:
                                ctx.on_step = None
                        bar.update(len(todo))
        self.store_references([j for b in batches for j in b.jobs])
        report.seconds = time.perf_counter() - start
        return report

    def _run_stages(self, model: str) -> None:
        for _, run_stage in RUN_STAGES.in_order():
            run_stage(self, model)

    def store_references(self, jobs: Sequence[Job]) -> int:
        """Store thumbnails of the real images of every class these jobs visualise (for the site;
        cached, cheap when present). See :mod:`atlas.pipeline.references`."""
        from .planner import model_info
        from .references import store_class_references

        done = 0
        for model in dict.fromkeys(j.model for j in jobs):
            classes = {j.target.class_id for j in jobs if j.target.kind == "class" and j.model == model}
            done += store_class_references(self.cfg, self.store, functools.partial(self.pool, model), classes,
                                           progress=self.progress, labels_id=model_info(model).labels_id)
        return done

    def _run_batch(self, ctx: RunContext, method, batch: List[Job], report: RunReport,
                   todo: Optional[Set[str]] = None) -> None:
        """Optimise ``batch`` together and store the results of the jobs in ``todo`` (default: all)."""
        todo = {j.key for j in batch} if todo is None else todo
        cfg = batch[0].config
        start = time.perf_counter()
        retries = {j.key: self.store.failure(j.key) for j in batch if j.key in todo} if self.retry_failed else {}
        retries = {k: v for k, v in retries.items() if v is not None}
        seeds = [j.target_seed + (RETRY_SEED_OFFSET if j.key in retries else 0) for j in batch]
        self.precision = batch[0].precision  # a job is computed in the precision its key names
        if ctx is not None:
            ctx.model.autocast = autocast_dtype(self.precision)
        try:
            results = method.run(ctx, cfg, [j.target for j in batch], seeds)
        except Unsupported as exc:  # decided only once the model is loaded: recorded, the build goes on
            for job in batch:
                if job.key in todo:
                    self.store.put_failure(job, str(exc))
                    report.failed.append(job.key)
            log.warning("%s: %s", method.name, exc)
            return
        except NonFiniteLoss as exc:
            if len(batch) > 1:  # find which target diverged (the others are then stored as run alone)
                for j in batch:
                    if j.key in todo:
                        self._run_batch(ctx, method, [j], report)
                return
            note = f" (retry with target seed {seeds[0]})" if batch[0].key in retries else ""
            self.store.put_failure(batch[0], f"{exc}{note}", exc.step)
            report.failed.append(batch[0].key)
            log.warning("%s failed: %s", batch[0].label(), exc)
            return
        stored = []
        for job, seed, vis in zip(batch, seeds, results):
            if job.key not in todo:
                continue  # finished before (a resumed batch): its stored image stands
            vis.info = dict(vis.info, device=self.device.type, precision=self.precision, weights=self.weights)
            failure = retries.get(job.key)
            retry = None if failure is None else {
                "target_seed": job.target_seed, "retry_seed": seed, "reason": failure.get("reason"),
                "step": failure.get("step"), "when": failure.get("when")}
            self.store.put(job, vis, retry_of=retry)
            report.done += 1
            report.stored.append(job.key)
            stored.append(job.key)
        extra = {"retried": sorted(retries)} if retries else {}
        self.ledger.record(stored, time.perf_counter() - start,
                           model=batch[0].model, method=batch[0].method, **extra)
