"""Local worker processes: ``atlas run/build --workers N`` uses N processes of one machine's cores.

On a CPU a small model's forward and backward passes do not scale over the cores of one process as well as
independent processes do (two single-threaded processes ran EfficientNet-Lite0 at 1.3-1.5x the images per
second of one two-threaded process on the 2-core development machine; ``bench/README.md``, "Local workers").
So the run is split like a cluster run: the parent runs every model's run stages once for the whole plan
(concept banks, dataset examples: :meth:`~atlas.pipeline.Runner.prepare`), then starts N fresh processes
(``spawn``: nothing of the parent's threads is inherited) with the cores divided between them. The workers
take the plan's pending batches from one queue, the costliest first (the estimate shards are balanced by,
:func:`~atlas.pipeline.estimate.relative_cost`), so that a worker whose batches ran faster than estimated takes
more instead of waiting: with fixed cost-balanced shares (as ``--shard i/N``) one of two demo workers
finished ~28 s before the other. One bar for all of them, counted from the store. Every job is stored
atomically by the worker that ran it, so an interrupted run resumes where it stopped, whichever process was
stopped. A worker that fails is one line (its own) and the run stops with the exit status of the first one.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import List, Sequence

from .errors import AtlasError


def _work(cfg, index: int, count: int, threads: int, queue) -> None:
    """One worker: the composition root, then the batches it takes from ``queue`` (batch ids; None: no
    more) on ``threads`` threads."""
    import torch

    from .allocator import keep_freed_memory
    from .app import install
    from .errors import failure_line

    keep_freed_memory()  # a fresh process: glibc's thresholds are its own
    torch.set_num_threads(threads)
    try:
        install()  # a fresh process: the registries are filled here, as in ``atlas.cli.main``
        from .pipeline import Runner, Store, make_plan
        from .pipeline.sharding import plan_batches

        batches = {b.id: b for b in plan_batches(make_plan(cfg).jobs, cfg.batch_size)}
        runner = Runner(cfg, Store(cfg.store), progress=False, tags={"worker": f"{index}/{count}", "local": True})
        for batch_id in iter(queue.get, None):
            if batch_id not in batches:
                raise AtlasError(f"batch {batch_id} is not in this worker's plan: the configuration changed "
                                 f"while the run started; run again")
            runner.run_batches([batches[batch_id]])
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the worker's one line, as the command line would print it
        line, code = failure_line(exc)
        print(f"atlas: error: worker {index + 1} of {count}: {line}", file=sys.stderr, flush=True)
        sys.exit(code or 1)


def run_in_workers(cfg, jobs: Sequence, store, count: int, progress: bool = True) -> List[str]:
    """Run the pending ``jobs`` (a plan's) in ``count`` worker processes; returns the keys they stored.

    Raises :class:`AtlasError` with the first failed worker's exit status when one fails (the finished jobs
    of every worker are kept)."""
    from .progress import stage

    from .pipeline.estimate import relative_cost
    from .pipeline.sharding import plan_batches

    stored_before = store.done(j.key for j in jobs)
    pending = [j.key for j in jobs if j.key not in stored_before]
    if not pending:
        return []
    todo = set(pending)
    batches = [b for b in plan_batches(jobs, cfg.batch_size) if todo.intersection(b.keys)]
    count = max(1, min(count, len(batches)))
    threads = max(1, (os.cpu_count() or 1) // count)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for batch in queue_order(batches):
        queue.put(batch.id)
    for _ in range(count):
        queue.put(None)
    procs: List = [ctx.Process(target=_work, args=(cfg, i, count, threads, queue), name=f"atlas-worker-{i}")
                   for i in range(count)]
    for p in procs:
        p.start()
    done = 0
    cost = {j.key: relative_cost([j]) for j in jobs if j.key in todo}
    total_cost = sum(cost.values())
    try:
        with stage(f"jobs · {count} workers", len(pending), enabled=progress, own_eta=True) as bar:
            start = time.perf_counter()
            while any(p.is_alive() for p in procs):
                time.sleep(1.0)
                stored = store.done(pending)
                bar.set_postfix_str(remaining_time(time.perf_counter() - start,
                                                   sum(cost[k] for k in stored), total_cost), refresh=False)
                bar.update(len(stored) - done)
                done = len(stored)
            now = len(store.done(pending))
            bar.set_postfix_str("", refresh=False)
            bar.update(now - done)
            done = now
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode]
    if failed:
        i, code = failed[0]
        raise WorkerStopped(f"worker {i + 1} of {count} stopped (exit status {code}); the {done} jobs stored "
                            f"are kept: run again to resume", code if code in (1, 2, 130) else 1)
    stored = store.done(pending)
    return [k for k in pending if k in stored]


def remaining_time(elapsed: float, done_cost: float, total_cost: float) -> str:
    """The bar's remaining time from the estimated cost done so far (the costliest batches run first, so
    the count of stored jobs rises slowly at the start and a count-based estimate is several times too long)."""
    if done_cost <= 0:
        return "<?"
    left = int(elapsed * max(0.0, total_cost - done_cost) / done_cost)
    return f"<{left // 60:02d}:{left % 60:02d} (by estimated cost)"


def queue_order(batches: Sequence) -> List:
    """The order in which workers take ``batches``: model by model (in the plan's order, so that a worker
    loads each model once), within a model the costliest first (estimated as for shards), so that the
    last batches, which decide when the run ends, are the small ones."""
    from .pipeline.estimate import relative_cost

    models = list(dict.fromkeys(b.model for b in batches))
    return sorted(batches, key=lambda b: (models.index(b.model), -relative_cost(b.jobs), b.id))


class WorkerStopped(AtlasError):
    """A worker process failed (its own line is printed above): the run stops with its exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
