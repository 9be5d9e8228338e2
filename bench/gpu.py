"""Optimisation vs raw throughput on a GPU, per model and method, in fp32 and bf16.

    python bench/gpu.py --models resnet50,densenet121,convnext_base,vit_l_16,vit_l_32 \
        --methods maco,fourier,maco_hr,fourier_hr --k 16 --steps 20 --precisions fp32,bf16 [--data DIR]

For each model, precision and method: K targets are optimised together for ``steps`` steps (after a
warm-up that lets cuDNN pick its algorithms), with the run's settings (channels-last, cuDNN autotuning,
TF32, bf16 autocast); then the raw model's forward + input-gradient backward is timed at the same batch
(K x views), with the same settings and the device synchronised around both timings. Prints JSON per row:
image passes per second of the loop, raw images per second, their ratio (the factor that scales the
FLOP-based GPU-hours in the README), the raw model FLOPs utilisation against the H100 peak, and the peak
memory. Needs the models' weights (``--download`` or ``$TORCH_HOME``); runs on the CPU too
(``--device cpu --models efficientnet_lite0``) to check the script itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from common import emit, machine, setup_threads  # noqa: E402

from atlas.config import DataConfig  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.pipeline.compute import compute_settings, prepare_model  # noqa: E402
from atlas.pipeline.estimate import FLOPS_PER_MAC, FWD_BWD_FACTOR, H100_PEAK_FLOPS, model_gflops  # noqa: E402
from atlas.config import ComputeConfig  # noqa: E402
from atlas.targets import Target  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_rate(model, batch: int, size: int, device: torch.device, seconds: float) -> float:
    """Images per second of forward + input-gradient backward at ``batch``, device synchronised."""
    x = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    for _ in range(3):
        model(x)[:, 0].sum().backward()
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model(x)[:, 0].sum().backward()
        n += 1
        if n % 4 == 0:
            sync(device)
    sync(device)
    return n * batch / (time.perf_counter() - start)


def views_of(cfg) -> int:
    return getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,densenet121,convnext_base,vit_l_16,vit_l_32")
    ap.add_argument("--methods", default=",".join(m for m in ("maco", "fourier", "maco_hr", "fourier_hr")))
    ap.add_argument("--k", type=int, default=16, help="targets per batch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", default="bundled", help="image pool for spectra and references")
    ap.add_argument("--raw-seconds", type=float, default=5.0)
    ap.add_argument("--download", action="store_true")
    args = ap.parse_args()
    setup_threads()
    device = torch.device(args.device)
    pool = open_pool(args.data)
    rows = []
    for name in args.models.split(","):
        model = load_model(name, device=device, download=args.download)
        ctx = RunContext(model=model, data=DataConfig(spectrum_images=64), cache_dir=None, pool_factory=lambda: pool)
        for precision in args.precisions.split(","):
            compute = ComputeConfig(precision=precision)
            prepare_model(model, compute, device)
            with compute_settings(compute, device):
                for mname in args.methods.split(","):
                    method = METHODS.get(mname)
                    cfg = method.config({})
                    if hasattr(cfg, "steps"):
                        cfg = dataclasses.replace(cfg, steps=args.steps)
                    k = args.k if method.batchable else 1
                    targets = [Target.of_class(c) for c in range(0, 1000, 1000 // k)][:k]
                    seeds = list(range(k))
                    warm = dataclasses.replace(cfg, steps=2) if hasattr(cfg, "steps") else cfg
                    method.run(ctx, warm, targets, seeds)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    sync(device)
                    start = time.perf_counter()
                    method.run(ctx, cfg, targets, seeds)
                    sync(device)
                    seconds = time.perf_counter() - start
                    batch = k * views_of(cfg)
                    loop = getattr(cfg, "steps", 1) * batch / seconds
                    raw = raw_rate(model, batch, model.input_size, device, args.raw_seconds)
                    peak = H100_PEAK_FLOPS["bf16" if precision == "bf16" else "tf32"]
                    flops_per_img = FWD_BWD_FACTOR * FLOPS_PER_MAC * model_gflops(name) * 1e9
                    rows.append({
                        "model": name, "method": mname, "precision": precision, "k": k, "model_batch": batch,
                        "loop_img_passes_per_s": round(loop, 1), "raw_fwd_bwd_img_per_s": round(raw, 1),
                        "ratio": round(loop / raw, 3),
                        "raw_mfu_vs_h100": round(raw * flops_per_img / peak, 3),
                        "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                        if device.type == "cuda" else None,
                        "seconds_per_target": round(seconds / k, 3),
                    })
        del model, ctx
        if device.type == "cuda":
            torch.cuda.empty_cache()
    emit({"benchmark": "gpu", "device": str(device),
          "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
          "steps": args.steps, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
