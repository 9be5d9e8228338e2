"""Visualising a whole layer with K-target batching (EfficientNet-Lite0, MACO).

    python bench/layer.py [--layers blocks.0,blocks.6,bn2] [--ks 1,8] [--crops 2] [--steps 4] [--device cpu]

For each layer and K, K channels of the layer are optimised together (``crops`` crops per target and step,
so the model batch is K x crops; the forward pass stops at the layer, since a channel objective reads no
logits) and timed after a warm-up; right after, the raw model's *full* forward+backward at the same batch
is timed, and the same pass stopped at the layer. Prints JSON per (layer, K): targets per second (at the
given steps, and projected to the paper's 256 steps), the ratio of the loop's crop passes per second to the
raw full forward+backward's images per second (above 1: the loop pays less than a full pass per crop),
the ratio to the raw pass stopped at the layer (the loop's own overhead), and the hours the whole layer
would take (channels x (1 + diversity + negative) targets) at 256 steps.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_throughput, setup_threads  # noqa: E402

import torch  # noqa: E402

from atlas.config import DataConfig  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.models.handle import StopForward  # noqa: E402
from atlas.targets import Target  # noqa: E402


def raw_until(model, layer: str, batch: int, size: int, seconds: float = 4.0) -> float:
    """Images per second of the raw forward stopped at ``layer`` + backward from a channel's mean."""
    x = torch.rand(batch, 3, size, size, device=model.device, requires_grad=True)

    def once():
        with model.capture([layer], stop=True) as acts:
            try:
                model(x)
            except StopForward:
                pass
            acts[layer][:, 0].mean().backward()

    once()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        n += 1
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="blocks.0,blocks.6,bn2")
    ap.add_argument("--ks", default="1,8")
    ap.add_argument("--crops", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--diversity", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--raw-seconds", type=float, default=4.0)
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0", device=args.device)
    ctx = RunContext(model=model, data=DataConfig(spectrum_images=16), cache_dir=None,
                     pool_factory=lambda: open_pool("bundled"))
    maco = METHODS.get("maco")
    cfg = maco.config({"steps": args.steps, "crops": args.crops})
    ctx.spectrum(224)
    rows = []
    for layer in args.layers.split(","):
        size = model.input_size
        with torch.no_grad():
            width = model.activations(torch.zeros(1, 3, size, size, device=model.device), [layer])[layer].shape[1]
        for k in [int(v) for v in args.ks.split(",")]:
            targets = [Target.of_neuron(layer, c % width) for c in range(0, k * 7, 7)]
            seeds = list(range(k))
            maco.run(ctx, maco.config({"steps": 1, "crops": args.crops}), targets, seeds)  # shapes warm-up
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            maco.run(ctx, cfg, targets, seeds)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            batch = k * args.crops
            raw = raw_throughput(model, batch, size, seconds=args.raw_seconds, warmup=1)
            until = raw_until(model, layer, batch, size, seconds=args.raw_seconds)
            passes = k * args.steps * args.crops / seconds
            per_target_256 = seconds / k * 256 / args.steps
            targets_per_layer = width * (2 + args.diversity)
            rows.append({
                "layer": layer, "channels": width, "k": k, "model_batch": batch, "seconds": round(seconds, 2),
                "targets_per_s": round(k / seconds, 3),
                "targets_per_s_at_256_steps": round(k / seconds * args.steps / 256, 4),
                "crop_passes_per_s": round(passes, 2),
                "raw_full_fwd_bwd_img_per_s": round(raw, 2), "raw_until_layer_img_per_s": round(until, 2),
                "ratio_vs_raw_full": round(passes / raw, 3), "ratio_vs_raw_until_layer": round(passes / until, 3),
                "whole_layer_hours_at_256_steps": round(targets_per_layer * per_target_256 / 3600, 2),
            })
    emit({"benchmark": "layer", "method": "maco", "model": "efficientnet_lite0", "crops_per_step": args.crops,
          "steps": args.steps, "diversity": args.diversity, "device": args.device, "rows": rows,
          "machine": machine()})


if __name__ == "__main__":
    main()
