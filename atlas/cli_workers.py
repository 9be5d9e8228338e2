"""Local worker processes: ``atlas run/build --workers N`` uses N processes of one machine's cores.

On a CPU a small model's forward and backward passes do not scale over the cores of one process as well as
independent processes do (two single-threaded processes ran EfficientNet-Lite0 at 1.3-1.5x the images per
second of one two-threaded process on the 2-core development machine; ``bench/README.md``, "Local workers").
So the run is split like a cluster run: the parent runs every model's run stages once for the whole plan
(concept banks, dataset examples: :meth:`~atlas.pipeline.Runner.prepare`), then starts N fresh processes
(``spawn``: nothing of the parent's threads is inherited), each running one cost-balanced shard of the plan's
batches (:func:`~atlas.pipeline.sharding.shard_batches`, the same shares as ``--shard i/N``) with the cores
divided between them, and shows one bar for all of them, counted from the store. Every job is stored
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


def _work(cfg, index: int, count: int, threads: int) -> None:
    """One worker: the composition root, then shard ``index`` of ``count`` on ``threads`` threads."""
    import torch

    from .app import install
    from .errors import failure_line

    torch.set_num_threads(threads)
    try:
        install()  # a fresh process: the registries are filled here, as in ``atlas.cli.main``
        from .pipeline import Runner, Store, make_plan
        from .pipeline.sharding import shard_batches

        plan = make_plan(cfg)
        runner = Runner(cfg, Store(cfg.store), progress=False, tags={"shard": f"{index}/{count}", "local": True})
        runner.run_batches(shard_batches(plan.jobs, cfg.batch_size, index, count))
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

    pending = [j.key for j in jobs if not store.has(j.key)]
    if not pending:
        return []
    count = max(1, min(count, len(pending)))
    threads = max(1, (os.cpu_count() or 1) // count)
    ctx = multiprocessing.get_context("spawn")
    procs: List = [ctx.Process(target=_work, args=(cfg, i, count, threads), name=f"atlas-worker-{i}")
                   for i in range(count)]
    for p in procs:
        p.start()
    done = 0
    try:
        with stage(f"jobs · {count} workers", len(pending), enabled=progress) as bar:
            while any(p.is_alive() for p in procs):
                time.sleep(1.0)
                now = sum(store.has(k) for k in pending)
                bar.update(now - done)
                done = now
            now = sum(store.has(k) for k in pending)
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
    return [k for k in pending if store.has(k)]


class WorkerStopped(AtlasError):
    """A worker process failed (its own line is printed above): the run stops with its exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
