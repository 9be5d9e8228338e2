"""``atlas status``: what is done, pending and failed (with reasons), and how each shard of the latest
submission is doing. Reads only the plan, the store and the submission records (and, for SLURM, the
scheduler's accounting through submitit when it is reachable)."""
from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .cluster import manifests, shard_state
from ..atomic import pid_alive
from .jobs import Job
from .ledger import read_ledger
from .sharding import plan_batches
from .store import Store

#: SLURM states in which a task is over without having recorded its end itself.
_SLURM_ENDED = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
                "DEADLINE"}


@dataclass
class ShardStatus:
    index: int
    state: str
    done: int
    jobs: int
    reason: Optional[str] = None
    where: str = ""


@dataclass
class Status:
    total: int
    done: int
    failed: List[Tuple[Job, str]] = field(default_factory=list)
    submission: Optional[dict] = None
    shards: List[ShardStatus] = field(default_factory=list)
    computed_twice: int = 0
    retried: List[Job] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.total - self.done - len(self.failed)


def _scheduler_state(manifest: dict, index: int) -> Optional[str]:
    """The SLURM state of shard ``index``'s task, or None (not SLURM, or accounting unreachable)."""
    if manifest.get("executor") != "slurm" or index >= len(manifest.get("job_ids", [])):
        return None
    try:
        import submitit

        return str(submitit.SlurmJob(manifest["folder"], manifest["job_ids"][index]).state).split()[0]
    except Exception:  # no sacct here, or the job is too old for accounting
        return None


def _shard_status(store: Store, manifest: dict, entry: dict, keys_of: Dict[str, List[str]]) -> ShardStatus:
    index = entry["index"]
    keys = [k for b in entry["batches"] for k in keys_of.get(b, [])]
    done = len(store.done(keys))
    rec = shard_state(store, manifest["id"], index) or {}
    state, reason = rec.get("state", "queued"), rec.get("reason")
    where = f"{rec['host']} pid {rec['pid']}" if rec.get("host") else ""
    if rec.get("attempt", 1) > 1:
        where += f", attempt {rec['attempt']}"
    sched = _scheduler_state(manifest, index)
    if state in ("running", "queued", "requeued") and sched in _SLURM_ENDED:
        state, reason = "failed", f"scheduler reports {sched}"
    elif state == "running" and rec.get("host") == socket.gethostname() and not pid_alive(int(rec["pid"])):
        state, reason = "stopped", "the process ended without recording it (killed?)"
    unknown = sum(b not in keys_of for b in entry["batches"])
    if unknown:
        reason = (f"{reason}; " if reason else "") + f"{unknown} of its batches are not in this plan"
    elif keys and done == len(keys) and state in ("stopped", "failed"):
        state = "done"  # everything it had to do is in the store
    return ShardStatus(index, state, done, len(keys), reason, where)


def status(jobs: List[Job], store: Store, batch_size: int) -> Status:
    """The status of a plan's ``jobs`` in ``store`` and of the latest submission's shards."""
    done_keys = store.done(j.key for j in jobs)
    done = [j for j in jobs if j.key in done_keys]
    failed = []
    records_of = store.failures(j.key for j in jobs if j.key not in done_keys)
    for j in jobs:
        rec = records_of.get(j.key)
        if rec is not None:
            step = f" (step {rec['step']})" if rec.get("step") is not None else ""
            failed.append((j, f"{rec.get('reason', 'failed')}{step}"))
    records = list(read_ledger(store.root))  # one pass: computed-twice and retried jobs
    counts = Counter(k for r in records for k in r["keys"])
    twice = sum(1 for k, n in counts.items() if n > 1 and k in done_keys)
    again = {k for r in records for k in r.get("retried") or ()}
    st = Status(total=len(jobs), done=len(done), failed=failed, computed_twice=twice,
                retried=[j for j in done if j.key in again])
    subs = manifests(store)
    if subs:
        st.submission = subs[-1]
        keys_of = {b.id: b.keys for b in plan_batches(jobs, batch_size)}
        st.shards = [_shard_status(store, subs[-1], e, keys_of) for e in subs[-1]["shards"]]
    return st


def active_shards(st: Status) -> List[ShardStatus]:
    """Shards of the latest submission that may still be working (running, requeued, or waiting in the
    SLURM queue)."""
    if st.submission is None:
        return []
    waiting = st.submission.get("executor") == "slurm"
    return [s for s in st.shards if s.state in ("running", "requeued") or (s.state == "queued" and waiting)]


def format_status(st: Status, max_failed: int = 10) -> List[str]:
    """Human-readable lines for ``atlas status``."""
    lines = [f"{st.total} jobs: {st.done} done, {st.pending} pending, {len(st.failed)} failed"]
    reasons = Counter(reason for _, reason in st.failed)
    for job, reason in st.failed[:max_failed]:
        lines.append(f"  failed {job.label()}: {reason}")
    if len(st.failed) > max_failed:
        lines.append(f"  ... {len(st.failed) - max_failed} more failures; reasons: " +
                     "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3)))
    if st.retried:
        lines.append(f"{len(st.retried)} done job(s) were retried with another seed after a failure "
                     f"(`retry_of` in their meta):")
        for job in st.retried[:max_failed]:
            lines.append(f"  retried {job.label()}")
        if len(st.retried) > max_failed:
            lines.append(f"  ... {len(st.retried) - max_failed} more")
    if st.computed_twice:
        lines.append(f"warning: {st.computed_twice} job(s) were computed more than once (see the store's ledger/)")
    if st.submission is not None:
        sub = st.submission
        ids = sub.get("job_ids") or []
        jid = f", job {ids[0].split('_')[0]}" if ids and sub.get("executor") == "slurm" else ""
        lines.append(f"submission {sub['id']} ({sub['executor']}, {len(sub['shards'])} shards{jid}):")
        for s in st.shards:
            extra = f": {s.reason}" if s.reason and s.state != "done" else ""
            where = f" [{s.where}]" if s.where else ""
            lines.append(f"  shard {s.index}: {s.state}, {s.done}/{s.jobs} jobs done{where}{extra}")
        if st.pending or st.failed:
            lines.append("resubmit with `atlas submit` to run only what is missing")
    return lines
