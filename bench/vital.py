"""VITAL optimisation speed vs the raw model's forward+backward, on EfficientNet-Lite0 at 224 px, batch 1.

    python bench/vital.py [--steps 16] [--repeats 2] [--references 8]

Prints JSON: steps per second for a class neuron (one forward+backward per step) and for an intermediate
neuron (plus one LRP pass per step, truncated at the neuron's layer ``blocks.4``), the raw forward+backward
images per second at batch 1 measured in the same run, and the ratios (steps/s divided by raw img/s: 1.0
means a step costs exactly one raw forward+backward). The one-off set-up (reference features, for neurons
also their relevance; the top-patch scan is done once before timing) is reported separately.
Measurements are interleaved and the best of ``repeats`` is kept, so background load affects both alike.
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


def timed_run(method, ctx, cfg, target, seed):
    """(seconds outside the loop: set-up and scoring, seconds of the optimisation loop) for one target."""
    t0 = time.perf_counter()
    vis = method.run(ctx, cfg, [target], [seed])[0]
    total = time.perf_counter() - t0
    return total - vis.seconds, vis.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--references", type=int, default=8)
    ap.add_argument("--neuron", default="blocks.4:96")
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=DataConfig(references=args.references), cache_dir=None,
                     pool_factory=lambda: open_pool("bundled"))
    method = METHODS.get("vital")
    cfg = method.config({"steps": args.steps, "warmup": 2})
    layer, ch = args.neuron.split(":")
    targets = {"class": Target.of_class(285), "neuron": Target.of_neuron(layer, int(ch))}
    from atlas.methods.vital import references as vital_refs
    vital_refs.neuron_references(ctx, targets["neuron"], args.references, cfg)  # top-patch scan, not timed
    method.run(ctx, method.config({"steps": 2, "warmup": 0}), [targets["class"]], [0])  # warm-up
    rates = {k: [] for k in targets}
    setups = {k: [] for k in targets}
    raw = []
    for r in range(args.repeats):
        for kind, target in targets.items():
            s, loop = timed_run(method, ctx, cfg, target, r)
            setups[kind].append(s)
            rates[kind].append(args.steps / loop)
        raw.append(raw_throughput(model, 1, 224, seconds=4.0))
    best_raw = max(raw)
    emit({
        "benchmark": "vital", "model": "efficientnet_lite0", "image_size": 224, "batch": 1, "steps": args.steps,
        "references": args.references, "neuron": args.neuron,
        "raw_fwd_bwd_img_per_s": round(best_raw, 2),
        "class_steps_per_s": round(max(rates["class"]), 2),
        "class_ratio": round(max(rates["class"]) / best_raw, 3),
        "neuron_steps_per_s": round(max(rates["neuron"]), 2),
        "neuron_ratio": round(max(rates["neuron"]) / best_raw, 3),
        "class_setup_s": round(min(setups["class"]), 2), "neuron_setup_s": round(min(setups["neuron"]), 2),
        "all_raw": [round(v, 2) for v in raw], "machine": machine(),
    })


if __name__ == "__main__":
    main()
