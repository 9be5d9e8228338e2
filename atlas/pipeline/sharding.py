"""Batches and shards: the units a run is split into.

Floating-point differences between batch sizes grow chaotically over an optimisation (NAdam at lr 1.0;
``tests/test_methods.py::test_batched_equals_alone``), so an image is reproducible only if its batch is.
Batches are therefore formed from the **whole plan**, deterministically (the same way whatever has
finished and whichever shard runs them), and a shard is a set of whole batches: a 4-shard run optimises
exactly the batches a single process would and stores the same images.

Shards are balanced by estimated cost, not by count (a ViT-L/16 batch costs ~15 ResNet50 batches), with
the longest-processing-time-first rule; every tie is broken by the batch id, so every process computes the
same assignment from the same batches.
"""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Dict, List, Sequence, Tuple

from ..config import stable_hash
from ..errors import AtlasError
from ..methods import METHODS
from .estimate import relative_cost
from .jobs import Job


@dataclass(frozen=True)
class Batch:
    """Jobs optimised together (same model, method, settings, seed and target kind)."""

    jobs: Tuple[Job, ...]

    @cached_property
    def id(self) -> str:
        """Hash of the batch's job keys: names the batch in submission manifests and the ledger."""
        return stable_hash([j.key for j in self.jobs], length=16)

    @property
    def model(self) -> str:
        return self.jobs[0].model

    @property
    def method(self) -> str:
        return self.jobs[0].method

    @property
    def keys(self) -> List[str]:
        return [j.key for j in self.jobs]

    def __len__(self) -> int:
        return len(self.jobs)


def batch_size_for(method: str, batch_size: int, config=None) -> int:
    """Targets per batch for ``method``: the configured size, 1 if the method cannot batch, or the size in
    the method's own ``config`` where the result depends on it (DeepInversion's batch statistics)."""
    m = METHODS.get(method)
    return m.batch_size(config, batch_size) if config is not None else (batch_size if m.batchable else 1)


def plan_batches(jobs: Sequence[Job], batch_size: int) -> List[Batch]:
    """Split ``jobs`` (a plan's jobs, in plan order) into batches.

    Jobs are grouped by (model, method) in order of first appearance, then by batch group; each group is
    cut into consecutive runs of up to the jobs' planned batch size (``Job.batch``; for jobs made by hand,
    ``batch_size``, or 1 for methods that cannot batch).
    """
    by_pair: Dict[Tuple[str, str], Dict[tuple, List[Job]]] = {}
    for j in jobs:
        by_pair.setdefault((j.model, j.method), {}).setdefault(j.batch_group(), []).append(j)
    out: List[Batch] = []
    for (_, method), groups in by_pair.items():
        for g in groups.values():
            size = g[0].batch or batch_size_for(method, batch_size, g[0].config)  # as planned
            out.extend(Batch(tuple(g[i: i + size])) for i in range(0, len(g), size))
    return out


def assign(batches: Sequence[Batch], n: int, cost: Callable[[Batch], float] | None = None) -> List[List[Batch]]:
    """Distribute ``batches`` over ``n`` shards, balancing the total cost (longest first, to the least
    loaded shard; ties by batch id and shard index). Each shard keeps its batches in the given order,
    so that a shard loads each model once."""
    if n < 1:
        raise AtlasError(f"the number of shards must be at least 1, got {n}")
    cost = cost or (lambda b: relative_cost(b.jobs))
    costs = {b.id: cost(b) for b in batches}
    order = sorted(range(len(batches)), key=lambda i: (-costs[batches[i].id], batches[i].id))
    heap = [(0.0, s) for s in range(n)]
    owner: Dict[int, int] = {}
    for i in order:
        load, s = heapq.heappop(heap)
        owner[i] = s
        heapq.heappush(heap, (load + costs[batches[i].id], s))
    shards: List[List[Batch]] = [[] for _ in range(n)]
    for i, b in enumerate(batches):
        shards[owner[i]].append(b)
    return shards


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; anything else is a one-line :class:`AtlasError`."""
    m = _SHARD.match(str(text))
    if not m:
        raise AtlasError(f"bad shard {text!r}: give it as i/n, e.g. 0/4 (shards are numbered 0 to n-1)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise AtlasError(f"bad shard {text!r}: i must be in 0..n-1 and n at least 1")
    return i, n


def shard_batches(jobs: Sequence[Job], batch_size: int, index: int, count: int) -> List[Batch]:
    """The batches of shard ``index`` of ``count`` for a plan's ``jobs`` (stable as jobs finish: the
    share is taken over all the plan's batches, and finished jobs are skipped when it runs)."""
    return assign(plan_batches(jobs, batch_size), count)[index]
