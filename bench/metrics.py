"""Metrics step throughput vs the raw model's forward+backward (demo setting: Lite0 under study, Lite1 and
Lite2 as judges, Lite2 as the FID substitute).

    python bench/metrics.py [--classes 6] [--methods 2] [--real 10]

Fills a temporary store with one random 224 px "visualization" per (class, method), runs the metrics step
cold (empty feature cache) and warm (everything fresh), and prints JSON: image-passes through backbones,
seconds, passes per second, Lite0's raw forward+backward images per second (batch 16) measured in the same
run, and the ratio. Forward-only passes of three models of different sizes are compared with Lite0's
forward+backward, so the ratio is a budget figure (how many Lite0 training-style passes the step costs),
not an efficiency ratio. ``cold_cpu_seconds`` (CPU time of all threads) bounds the wall time on an idle
machine with ``threads`` cores from below by cpu/threads and from above by cpu, whatever the load.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_throughput, setup_threads  # noqa: E402

from atlas.config import DEMO_CLASSES, PRESETS  # noqa: E402
from atlas.metrics import MetricsRunner  # noqa: E402
from atlas.metrics.cache import FeatureCache  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402


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
    passes = []
    orig = FeatureCache.put
    FeatureCache.put = lambda self, b, o, i, v: (passes.append((b, i)), orig(self, b, o, i, v))[1]
    start, cpu = time.perf_counter(), time.process_time()
    cold = MetricsRunner(cfg, store, progress=False).run(plan)
    cold_s, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    warm = MetricsRunner(cfg, store, progress=False).run(plan)
    warm_s = time.perf_counter() - start
    FeatureCache.put = orig
    n = len(set(passes))  # (backbone, image) pairs: one forward each
    raw = raw_throughput(load_model("efficientnet_lite0"), 16, 224, seconds=4.0)
    emit({
        "benchmark": "metrics", "fvs": len(plan.jobs), "real_images": args.real * args.classes,
        "image_passes": n, "cold_seconds": round(cold_s, 2), "cold_cpu_seconds": round(cold_cpu, 2), "warm_seconds": round(warm_s, 2),
        "results_computed": len(cold.computed), "results_fresh_on_rerun": warm.fresh,
        "passes_per_s": round(n / cold_s, 2), "raw_lite0_fwd_bwd_img_per_s": round(raw, 2),
        "ratio": round(n / cold_s / raw, 3), "machine": machine(),
    })


if __name__ == "__main__":
    main()
