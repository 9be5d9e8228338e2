"""MACO loop throughput vs the raw model's forward+backward, on EfficientNet-Lite0 at 224 px.

    python bench/loop.py [--crops 4] [--steps 24] [--repeats 3]

Prints JSON: crop-passes per second of ``atlas.optim.optimize`` running MACO (one target, ``crops`` crops
per step, so the model batch is ``crops``), the raw forward+backward images per second at the same batch
measured in the same run, and their ratio (goal >= 0.85). Measurements are interleaved and the best of
``repeats`` is kept for each, so background load affects both alike.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="maco")
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=DataConfig(spectrum_images=16), cache_dir=None,
                     pool_factory=lambda: open_pool("bundled"))
    method = METHODS.get(args.method)
    cfg = method.config({"steps": args.steps, "crops": args.crops, "image_size": 224})
    ctx.spectrum(224)
    method.run(ctx, method.config({"steps": 2, "crops": args.crops}), [Target.of_class(285)], [0])  # warm-up
    loop, raw = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        method.run(ctx, cfg, [Target.of_class(285)], [r])
        loop.append(args.steps * args.crops / (time.perf_counter() - start))
        raw.append(raw_throughput(model, args.crops, 224, seconds=4.0))
    emit({
        "benchmark": "loop", "method": args.method, "model": "efficientnet_lite0", "image_size": 224,
        "crops_per_step": args.crops, "steps": args.steps,
        "loop_crop_passes_per_s": round(max(loop), 2), "raw_fwd_bwd_img_per_s": round(max(raw), 2),
        "ratio": round(max(loop) / max(raw), 3), "all_loop": [round(v, 2) for v in loop],
        "all_raw": [round(v, 2) for v in raw], "machine": machine(),
    })


if __name__ == "__main__":
    main()
