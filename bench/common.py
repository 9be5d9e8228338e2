"""Shared helpers for the benchmarks: raw forward+backward throughput and JSON output."""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from atlas.allocator import keep_freed_memory
from atlas.app import install

keep_freed_memory()  # glibc's thresholds, as the command line and its workers set them
install()  # the composition root, as the command line does


def setup_threads() -> int:
    n = int(os.environ.get("ATLAS_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def raw_throughput(model, batch: int, size: int, seconds: float = 6.0, warmup: int = 2) -> float:
    """Images per second of the raw model's forward + backward (gradient w.r.t. the input), at ``batch``.

    Runs through the handle exactly as the methods do (same memory format, same normalisation, the same
    BatchNorm-folded copy: ``atlas.models.fold``), so that the ratio measures only the overhead of the
    optimisation loop.
    """
    x = torch.rand(batch, 3, size, size, device=model.device, requires_grad=True)
    for _ in range(warmup):
        model(x)[:, 0].sum().backward()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model(x)[:, 0].sum().backward()
        n += 1
    return n * batch / (time.perf_counter() - start)


def raw_forward(model, batch: int, size: int, seconds: float = 4.0) -> float:
    """Images per second of the raw model's forward pass alone (no gradient), at ``batch``: the floor of
    forward-only work (CRAFT, dataset examples, metrics). Through the handle's forward-only path, as that
    work runs - on a CPU in chunks of ``CPU_FORWARD_CHUNK`` images, its best rate - so that a ratio does not
    credit the work with the chunking (one pass of 16-128 images ran at half the rate)."""
    x = torch.rand(batch, 3, size, size, device=model.device)
    with torch.no_grad():
        model.features(x, [])
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.features(x, [])
            n += 1
    return n * batch / (time.perf_counter() - start)


def machine() -> dict:
    return {
        "python": sys.version.split()[0], "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def emit(result: dict) -> None:
    print(json.dumps(result, indent=2, sort_keys=True))
