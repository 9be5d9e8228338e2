"""Command-line pieces for running at scale: ``atlas submit``, ``atlas status`` and the estimate printed by
``atlas plan [--estimate]`` (registered on the ``cli`` group by :mod:`atlas.cli`)."""
from __future__ import annotations

from collections import Counter
from typing import List

import click

from .config import EXECUTORS
from .errors import AtlasError


def estimate_lines(cfg, plan, store, pending, device_type: str, calibrate_now: bool, progress: bool) -> List[str]:
    """The estimate of ``atlas plan``: calibrated (now with ``--estimate``, or earlier and saved in the
    store), measured from finished jobs, or nominal; plus the plan's FLOPs and H100 hours."""
    from .pipeline.calibrate import calibrate, saved_rates
    from .pipeline.estimate import (
        ASSUMED_LOOP_RATIO,
        ASSUMED_UTILISATION,
        estimate_seconds,
        format_duration,
        gpu_hours,
        job_flops,
        measured_rates,
        peak_hours,
    )

    lines: List[str] = []
    if calibrate_now:
        failed: dict = {}
        for (model, method), cal in calibrate(cfg, plan.jobs, store, progress=progress).items():
            if cal.rate is not None:
                note = f" ({cal.note})" if cal.note else ""
                lines.append(f"calibrated {model} {method}: {cal.rate.per_target_step * 1000:.1f} ms per target "
                             f"step + {cal.rate.overhead:.2f} s per batch{note}")
            else:
                failed.setdefault((model, cal.reason), []).append(method)
        for (model, reason), methods in failed.items():
            lines.append(f"not calibrated {model} ({', '.join(methods)}): {reason}; nominal estimate used")
    rates, label = saved_rates(store, plan.jobs, cfg.batch_size, device_type)
    measured = measured_rates(store.iter_metas()) if len(pending) < len(plan.jobs) else {}
    left = estimate_seconds(pending, measured, device_type, calibrated=rates, batch=cfg.batch_size)
    pairs = Counter((j.model, j.method) for j in plan.jobs)
    if rates:
        basis = f"calibrated on {label} for {len(rates)} of {len(pairs)} (model, method) pairs"
        where = label
    else:
        basis = "measured in this store" if measured else f"nominal {device_type} throughput"
        where = device_type
    unit = "GPU-hours" if where.startswith("cuda") else f"{where.upper()}-hours"
    lines.append(f"estimated time left {format_duration(left)} on {where} ({basis}) = "
                 f"{left / 3600:.3g} {unit} for {len(pending)} jobs")
    flops = sum(job_flops(j) for j in pending)
    u = ASSUMED_UTILISATION
    lines.append(f"FLOPs left {flops:.3g} (forward + input-gradient backward): {peak_hours(pending):.3g} "
                 f"H100-hours at bf16 peak; ~{gpu_hours(pending):.3g} H100-hours at an assumed "
                 f"{u['convnet']:.0%} (convnets) / {u['transformer']:.0%} (ViTs) of peak and a loop/raw ratio of "
                 f"{ASSUMED_LOOP_RATIO} (bench/gpu.py measures both)")
    return lines


def register(cli, config_options) -> None:
    """Add ``submit`` and ``status`` to the ``cli`` group."""

    @cli.command()
    @config_options
    @click.option("--executor", type=click.Choice(EXECUTORS), default="slurm", show_default=True,
                  help="slurm: an array job through submitit; local: processes on this machine.")
    @click.option("--shards", type=int, default=None, help="Number of shards (default: [cluster] shards).")
    @click.option("--wait", is_flag=True, help="Wait for every shard to finish, then print the status.")
    @click.option("--force", is_flag=True, help="Submit even if shards of the last submission still run.")
    @click.pass_context
    def submit(ctx, cfg, executor, shards, wait, force):
        """Submit the missing jobs as shards (one task each); resubmitting runs only what is missing."""
        from .pipeline import Store, make_plan
        from .pipeline.calibrate import saved_rates
        from .pipeline.cluster import absolute_config, default_folder, make_executor
        from .app import install
        from .pipeline.cluster import submit as submit_shards
        from .pipeline.estimate import estimate_seconds, relative_cost
        from .pipeline.sharding import plan_batches
        from .pipeline.status import active_shards, status

        count = cfg.cluster.shards if shards is None else shards
        if count < 1:
            raise AtlasError(f"--shards must be at least 1, got {count}")
        cfg = absolute_config(cfg)
        plan = make_plan(cfg)
        if plan.unknown_data:
            raise AtlasError(f"the data folder {plan.unknown_data!r} is not here, and the jobs that use it are keyed by "
                             f"its contents: submit from a machine that sees it (the shards will)")
        from .pipeline.compute import plan_precision
        from .pipeline.memory import check_cluster_memory

        memory = check_cluster_memory(plan.jobs, cfg.batch_size, cfg.cluster.gpu_memory_gb, plan_precision(cfg))
        store = Store(cfg.store)
        busy = [] if force else active_shards(status(plan.jobs, store, cfg.batch_size))
        if busy:
            raise AtlasError(f"{len(busy)} shard(s) of the last submission may still be running (shard "
                             f"{busy[0].index}: {busy[0].state}); wait for them (atlas status) or pass --force")
        batches = plan_batches(plan.jobs, cfg.batch_size)
        rates, _ = saved_rates(store, plan.jobs, cfg.batch_size, "cuda")
        if rates and all((b.model, b.method) in rates for b in batches):
            def cost(b):
                return estimate_seconds(b.jobs, calibrated=rates, batch=len(b))
        else:
            def cost(b):
                return relative_cost(b.jobs)
        from .atomic import disk_errors

        ex = make_executor(executor, default_folder(cfg), cfg.cluster, cfg.name)
        with disk_errors(cfg.store):  # the submission's manifest is written into the store
            manifest, jobs = submit_shards(cfg, store, batches, count, ex, executor, cost, setup=install)
        if manifest is None:
            click.echo(f"nothing to submit: all {len(plan.jobs)} jobs are in {cfg.store}")
            return
        n_jobs = sum(s["jobs"] for s in manifest["shards"])
        click.echo(f"submission {manifest['id']}: {len(manifest['shards'])} shard(s), {n_jobs} jobs missing, "
                   f"{executor} job id(s) {', '.join(manifest['job_ids'][:4])}"
                   f"{' ...' if len(manifest['job_ids']) > 4 else ''}; follow with `atlas status`")
        click.echo(memory.line() if memory is not None else
                   "memory: not checked before submitting (set [cluster] gpu_memory_gb to the memory of one GPU "
                   "of the nodes)")
        if wait:
            _follow(store, batches, manifest, jobs, ctx.obj["progress"])
            for i, job in enumerate(jobs):
                try:
                    job.result()
                except Exception as exc:  # the shard recorded its reason; status shows it
                    click.echo(f"shard {i} ended with an error: {str(exc).strip().splitlines()[-1][:200]}")
            _print_status(cfg, plan, store)

    @cli.command()
    @config_options
    def status(cfg):
        """Done, pending and failed jobs (with reasons) and the state of each shard."""
        from .pipeline import Store, make_plan

        _print_status(cfg, make_plan(cfg), Store(cfg.store))


def _follow(store, batches, manifest, jobs, progress: bool, every: float = 2.0) -> None:
    """A progress bar over the submission's jobs until every shard's task has ended."""
    import time

    from .progress import stage

    wanted = {i for s in manifest["shards"] for i in s["batches"]}
    keys = [k for b in batches if b.id in wanted for k in b.keys]
    seen = len(store.done(keys))
    with stage("shards", len(keys), enabled=progress) as bar:
        bar.update(seen)
        while not all(j.done() for j in jobs):
            time.sleep(every)
            now = len(store.done(keys))
            bar.update(now - seen)
            seen = now


def _print_status(cfg, plan, store) -> None:
    from .pipeline.status import format_status, status

    for line in format_status(status(plan.jobs, store, cfg.batch_size)):
        click.echo(line)
