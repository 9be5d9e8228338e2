"""DeepInversion (single and multi-resolution) and Plug-In Inversion throughput vs the raw model's
forward+backward, on EfficientNet-Lite0 at 224 px.

    python bench/inversion.py [--targets 6] [--steps 12] [--views 4] [--repeats 2]

For each method, the loop's image passes per second (model batch x steps / seconds) and the raw
forward+backward images per second *at the same model batch and resolution*, measured in the same run;
``ratio`` = loop / raw (1.0: the method costs no more than the raw passes). DeepInversion's batch is
``targets`` images (BatchNorm-statistics hooks on all 49 BatchNorm inputs, TV and l2 priors); PII's model
batch is ``targets x views`` (ensemble). For the multi-resolution variant the raw time is the sum of the
raw times of its two stages (half resolution, then full). Measurements are interleaved and the best of
``repeats`` is kept, so background load affects both alike.
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

CLASSES = (285, 967, 665, 872, 985, 657, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def settings(args) -> dict:
    k, s = args.targets, args.steps
    return {
        "deepinversion": {"steps": s, "batch_size": k, "warmup": 1},
        "deepinversion_ms": {"low_res_steps": s, "steps": s, "batch_size": k, "warmup": 1},
        "plugin_inversion": {"steps": s, "stages": 1, "views": args.views},
    }


def raw_seconds(model, name: str, cfg, k: int, views: int, seconds: float) -> float:
    """Seconds the raw forward+backward passes of one run would take (the loop's floor)."""
    size = model.input_size
    if name == "plugin_inversion":
        return cfg.steps * k * views / raw_throughput(model, k * views, size, seconds)
    total = cfg.steps * k / raw_throughput(model, k, size, seconds)
    if getattr(cfg, "low_res_steps", 0):
        total += cfg.low_res_steps * k / raw_throughput(model, k, size // 2, seconds)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--raw-seconds", type=float, default=4.0)
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=DataConfig(spectrum_images=16), cache_dir=None,
                     pool_factory=lambda: open_pool("bundled"))
    targets = [Target.of_class(c) for c in CLASSES[: args.targets]]
    seeds = list(range(args.targets))
    out = {}
    for name, over in settings(args).items():
        method = METHODS.get(name)
        cfg = method.config(over)
        warm = {**over, "steps": 1, **({"low_res_steps": 1} if "low_res_steps" in over else {})}
        method.run(ctx, method.config(warm), targets[:1], [0])  # warm-up
        loop_s, raw_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            method.run(ctx, cfg, targets, seeds)
            loop_s.append(time.perf_counter() - start)
            raw_s.append(raw_seconds(model, name, cfg, args.targets, args.views, args.raw_seconds))
        loop, raw = min(loop_s), min(raw_s)
        batch = args.targets * (args.views if name == "plugin_inversion" else 1)
        passes = cfg.steps * batch + getattr(cfg, "low_res_steps", 0) * batch
        out[name] = {
            "model_batch": batch, "steps": cfg.steps, "low_res_steps": getattr(cfg, "low_res_steps", 0),
            "loop_seconds": round(loop, 2), "raw_seconds": round(raw, 2),
            "loop_img_per_s": round(passes / loop, 2), "raw_img_per_s": round(passes / raw, 2),
            "ratio": round(raw / loop, 3), "all_loop_s": [round(v, 2) for v in loop_s],
            "all_raw_s": [round(v, 2) for v in raw_s],
        }
    emit({"benchmark": "inversion", "model": "efficientnet_lite0", "image_size": 224, "targets": args.targets,
          "views": args.views, "methods": out, "machine": machine()})


if __name__ == "__main__":
    main()
