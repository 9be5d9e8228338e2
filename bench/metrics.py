"""The metrics step against the raw forward pass (demo setting: Lite0 under study, Lite1 and Lite2 as judges,
Lite2 as the FID substitute).

    python bench/metrics.py [--classes 6] [--methods 2] [--real 10]

Fills a temporary store with one random 224 px "visualization" per job of the demo plan restricted to
``--classes`` and MACO/Fourier (its class, concept, neuron and whole-layer targets), runs the metrics step
cold (empty feature cache) and warm (everything fresh), and prints JSON. The metrics are forward-only, so
the goal (issue 20) is >= 0.8 of the raw forward: every image a backbone runs is counted (``images``; a
pass that only needs a layer's activations is charged the share of the pass that ends at that layer,
:func:`atlas.models.footprint.layer_depths`), and each backbone's raw forward rate at its own input size,
batch 16, is measured before and after the step in the same run (the machine's speed drifts within a
run). The mining sweep of the CoSy control images (the model under study, forward only, stopped at the
deepest neuron layer) is counted the same way, as ``<model> control sweep``. ``raw_forward_seconds`` is
what those images cost at the raw rates; ``ratio_to_raw_forward`` =
that / the step's seconds (loading images, the suites' arithmetic and t-SNE count against it);
``forward_ratio`` per backbone = its images per second inside its forwards / its raw rate. The old figure
(``ratio``: distinct cached (backbone, image) pairs per second / Lite0's raw forward+backward) is kept
for comparison with earlier rows of bench/README.md. ``cold_cpu_seconds`` (CPU time of all threads)
bounds the wall time on an idle machine with ``threads`` cores from below by cpu/threads.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_forward, raw_throughput, setup_threads  # noqa: E402

from atlas.config import DEMO_CLASSES, PRESETS  # noqa: E402
from atlas.data import patches as patches_module  # noqa: E402
from atlas.metrics import MetricsRunner  # noqa: E402
from atlas.metrics import backbones as backbone_module  # noqa: E402
from atlas.metrics.cache import FeatureCache  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.models.footprint import layer_depths  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402


def counted_backbones(images: Counter, charged: Counter, seconds: Counter, calls: Counter):
    """``model_backbone`` wrapped to count the images each zoo backbone runs, the pass share charged for
    them and the seconds inside its forwards."""
    original = backbone_module.model_backbone

    def opened(name, device, label=None):
        b = original(name, device, label)
        run, depths = b.run, layer_depths(name) or {}

        def timed(x, outs):
            full = any(not o.startswith("layer:") for o in outs)
            share = 1.0 if full else max(depths.get(o[6:], 1.0) for o in outs)
            start = time.perf_counter()
            out = run(x, outs)
            seconds[name] += time.perf_counter() - start
            images[name] += x.shape[0]
            charged[name] += x.shape[0] * share
            calls[name] += 1
            return out

        b.run = timed
        return b

    backbone_module.model_backbone = opened
    return original


def counted_sweeps(images: Counter, charged: Counter, seconds: Counter, calls: Counter):
    """``top_images_of_layers`` (the CoSy control sets' mining sweep, forward-only work of the model under
    study, which reads whole images and stops at the deepest layer asked) wrapped to count its images, the
    pass share charged for them and its seconds, under ``<model> control sweep``."""
    original = patches_module.top_images_of_layers

    def counted(model, pool, layers, n, max_images=None, batch_images=8, progress=None):
        depths = layer_depths(model.name) or {}
        start = time.perf_counter()
        out = original(model, pool, layers, n, max_images, batch_images, progress)
        key = f"{model.name} control sweep"
        seconds[key] += time.perf_counter() - start
        scanned = len(pool.source_ids(max_images))
        images[key] += scanned
        charged[key] += scanned * max(depths.get(layer, 1.0) for layer in layers)
        calls[key] += 1
        return out

    patches_module.top_images_of_layers = counted
    return original


def raw_rates(names) -> dict:
    rates = {}
    for name in names:
        handle = load_model(name)
        rates[name] = (raw_forward(handle, 16, handle.input_size, seconds=3.0), handle.input_size)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--methods", type=int, default=2)
    ap.add_argument("--real", type=int, default=10)
    args = ap.parse_args()
    setup_threads()
    import numpy as np
    from dataclasses import replace

    from atlas.methods.base import Visualization

    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-metrics-"))
    demo = PRESETS.get("demo")()
    cfg = replace(demo, classes=DEMO_CLASSES[: args.classes], methods=("maco", "fourier")[: args.methods],
                  store=str(tmp / "store"), metrics=replace(demo.metrics, real_images=args.real))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    rng = np.random.default_rng(0)
    for job in plan.jobs:
        store.put(job, Visualization(job.target, rng.random((224, 224, 3), dtype=np.float32),
                                     np.ones((224, 224), np.float32), [0.0], 0.0))
    zoo = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    for name in zoo:
        layer_depths(name)  # memoised: measured here, not inside the timed step
    before = raw_rates(zoo)
    images, charged, seconds, calls = Counter(), Counter(), Counter(), Counter()
    original = counted_backbones(images, charged, seconds, calls)
    original_sweep = counted_sweeps(images, charged, seconds, calls)
    passes = []
    orig_put = FeatureCache.put
    FeatureCache.put = lambda self, b, o, i, v: (passes.append((b, i)), orig_put(self, b, o, i, v))[1]
    try:
        start, cpu = time.perf_counter(), time.process_time()
        cold = MetricsRunner(cfg, store, progress=False).run(plan)
        cold_s, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        warm = MetricsRunner(cfg, store, progress=False).run(plan)
        warm_s = time.perf_counter() - start
    finally:
        FeatureCache.put = orig_put
        backbone_module.model_backbone = original
        patches_module.top_images_of_layers = original_sweep
    after = raw_rates(zoo)
    raw = raw_throughput(load_model("efficientnet_lite0"), 16, 224, seconds=4.0)
    n = len(set(passes))  # distinct (backbone, image) pairs cached (the old count)
    per = {}
    for name in sorted(images):
        model = name.split(" ")[0]  # "<model> control sweep" runs at that model's raw rate
        rate = (before[model][0] + after[model][0]) / 2 if model in before else None
        per[name] = {"images": images[name], "charged_passes": round(charged[name], 1), "calls": calls[name],
                     "forward_seconds": round(seconds[name], 2),
                     "raw_fwd_img_per_s": {"before": round(before[model][0], 1), "after": round(after[model][0], 1)}
                     if rate else None,
                     "raw_seconds": round(charged[name] / rate, 2) if rate else None,
                     "forward_ratio": round(charged[name] / seconds[name] / rate, 3) if rate and seconds[name] else None}
    raw_s = sum(v["raw_seconds"] or 0.0 for v in per.values())
    emit({
        "benchmark": "metrics", "fvs": len(plan.jobs), "real_images": args.real * args.classes,
        "cold_seconds": round(cold_s, 2), "cold_cpu_seconds": round(cold_cpu, 2), "warm_seconds": round(warm_s, 2),
        "results_computed": len(cold.computed), "results_fresh_on_rerun": warm.fresh,
        "per_backbone": per, "forward_seconds": round(sum(seconds.values()), 2),
        "raw_forward_seconds": round(raw_s, 2), "ratio_to_raw_forward": round(raw_s / cold_s, 3),
        "image_passes": n, "passes_per_s": round(n / cold_s, 2), "raw_lite0_fwd_bwd_img_per_s": round(raw, 2),
        "ratio": round(n / cold_s / raw, 3), "machine": machine(),
    })


if __name__ == "__main__":
    main()
