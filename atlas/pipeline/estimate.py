"""Time estimates: a job's cost in model forward+backward passes, times the model's relative cost,
divided by a throughput - measured in this store when jobs of the same (model, method) have finished,
otherwise a nominal figure for the device."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, Optional, Tuple

from .jobs import Job

#: GFLOPs of one forward pass at the model's input size (published figures), relative cost of a job.
MODEL_GFLOPS = {
    "efficientnet_lite0": 0.40, "efficientnet_lite1": 0.63, "efficientnet_lite2": 0.90,
    "resnet50": 4.1, "densenet121": 2.9, "convnext_base": 15.4, "vit_l_16": 61.6, "vit_l_32": 15.4,
}
#: Lite0 forward+backward images per second on a 2-core CPU (DESIGN.md, bench/loop.py).
NOMINAL_LITE0_PER_S = {"cpu": 25.0, "cuda": 1500.0}


def passes(job: Job) -> float:
    """Forward+backward image passes of one job at the model input size."""
    cfg = job.config
    from ..methods import METHODS

    if job.method in METHODS and (own := METHODS.get(job.method).passes(cfg)) is not None:
        return float(own)
    steps = getattr(cfg, "steps", 100)
    views = getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1
    size = getattr(cfg, "image_size", 224)
    extra = 1.0 if size <= 512 else 1.15  # rendering a large image costs a little more
    return float(steps * views * extra)


def nominal_seconds(job: Job, device: str = "cpu") -> float:
    g = MODEL_GFLOPS.get(job.model, 4.1) / MODEL_GFLOPS["efficientnet_lite0"]
    return passes(job) * g / NOMINAL_LITE0_PER_S.get(device, 25.0)


def measured_rates(metas: Iterable[dict]) -> Dict[Tuple[str, str], float]:
    """Seconds per pass by (model, method) from finished jobs' metadata."""
    acc: Dict[Tuple[str, str], list] = defaultdict(lambda: [0.0, 0.0])
    for m in metas:
        steps = m.get("steps_run") or m.get("config", {}).get("steps") or 1
        views = m.get("config", {}).get("crops") or m.get("config", {}).get("views") or 1
        acc[(m["model"], m["method"])][0] += float(m.get("seconds", 0.0))
        acc[(m["model"], m["method"])][1] += steps * views
    return {k: s / p for k, (s, p) in acc.items() if p > 0 and s > 0}


def estimate_seconds(jobs: Iterable[Job], rates: Optional[Dict[Tuple[str, str], float]] = None,
                     device: str = "cpu") -> float:
    rates = rates or {}
    total = 0.0
    for j in jobs:
        r = rates.get((j.model, j.method))
        total += passes(j) * r if r else nominal_seconds(j, device)
    return total


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
