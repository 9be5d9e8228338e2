"""Calibrating the time estimate on this device (``atlas plan --estimate``).

For every (model, method) of a plan, the first batch of the plan is optimised for a few steps on the
current device, with the run's GPU settings: one untimed warm-up run (cuDNN autotuning, allocations),
then runs of ``s1`` and ``s2`` steps. Their difference gives the cost of one step per target, the rest is
the batch's fixed overhead (set-up, final scoring). Calibrations are saved in the store
(``cache/calibration.json``, by device, settings and batch size), so that a plan made later on a login
node without a GPU reports GPU-hours measured on the GPU. A pair that cannot be timed here (no weights,
no data) keeps the nominal estimate, with the reason.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from ..config import AtlasConfig
from ..data import open_pool
from ..errors import AtlasError
from ..methods import METHODS
from .compute import compute_settings
from .disk import atomic_write
from .estimate import Pair, Rate
from .jobs import Job
from ..progress import stage
from .sharding import plan_batches
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """The outcome for one (model, method): a :class:`Rate`, or the reason there is none."""

    model: str
    method: str
    rate: Optional[Rate] = None
    reason: str = ""
    note: str = ""


def device_label(device: torch.device) -> str:
    """``cuda:<GPU name>`` or ``cpu``: what a calibration was measured on."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _entry_key(job: Job, batch: int, precision: str) -> str:
    return f"{job.model}|{job.method}|{job.config_hash}|{batch}|{precision}"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_batch(method, ctx, jobs: List[Job], steps: Tuple[int, int]) -> Rate:
    """Time ``jobs`` (one batch) for ``steps[0]`` and ``steps[1]`` steps after a warm-up -> :class:`Rate`."""
    targets, seeds = [j.target for j in jobs], [j.target_seed for j in jobs]
    base = jobs[0].config
    if not hasattr(base, "steps"):
        method.run(ctx, base, targets, seeds)
        return Rate(overhead=_timed(lambda: method.run(ctx, base, targets, seeds)), per_target_step=0.0)
    s1, s2 = steps
    cfg1, cfg2 = dataclasses.replace(base, steps=s1), dataclasses.replace(base, steps=s2)
    method.run(ctx, cfg1, targets, seeds)  # warm-up
    t1 = _timed(lambda: method.run(ctx, cfg1, targets, seeds))
    t2 = _timed(lambda: method.run(ctx, cfg2, targets, seeds))
    per_step = (t2 - t1) / (s2 - s1)
    if per_step <= 0:  # timing noise (a loaded machine): charge everything to the steps
        per_step, overhead = t2 / s2, 0.0
    else:
        overhead = max(t1 - s1 * per_step, 0.0)
    return Rate(overhead=overhead, per_target_step=per_step / len(jobs))


def calibrate(cfg: AtlasConfig, jobs: List[Job], store: Store, device: Optional[str] = None,
              steps: Tuple[int, int] = (2, 6), progress: bool = True) -> Dict[Pair, Calibration]:
    """Time the first batch of every (model, method) of ``jobs`` on ``device``; save and return the rates."""
    from .runner import Runner

    firsts: Dict[Pair, List[Job]] = {}
    for b in plan_batches(jobs, cfg.batch_size):
        firsts.setdefault((b.model, b.method), list(b.jobs))
    runner = Runner(cfg, store, device=device, progress=False)
    out: Dict[Pair, Calibration] = {}
    saved = load_entries(store)
    label = device_label(runner.device)
    with compute_settings(cfg.compute, runner.device), \
            stage("calibrating", len(firsts), unit="pair", enabled=progress) as bar:
        for (model, name), batch in firsts.items():
            cal = out[(model, name)] = Calibration(model, name)
            try:
                ctx = runner.context(model)
                try:
                    ctx.pool  # noqa: B018 - open the configured pool now, or stand in for it
                except AtlasError:
                    ctx.resources["pool"] = open_pool("bundled")
                    cal.note = f"timed with the bundled photos standing in for {cfg.data.pool}"
                cal.rate = time_batch(METHODS.get(name), ctx, batch, steps)
                key = _entry_key(batch[0], len(batch), runner.precision)
                saved.setdefault(label, {})[key] = {**dataclasses.asdict(cal.rate),
                                                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            except (AtlasError, RuntimeError, ValueError, OSError) as exc:
                cal.reason = " ".join(str(exc).split())[:300]
                log.info("cannot calibrate %s/%s: %s", model, name, cal.reason)
            bar.update(1)
    if any(c.rate for c in out.values()):
        atomic_write(store.cache_dir / "calibration.json", json.dumps(saved, indent=1, sort_keys=True).encode())
    return out


def load_entries(store: Store) -> dict:
    try:
        data = json.loads((store.cache_dir / "calibration.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def saved_rates(store: Store, jobs: Iterable[Job], batch: int, device_type: str) -> Tuple[Dict[Pair, Rate], str]:
    """Rates saved in the store for ``jobs``' (model, method, settings): measured on a GPU if any GPU
    calibration exists, else on ``device_type``. Returns ``(rates, device label)``."""
    entries = load_entries(store)
    labels = sorted(entries, key=lambda lab: (not lab.startswith("cuda"), not lab.startswith(device_type), lab))
    for label in labels:
        rates: Dict[Pair, Rate] = {}
        for j in jobs:
            pair = (j.model, j.method)
            if pair in rates:
                continue
            size = j.batch or METHODS.get(j.method).batch_size(j.config, batch)  # as planned
            for precision in ("bf16", "fp32"):
                hit = entries[label].get(_entry_key(j, size, precision))
                if hit:
                    rates[pair] = Rate(float(hit["overhead"]), float(hit["per_target_step"]))
                    break
        if rates:
            return rates, label
    return {}, ""
