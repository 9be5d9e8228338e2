"""How far ``atlas plan``'s nominal estimate is from what a run costs: model passes counted, seconds timed.

    python bench/estimate.py [--preset demo | --config FILE.toml] [--steps N] [--methods maco vital ...]

For the first batch of every (model, method) of the plan, the method runs on this CPU with a counter on
the model: every forward call adds its images (scaled by their area relative to the model's input) as
*passes*, a forward with gradients counting 1 and one without 1/3 (no backward). The counted passes per job
are set against the estimate's ``passes_per_job`` (what the nominal estimate charges), and the measured
seconds per job against the time ``passes_per_job`` takes at the raw forward+backward rate measured in the
same process (so the comparison holds on a loaded machine: both sides slow down together). ``--steps N``
runs every method with N steps instead of its configured count and scales the counts back (the passes of
a job are affine in its steps: the fixed part is measured at N and 2N).

Printed as JSON: per pair, ``estimated_passes`` and ``counted_passes`` per job, their ratio, and the
seconds; bench/README.md ("Estimates") records the run that set the per-method pass counts.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_throughput, setup_threads  # noqa: E402

from atlas.config import resolve_config  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402
from atlas.pipeline.estimate import passes_per_job  # noqa: E402
from atlas.pipeline.sharding import plan_batches  # noqa: E402


class PassCounter:
    """Forward hook on the model's module: images x area / input area, 1/3 for a forward without grad."""

    def __init__(self, module: torch.nn.Module, input_size: int):
        self.passes = 0.0
        self.input_area = float(input_size * input_size)
        self.handle = module.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            area = x.shape[-1] * x.shape[-2] / self.input_area
            self.passes += x.shape[0] * area * (1.0 if torch.is_grad_enabled() else 1.0 / 3.0)


def measure(method, ctx, batch, steps):
    """(counted passes, seconds) of one run of ``batch`` with ``steps`` steps."""
    cfg = batch[0].config
    if steps is not None and hasattr(cfg, "steps"):
        cfg = dataclasses.replace(cfg, steps=steps)
    counter = PassCounter(ctx.model.module, ctx.model.input_size)
    start = time.perf_counter()
    try:
        method.run(ctx, cfg, [j.target for j in batch], [j.target_seed for j in batch])
    finally:
        counter.handle.remove()
    return counter.passes, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument("--steps", type=int, default=8, help="steps per run (0: the configured count)")
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--count-only", action="store_true",
                    help="count passes only (no timing: for a loaded machine, where seconds mean nothing)")
    args = ap.parse_args()
    setup_threads()
    cfg = resolve_config(args.preset, args.config)
    plan = make_plan(cfg)
    out = {"machine": machine(), "config": cfg.name, "pairs": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        firsts = {}
        for b in plan_batches(plan.jobs, cfg.batch_size):
            if args.methods is None or b.method in args.methods:
                firsts.setdefault((b.model, b.method), list(b.jobs))
        models = {}
        for (model_name, name), batch in firsts.items():
            if model_name not in models:
                model = load_model(model_name, download=cfg.download)
                raw = None if args.count_only else raw_throughput(model, 4, model.input_size, seconds=4.0)
                models = {model_name: (model, raw)}
            model, raw = models[model_name]
            ctx = RunContext(model=model, data=cfg.data, cache_dir=store.cache_dir, store=store, config=cfg,
                             pool_factory=lambda: open_pool(cfg.data.pool))
            method = METHODS.get(name)
            base = batch[0].config
            n = args.steps or getattr(base, "steps", None)
            if not args.count_only:
                measure(method, ctx, batch, n)  # warm-up: spectrum, references, caches
            if n is not None and hasattr(base, "steps"):
                p1, s1 = measure(method, ctx, batch, n)
                p2, s2 = measure(method, ctx, batch, 2 * n)
                per_step_p, per_step_s = (p2 - p1) / n, (s2 - s1) / n
                passes = p1 + (base.steps - n) * per_step_p
                seconds = s1 + (base.steps - n) * per_step_s
            else:
                passes, seconds = measure(method, ctx, batch, None)
            k = len(batch)
            est = sum(passes_per_job(j) for j in batch) / k
            out["pairs"].append({
                "model": model_name, "method": name, "batch": k, "steps": getattr(base, "steps", None),
                "estimated_passes": round(est, 1), "counted_passes": round(passes / k, 1),
                "counted_over_estimated": round(passes / k / est, 2) if est else None,
                **({} if raw is None else {
                    "seconds_per_job": round(seconds / k, 2), "raw_img_per_s": round(raw, 1),
                    "seconds_over_raw_time_of_estimate": round(seconds / k / (est / raw), 2) if est else None}),
            })
            print(out["pairs"][-1], file=sys.stderr)
    emit(out)


if __name__ == "__main__":
    main()
