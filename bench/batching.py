"""Target batching on the CPU: throughput of K = 1, 2, 4, 8, 16 targets optimised together (EfficientNet-Lite0).

    python bench/batching.py [--ks 1,2,4,8,16] [--crops 2] [--steps 3] [--method maco]

For each K, one optimisation of K class targets (``crops`` crops per target per step, so the model batch
is K x crops) is timed after a warm-up, and the raw model's forward+backward throughput at the same batch
is measured right after it. Prints JSON: target-steps per second, image passes per second, the raw
images per second, their ratio, and the speed-up over K = 1. On a GPU the same script shows the main
lever (python bench/batching.py --device cuda); on 2 CPU cores the model is already compute-bound at
small batches, so K mostly removes per-step overhead.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_throughput, setup_threads  # noqa: E402

from atlas.config import DataConfig  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.targets import Target  # noqa: E402

CLASSES = list(range(0, 1000, 61))  # 17 distinct classes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--crops", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--method", default="maco")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--raw-seconds", type=float, default=4.0)
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0", device=args.device)
    ctx = RunContext(model=model, data=DataConfig(spectrum_images=16), cache_dir=None,
                     pool_factory=lambda: open_pool("bundled"))
    method = METHODS.get(args.method)
    cfg = method.config({"steps": args.steps, "crops": args.crops, "image_size": 224})
    ctx.spectrum(224)
    method.run(ctx, method.config({"steps": 1, "crops": args.crops}), [Target.of_class(1)], [0])  # warm-up
    rows = []
    for k in [int(v) for v in args.ks.split(",")]:
        targets = [Target.of_class(c) for c in CLASSES[:k]]
        seeds = list(range(k))
        method.run(ctx, method.config({"steps": 1, "crops": args.crops}), targets, seeds)  # shapes warm-up
        start = time.perf_counter()
        method.run(ctx, cfg, targets, seeds)
        seconds = time.perf_counter() - start
        raw = raw_throughput(model, k * args.crops, 224, seconds=args.raw_seconds, warmup=1)
        rows.append({
            "k": k, "model_batch": k * args.crops, "seconds": round(seconds, 2),
            "target_steps_per_s": round(k * args.steps / seconds, 3),
            "img_passes_per_s": round(k * args.steps * args.crops / seconds, 2),
            "raw_fwd_bwd_img_per_s": round(raw, 2),
            "ratio": round(k * args.steps * args.crops / seconds / raw, 3),
        })
    base = rows[0]["target_steps_per_s"]
    for r in rows:
        r["speedup_vs_k1"] = round(r["target_steps_per_s"] / base, 2)
    emit({"benchmark": "batching", "method": args.method, "model": "efficientnet_lite0", "image_size": 224,
          "crops_per_step": args.crops, "steps": args.steps, "device": args.device, "rows": rows,
          "machine": machine()})


if __name__ == "__main__":
    main()
