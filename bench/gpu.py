"""Optimisation vs raw throughput on a GPU, per model, method, K (targets per batch) and precision.

    python bench/gpu.py --models efficientnet_lite0,efficientnet_lite2 --methods maco,vital,deepinversion \
        --ks 1,8,16,32 --precisions fp32,bf16 --steps 20 [--compile] [--out gpu.json]
    python bench/gpu.py --dry            # the same on the CPU, tiny (checks the script itself)

For each model, precision, method and K: K targets are optimised together for ``steps`` steps (after a
2-step warm-up at the same shapes, so cuDNN has picked its algorithms), with the run's settings
(channels-last for convnets, cuDNN autotuning, TF32, bf16 autocast); then the raw model's forward +
input-gradient backward is timed at the same model batch (K x views), same settings, the device
synchronised around both. One JSON row per (model, precision, method, K):

* ``loop_img_passes_per_s``, ``raw_fwd_bwd_img_per_s`` and ``ratio`` (goal >= 0.85 at K >= 8);
* ``target_steps_per_s`` and ``speedup_vs_k1`` (goal: K = 16 at least 5x K = 1);
* ``raw_mfu`` - the raw passes' FLOP/s over the device's peak for that precision (``--peak-tflops``,
  default the H100/H200 dense figures: bf16 989, TF32 495) - and ``peak_mem_gb``;
* with ``--compile``: ``raw_compiled_img_per_s``, the raw passes of ``torch.compile(module)`` (how much
  compilation would give; the loop itself runs eagerly, its hooks change per method).

The targets cycle through the bundled pool's six classes (VITAL's references need the class's photos),
each with its own seed. VITAL's class targets run at batch 1 per target (one image each), MACO at its 6
crops per target (paper setting), DeepInversion with batch_size = K. ``--out`` also writes the JSON to a
file; ``--dry`` sets the CPU, EfficientNet-Lite0, K = 1, 2, 2 steps, fp32 and a 1-second raw timing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from common import machine, setup_threads  # noqa: E402

from atlas.config import ComputeConfig, DataConfig, DEMO_CLASSES  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.pipeline.compute import compute_settings, prepare_model  # noqa: E402
from atlas.pipeline.estimate import FLOPS_PER_MAC, FWD_BWD_FACTOR, model_gflops  # noqa: E402
from atlas.targets import Target  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_rate(call, batch: int, size: int, device: torch.device, seconds: float, channels_last: bool) -> float:
    """Images per second of forward + input-gradient backward through ``call`` at ``batch``."""
    x = torch.rand(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    for _ in range(3):
        call(x)[:, 0].sum().backward()
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        call(x)[:, 0].sum().backward()
        n += 1
        if n % 4 == 0:
            sync(device)
    sync(device)
    return n * batch / (time.perf_counter() - start)


def method_config(method, name: str, k: int, steps: int):
    cfg = method.config({})
    over = {"steps": steps}
    if name == "deepinversion":
        over.update(batch_size=k, warmup=min(2, steps - 1))
    if name == "vital":
        over.update(warmup=min(2, steps - 1))
    fields = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k_: v for k_, v in over.items() if k_ in fields})


def views_of(cfg) -> int:
    return getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="efficientnet_lite0,efficientnet_lite2")
    ap.add_argument("--methods", default="maco,vital,deepinversion")
    ap.add_argument("--ks", default="1,8,16,32", help="targets per batch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", default="bundled", help="image pool for spectra and references")
    ap.add_argument("--raw-seconds", type=float, default=4.0)
    ap.add_argument("--compile", action="store_true", help="also time the raw passes of torch.compile(module)")
    ap.add_argument("--peak-tflops", default="bf16=989,tf32=494.7,fp32=66.9")
    ap.add_argument("--download", action="store_true")
    ap.add_argument("--dry", action="store_true", help="CPU, Lite0, K = 1, 2, 2 steps: checks the script")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.dry:
        args.device, args.models, args.ks, args.steps = "cpu", "efficientnet_lite0", "1,2", 2
        args.precisions, args.raw_seconds = "fp32", 1.0
    setup_threads()
    device = torch.device(args.device)
    peak = {k: float(v) * 1e12 for k, v in (p.split("=") for p in args.peak_tflops.split(","))}
    pool = open_pool(args.data)
    ks = [int(k) for k in args.ks.split(",")]
    rows, errors = [], []
    for name in args.models.split(","):
        model = load_model(name, device=device, download=args.download)
        ctx = RunContext(model=model, data=DataConfig(spectrum_images=64 if not args.dry else 8, references=8),
                         cache_dir=None, pool_factory=lambda: pool)
        flops_per_img = FWD_BWD_FACTOR * FLOPS_PER_MAC * model_gflops(name) * 1e9
        compiled = torch.compile(model.module) if args.compile else None
        for precision in args.precisions.split(","):
            compute = ComputeConfig(precision=precision)
            used = prepare_model(model, compute, device)
            with compute_settings(compute, device):
                raw_compiled = {}
                for mname in args.methods.split(","):
                    method = METHODS.get(mname)
                    base = None
                    for k in ks:
                        cfg = method_config(method, mname, k, args.steps)
                        k_run = k if method.batchable else 1
                        targets = [Target.of_class(DEMO_CLASSES[i % len(DEMO_CLASSES)]) for i in range(k_run)]
                        seeds = list(range(k_run))
                        try:
                            method.run(ctx, dataclasses.replace(cfg, steps=2), targets, seeds)  # warm-up, same shapes
                            if device.type == "cuda":
                                torch.cuda.reset_peak_memory_stats(device)
                            sync(device)
                            start = time.perf_counter()
                            method.run(ctx, cfg, targets, seeds)
                            sync(device)
                            seconds = time.perf_counter() - start
                        except Exception as exc:  # e.g. out of memory at K = 32 on Lite2: recorded, go on
                            errors.append({"model": name, "method": mname, "precision": precision, "k": k_run,
                                           "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                            if device.type == "cuda":
                                torch.cuda.empty_cache()
                            continue
                        batch = k_run * views_of(cfg)
                        passes = cfg.steps * batch + getattr(cfg, "low_res_steps", 0) * batch
                        loop = passes / seconds
                        raw = raw_rate(model, batch, model.input_size, device, args.raw_seconds, model.channels_last)
                        row = {
                            "model": name, "method": mname, "precision": used, "k": k_run, "model_batch": batch,
                            "steps": cfg.steps, "seconds": round(seconds, 3),
                            "target_steps_per_s": round(k_run * cfg.steps / seconds, 2),
                            "loop_img_passes_per_s": round(loop, 1), "raw_fwd_bwd_img_per_s": round(raw, 1),
                            "ratio": round(loop / raw, 3),
                            "raw_mfu": round(raw * flops_per_img / peak["bf16" if used == "bf16" else "tf32"], 4),
                            "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None,
                        }
                        if compiled is not None:
                            if batch not in raw_compiled:
                                try:
                                    call = lambda x: compiled(model.normalize(x))  # noqa: E731
                                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=used == "bf16"):
                                        raw_compiled[batch] = round(raw_rate(call, batch, model.input_size, device,
                                                                             args.raw_seconds, model.channels_last), 1)
                                except Exception as exc:
                                    raw_compiled[batch] = f"{type(exc).__name__}: {str(exc)[:200]}"
                            row["raw_compiled_img_per_s"] = raw_compiled[batch]
                        base = base or row["target_steps_per_s"]
                        row["speedup_vs_k1"] = round(row["target_steps_per_s"] / base, 2)
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
        del model, ctx, compiled
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result = {"benchmark": "gpu", "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "steps": args.steps, "peak_flops": peak, "dry": args.dry, "rows": rows, "errors": errors,
              "machine": machine()}
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
