"""GPU throughput settings, applied per run and undone afterwards (no global state survives a run).

* **bf16 autocast** (``precision = "bf16"``, or ``"auto"`` on a GPU with bf16 support): the model's
  forward runs in bfloat16; the parameterisation, the transforms, the objective, the optimiser and the
  transparency map stay in float32 (logits and captured activations are cast back). Stated tolerance,
  checked in ``tests/test_compute.py`` on EfficientNet-Lite0 and real photos: the same top-1 class; the
  mean |logit difference| at most 0.1 of the logits' spread (standard deviation across classes;
  measured 0.02-0.04) and at most a fifth of what one draw of MACO's own pixel noise U(-0.1, 0.1)
  changes (measured 0.4); the input gradient's cosine similarity to fp32's at least 0.7 (measured
  0.77-0.86, where one noise draw gives 0.05). Whole optimisations are chaotic (NAdam at lr 1.0), so
  bf16 images are not the fp32 images pixel for pixel - as for two batch sizes - but they reach their
  target as the fp32 ones do (the test checks the target logit rises under bf16).
* **channels-last** memory format for convolutional models: the same arithmetic in another order; logits
  within 1e-3 of contiguous.
* **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) and **TF32** for the fp32 parts: process
  flags, set for the duration of :func:`compute_settings` and restored on exit.

The precision is part of every job's identity (:func:`plan_precision`, ``Job.precision``): a bf16 image and
an fp32 image of one target are two jobs with two keys, and each job is computed in its own precision
wherever it runs. ``"auto"`` resolves where the plan is made (bf16 if the configuration's device, on this
machine, is a GPU with bf16 support); a store shared between machines of different kinds (a GPU node that
computes, a login node that renders) wants an explicit ``"fp32"`` or ``"bf16"``, as the cluster presets set.
The other settings here do not change a job's key; the device is recorded in its metadata.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch

from ..config import ComputeConfig
from ..models.handle import ModelHandle


def bf16_supported(device: torch.device) -> bool:
    """True if autocast to bfloat16 is worthwhile on ``device`` (a CUDA GPU with native bf16)."""
    if device.type != "cuda":
        return False
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):  # no driver
        return False


def resolve_precision(compute: ComputeConfig, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"`` for ``compute.precision`` on ``device`` (``auto``: bf16 on capable GPUs).

    An explicit ``"bf16"`` is honoured on any device (CPU autocast supports bfloat16 too, but is usually
    slower than fp32 there).
    """
    device = torch.device(device)
    if compute.precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return compute.precision


def plan_precision(cfg) -> str:
    """``"fp32"`` or ``"bf16"``: the precision the jobs of configuration ``cfg`` are computed in (part of
    their keys). An explicit setting is used as is; ``"auto"`` is resolved for ``cfg.device`` on this
    machine (bf16 on a GPU with bf16 support)."""
    if cfg.compute.precision != "auto":
        return cfg.compute.precision
    from .runner import pick_device

    return resolve_precision(cfg.compute, pick_device(str(cfg.device)))


def autocast_dtype(precision: str) -> Optional[torch.dtype]:
    return torch.bfloat16 if precision == "bf16" else None


def prepare_model(handle: ModelHandle, compute: ComputeConfig, device: torch.device | str) -> str:
    """Apply ``compute`` to a loaded model (autocast dtype, memory format); returns the precision used."""
    precision = resolve_precision(compute, device)
    handle.autocast = autocast_dtype(precision)
    handle.fold_batchnorm = compute.fold_batchnorm
    if not compute.channels_last and handle.channels_last:
        handle.module.to(memory_format=torch.contiguous_format)
        handle.channels_last = False
    return precision


@contextmanager
def compute_settings(compute: ComputeConfig, device: torch.device | str) -> Iterator[None]:
    """Set cuDNN autotuning and TF32 on a CUDA ``device`` for the duration of the block, then restore."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = compute.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = compute.tf32
    torch.backends.cudnn.allow_tf32 = compute.tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved
