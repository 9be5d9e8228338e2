"""Submitting shards to a cluster with submitit (SLURM, or local processes for testing and workstations).

``atlas submit`` takes a snapshot of the batches that are still missing, balances them over ``n`` shards
by estimated cost and submits one array task per shard. The snapshot is a *submission*:
``<store>/shards/<id>/manifest.json`` lists each shard's batch ids; every task writes its state to
``shard-<i>.json`` next to it (running, done, failed with the reason, requeued after pre-emption).
A task is checkpointable: on pre-emption or time-out (SLURM's ``--signal=USR2@...``) submitit requeues it,
and the requeued task skips the jobs already in the store. Resubmitting after failures snapshots only
what is still missing, so nothing is computed twice.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..atomic import atomic_write, is_int, read_json
from ..config import EXECUTORS, AtlasConfig, ClusterConfig, stable_hash
from ..errors import AtlasError, unknown_choice
from .sharding import Batch, assign, plan_batches
from .store import Store


def submissions_dir(store: Store) -> Path:
    return store.root / "shards"


def absolute_config(cfg: AtlasConfig) -> AtlasConfig:
    """``cfg`` with the store and site folders made absolute (not the data pool: it is part of the keys
    of jobs that use real images, and tasks start in the submission's folder, as SLURM does), and the
    precision pinned to what it resolves to here: the tasks plan again on their own machines, and their
    jobs must be the submitted ones (``auto`` could resolve differently on a GPU node)."""
    from .compute import plan_precision

    site = replace(cfg.site, folder=str(Path(cfg.site.folder).resolve()),
                   assets_folder=str(Path(cfg.site.assets_path).resolve()) if cfg.site.external_assets else None)
    return replace(cfg, store=str(Path(cfg.store).resolve()), site=site,
                   compute=replace(cfg.compute, precision=plan_precision(cfg)))


def pending_batches(batches: Sequence[Batch], store: Store) -> List[Batch]:
    """Batches with at least one job not in the store."""
    done = store.done(k for b in batches for k in b.keys)
    return [b for b in batches if not all(k in done for k in b.keys)]


def write_manifest(store: Store, cfg: AtlasConfig, shards: List[List[Batch]], executor: str,
                   cost: Callable[[Batch], float]) -> dict:
    """Record a new submission (the snapshot of each shard's batches); returns the manifest."""
    created = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    ids = [[b.id for b in s] for s in shards]
    sid = f"{created}-{stable_hash([ids, time.time_ns(), os.getpid()], length=6)}"
    manifest = {
        "id": sid, "created": created, "executor": executor, "config": cfg.name, "job_ids": [],
        "shards": [{"index": i, "batches": s, "jobs": sum(len(b) for b in shards[i]),
                    "cost": round(sum(cost(b) for b in shards[i]), 3)} for i, s in enumerate(ids)],
    }
    save_manifest(store, manifest)
    return manifest


def save_manifest(store: Store, manifest: dict) -> None:
    atomic_write(submissions_dir(store) / manifest["id"] / "manifest.json",
                 json.dumps(manifest, indent=1).encode())


def manifest_problem(manifest, sid: Optional[str] = None) -> Optional[str]:
    """Why ``manifest`` is not a submission as :func:`write_manifest` records it (None if it is)."""
    if not isinstance(manifest, dict):
        return f"not a JSON object ({type(manifest).__name__})"
    if not isinstance(manifest.get("id"), str) or (sid is not None and manifest["id"] != sid):
        return "no or another submission id"
    if not isinstance(manifest.get("executor"), str):
        return "no executor"
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        return "no shard list"
    for i, entry in enumerate(shards):
        if not (isinstance(entry, dict) and entry.get("index") == i and isinstance(entry.get("batches"), list)
                and all(isinstance(b, str) for b in entry["batches"])):
            return f"bad entry for shard {i}"
    ids = manifest.get("job_ids", [])
    if not isinstance(ids, list) or not all(isinstance(j, str) for j in ids):
        return "bad job ids"
    if "folder" in manifest and not isinstance(manifest["folder"], str):
        return "bad folder"
    return None


def load_manifest(store: Store, sid: str) -> dict:
    path = submissions_dir(store) / sid / "manifest.json"
    manifest = read_json(path, f"submission {sid}", lambda m: manifest_problem(m, sid))
    if manifest is None:
        known = [p.name for p in submissions_dir(store).glob("*") if p.is_dir()]
        raise unknown_choice("submission", sid, known)
    return manifest


def manifests(store: Store) -> List[dict]:
    """Every well-formed submission of this store, oldest first (a damaged one is warned about once and
    skipped: ``atlas submit`` snapshots what is missing from the store, not from old submissions)."""
    out = []
    for path in sorted(submissions_dir(store).glob("*/manifest.json")):
        m = read_json(path, f"submission {path.parent.name}", lambda m: manifest_problem(m, path.parent.name))
        if m is not None:
            out.append(m)
    return out


def _state_problem(state) -> Optional[str]:
    if not isinstance(state, dict):
        return f"not a JSON object ({type(state).__name__})"
    for name, ok in (("state", lambda v: isinstance(v, str)), ("reason", lambda v: v is None or isinstance(v, str)),
                     ("host", lambda v: isinstance(v, str)), ("pid", is_int), ("attempt", is_int)):
        if name in state and not ok(state[name]):
            return f"bad {name!r}"
    if "host" in state and "pid" not in state:
        return "a host without a process id"
    return None


def shard_state(store: Store, sid: str, index: int) -> Optional[dict]:
    """What shard ``index`` of submission ``sid`` last recorded (None: nothing yet, or a damaged record,
    which is warned about once and read as "queued")."""
    return read_json(submissions_dir(store) / sid / f"shard-{index}.json", f"submission {sid} shard {index}",
                     _state_problem)


def _set_state(store: Store, sid: str, index: int, **fields) -> dict:
    state = dict(shard_state(store, sid, index) or {}, **fields,
                 updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic_write(submissions_dir(store) / sid / f"shard-{index}.json", json.dumps(state, indent=1).encode())
    return state


class ShardTask:
    """What one array task runs: shard ``index`` of submission ``sid``.

    Checkpointable (submitit calls :meth:`checkpoint` on pre-emption or time-out and requeues the
    returned call); the store makes the requeued task skip every job that is already done. ``setup`` runs
    first in the task's own process: the composition root (``atlas.app.install``), which fills the
    registries there as the command line does here.
    """

    def __init__(self, cfg: AtlasConfig, sid: str, index: int, setup: Optional[Callable[[], None]] = None):
        self.cfg = cfg
        self.sid = sid
        self.index = index
        self.setup = setup

    def __call__(self) -> dict:
        from .planner import make_plan
        from .runner import Runner

        if self.setup is not None:
            self.setup()
        store = Store(self.cfg.store)
        previous = shard_state(store, self.sid, self.index) or {}
        _set_state(store, self.sid, self.index, state="running", host=socket.gethostname(), pid=os.getpid(),
                   attempt=int(previous.get("attempt", 0)) + 1, started=time.time(), reason=None)
        try:
            wanted = load_manifest(store, self.sid)["shards"][self.index]["batches"]
            by_id = {b.id: b for b in plan_batches(make_plan(self.cfg).jobs, self.cfg.batch_size)}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                raise AtlasError(f"submission {self.sid} does not match the configuration: {len(missing)} of "
                                 f"shard {self.index}'s batches are not in the plan (was the config changed?)")
            runner = Runner(self.cfg, store, progress=False, tags={"submission": self.sid, "shard": self.index})
            report = runner.run_batches([by_id[i] for i in wanted])
        except Exception as exc:
            _set_state(store, self.sid, self.index, state="failed", reason=f"{type(exc).__name__}: {exc}"[:500])
            raise
        summary = {"done": report.done, "cached": report.cached, "failed": len(report.failed),
                   "seconds": round(report.seconds, 1)}
        _set_state(store, self.sid, self.index, state="done", **summary)
        return summary

    def checkpoint(self, *args, **kwargs):
        """Record the pre-emption and hand submitit the same task to requeue."""
        import submitit

        _set_state(Store(self.cfg.store), self.sid, self.index, state="requeued",
                   reason="pre-empted or timed out; requeued")
        return submitit.helpers.DelayedSubmission(ShardTask(self.cfg, self.sid, self.index, self.setup))


def slurm_parameters(cluster: ClusterConfig, name: str) -> Dict[str, object]:
    """submitit ``SlurmExecutor.update_parameters`` arguments for ``cluster`` (one GPU task per shard)."""
    params: Dict[str, object] = {
        "job_name": f"atlas-{name}", "time": cluster.timeout_min, "mem": f"{cluster.mem_gb}GB",
        "cpus_per_task": cluster.cpus, "gpus_per_node": cluster.gpus, "ntasks_per_node": 1, "nodes": 1,
        "array_parallelism": cluster.array_parallelism, "signal_delay_s": 120,
    }
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cluster, key):
            params[key] = getattr(cluster, key)
    return params


def make_executor(kind: str, folder: str | Path, cluster: ClusterConfig, name: str = "atlas"):
    """A submitit executor: ``slurm`` (needs ``srun``/``sbatch`` on this machine) or ``local``."""
    try:
        import submitit
    except ImportError:
        raise AtlasError("submitting shards needs submitit: pip install 'atlas-fv[cluster]'") from None
    if kind not in EXECUTORS:
        raise unknown_choice("executor", kind, EXECUTORS)
    if kind == "slurm":
        try:
            ex = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=cluster.max_requeues)
        except RuntimeError as exc:
            raise AtlasError(f"cannot submit to SLURM from this machine: {exc}") from None
        ex.update_parameters(**slurm_parameters(cluster, name))
        return ex
    import torch

    ex = submitit.LocalExecutor(folder=str(folder), max_num_timeout=cluster.max_requeues)
    ex.update_parameters(timeout_min=cluster.timeout_min, signal_delay_s=min(120, cluster.timeout_min * 30),
                         gpus_per_node=min(cluster.gpus, torch.cuda.device_count()))
    return ex


def submit(cfg: AtlasConfig, store: Store, batches: Sequence[Batch], count: int, executor,
           kind: str, cost: Callable[[Batch], float],
           setup: Optional[Callable[[], None]] = None) -> Tuple[Optional[dict], list]:
    """Snapshot the pending ``batches`` into a new submission of up to ``count`` shards and submit one
    task per shard to ``executor`` (each task calls ``setup``, the composition root, in its process).
    Returns the manifest (with the scheduler's job ids) and the submitit jobs, or ``(None, [])`` if nothing
    is missing."""
    todo = pending_batches(batches, store)
    if not todo:
        return None, []
    shards = [s for s in assign(todo, min(count, len(todo)), cost) if s]
    manifest = write_manifest(store, cfg, shards, kind, cost)
    tasks = [ShardTask(cfg, manifest["id"], i, setup) for i in range(len(shards))]
    jobs = executor.submit_array(tasks)
    manifest["job_ids"] = [str(j.job_id) for j in jobs]
    manifest["folder"] = str(executor.folder)
    save_manifest(store, manifest)
    return manifest, jobs


def default_folder(cfg: AtlasConfig) -> Path:
    return Path(cfg.cluster.folder) if cfg.cluster.folder else Path(cfg.store) / "submitit"
