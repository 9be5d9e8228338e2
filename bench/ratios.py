"""Every method's loop against the raw model, in CPU seconds of one thread (robust on a shared machine).

    python bench/ratios.py [--methods maco,vital,vital_neuron,deepinversion,...] [--steps 6] [--k 1]

Wall-clock ratios need an idle machine: on a 2-core machine shared by many processes the same raw pass
swings by 10x within a minute. CPU time of one thread counts only this process's own work, so the ratio
``raw CPU seconds per image / loop CPU seconds per image`` is meaningful whatever the load (caches shared
with neighbours still slow both sides alike). Per method: K targets (``--k``) at the demo preset's
settings (fewer steps), the CPU seconds of each optimisation step from the loop's ``on_step`` callback
(median over the steps after the first, which also holds the set-up), divided into the model batch; the
raw forward + input-gradient backward at the same batch, timed the same way (median of ``--raw-reps``),
interleaved with the loop, through the same BatchNorm-folded copy the loop runs (``atlas.models.fold``).
``ratio`` = loop images per CPU second / raw images per CPU second (goals,
issue 20: class targets >= 0.85; VITAL neuron and concept >= 0.45, a step being a forward+backward plus
one LRP pass); ``ratio_to_plain_model``: the same against the model as its library runs it (fold off).
``vital_neuron`` is VITAL on the neuron ``blocks.4:96`` (top-patch scan before timing).
Set ATLAS_THREADS to measure with more threads (then CPU time includes spinning threads).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("ATLAS_THREADS", "1")

import torch  # noqa: E402

from common import emit, machine, setup_threads  # noqa: E402

from atlas.config import DEMO_CLASSES, PRESETS  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.targets import Target  # noqa: E402

ALL = ("maco,fourier,fourier_lucid,vital,vital_neuron,deepinversion,plugin_inversion,accentuation,"
       "attribution_vis")


class StepClock:
    """``on_step`` callback: CPU seconds of each step."""

    def __init__(self):
        self.steps, self.last = [], time.process_time()

    def __call__(self, step: int) -> None:
        now = time.process_time()
        self.steps.append(now - self.last)
        self.last = now


def raw_cpu_per_image(model, batch: int, size: int, reps: int) -> float:
    x = torch.rand(batch, 3, size, size, requires_grad=True)
    model(x)[:, 0].sum().backward()
    times = []
    for _ in range(reps):
        t = time.process_time()
        model(x)[:, 0].sum().backward()
        times.append(time.process_time() - t)
    return statistics.median(times) / batch


def targets_for(name: str, k: int):
    if name == "vital_neuron":
        return [Target.of_neuron("blocks.4", 96 + i) for i in range(k)]
    if name in ("accentuation", "attribution_vis"):
        photos = ("chelsea", "coffee", "motorcycle_left", "camera", "flower", "rocket")
        return [Target.of_image(photos[i % 6], DEMO_CLASSES[i % 6], toward=None) for i in range(k)]
    return [Target.of_class(DEMO_CLASSES[i % 6]) for i in range(k)]


def views(cfg) -> int:
    return getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default=ALL)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--k", type=int, default=1, help="targets per batch (DeepInversion: its batch)")
    ap.add_argument("--raw-reps", type=int, default=5)
    args = ap.parse_args()
    threads = setup_threads()
    demo = PRESETS.get("demo")()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=demo.data, cache_dir=None, pool_factory=lambda: open_pool("bundled"))
    out = {}
    for name in args.methods.split(","):
        mname = "vital" if name == "vital_neuron" else name
        method = METHODS.get(mname)
        over = dict(demo.method_settings(mname), steps=args.steps)
        if mname == "vital":
            over.update(neuron_steps=args.steps, warmup=1)
        if mname in ("deepinversion", "deepinversion_ms"):
            over.update(batch_size=args.k, warmup=1)
        if mname == "accentuation":
            over.update(lam=1.0)  # the lambda search is a one-off, counted in bench/seeded.py
        if mname == "plugin_inversion":
            over.update(stages=1)
        cfg = method.config(over)
        targets = targets_for(name, args.k)
        seeds = list(range(args.k))
        method.run(ctx, dataclasses.replace(cfg, steps=1, **({"neuron_steps": 1} if mname == "vital" else {})),
                   targets, seeds)  # warm-up and one-off set-ups (spectrum, top-patch scan, lambda)
        clock = StepClock()
        ctx.on_step = clock
        clock.last = time.process_time()
        method.run(ctx, cfg, targets, seeds)
        ctx.on_step = None
        batch = args.k * views(cfg)
        size = getattr(cfg, "image_size", None) or model.input_size
        step = statistics.median(clock.steps[1:]) if len(clock.steps) > 1 else clock.steps[0]
        raw = raw_cpu_per_image(model, batch, model.input_size, args.raw_reps)
        model.fold_batchnorm = False  # the model as its library runs it (the loop ran the folded copy)
        plain = raw_cpu_per_image(model, batch, model.input_size, args.raw_reps)
        model.fold_batchnorm = True
        out[name] = {"model_batch": batch, "image_size": size, "steps_timed": len(clock.steps) - 1,
                     "loop_cpu_ms_per_step": round(1000 * step, 1), "raw_cpu_ms_per_image": round(1000 * raw, 1),
                     "step_in_raw_passes": round(step / batch / raw, 2), "ratio": round(raw * batch / step, 3),
                     "plain_cpu_ms_per_image": round(1000 * plain, 1),
                     "ratio_to_plain_model": round(plain * batch / step, 3)}
        print(name, out[name], file=sys.stderr, flush=True)
    emit({"benchmark": "ratios", "unit": "CPU seconds", "threads": threads, "k": args.k, "steps": args.steps,
          "load_average_1min": round(os.getloadavg()[0], 2), "methods": out, "machine": machine()})


if __name__ == "__main__":
    main()
