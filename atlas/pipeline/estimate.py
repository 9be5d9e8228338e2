"""Time estimates and FLOP counts.

A job's cost is its number of model passes (steps x views) times the model's relative cost, divided by a
throughput that is, in order of preference: *calibrated* on this device by timing a few steps of each
(model, method) (``atlas plan --estimate``, :mod:`atlas.pipeline.calibrate`); *measured* from finished
jobs of the same (model, method) in the store; or *nominal* (published FLOPs and a nominal Lite0 rate).

FLOPs: the published per-model figures on the model cards (``ModelCard.gflops``: torchvision's ``_ops``, the
ResNet/EfficientNet papers) count multiply-accumulates; a GPU's peak counts 2 FLOPs per multiply-accumulate
(torch's ``FlopCounterMode`` gives 8.18 GFLOPs for ResNet50's 4.09 G). The model's weights are frozen, so the backward pass computes
gradients for activations only - about as many FLOPs as the forward pass: one optimisation pass of one
view costs ~2 x 2 x the published figure at the model's input size (every crop is resized to it).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional, Tuple

from ..models.cards import known_card
from .jobs import Job

#: "GFLOPs" (multiply-accumulates) of one forward pass for a model whose card has no figure: ResNet50's.
NOMINAL_GFLOPS = 4.1
#: The model whose CPU rate is :data:`NOMINAL_LITE0_PER_S`.
REFERENCE_MODEL = "efficientnet_lite0"
#: Forward + input-gradient backward, relative to one forward pass (weights frozen: no weight gradients).
FWD_BWD_FACTOR = 2.0
#: FLOPs per multiply-accumulate (the unit of the published figures above).
FLOPS_PER_MAC = 2.0
#: Dense peak FLOP/s of an NVIDIA H100 SXM (datasheet): bf16 and TF32 tensor cores, plain fp32.
H100_PEAK_FLOPS = {"bf16": 989e12, "tf32": 494.7e12, "fp32": 66.9e12}
#: Assumptions for an H100 figure until ``bench/gpu.py`` has measured them: the raw model's
#: forward+backward reaches 40% of the bf16 peak for vision transformers (large matrix products) and 10%
#: for convnets (memory-bound: normalisation, activations and small channel counts at batches of ~100);
#: the optimisation loop runs at 0.85 of that raw throughput (the goal set for ``bench/loop.py``; measured
#: 0.98 on the CPU).
ASSUMED_UTILISATION = {"transformer": 0.40, "convnet": 0.10}
ASSUMED_LOOP_RATIO = 0.85
#: Lite0 forward+backward images per second on a 2-core CPU (DESIGN.md, bench/loop.py).
NOMINAL_LITE0_PER_S = {"cpu": 25.0, "cuda": 1500.0}

Pair = Tuple[str, str]


@dataclass(frozen=True)
class Rate:
    """Calibrated cost of one (model, method) on a device: a batch of ``k`` targets run for ``s`` steps
    takes ``overhead + s * k * per_target_step`` seconds (``overhead``: set-up and final scoring)."""

    overhead: float
    per_target_step: float

    def job_seconds(self, job: Job, batch: int) -> float:
        steps = getattr(job.config, "steps", None)
        if steps is None:  # a method without a step count: the calibration timed one whole run
            return self.overhead / max(batch, 1)
        return self.overhead / max(batch, 1) + steps * self.per_target_step


def passes_per_job(job: Job) -> float:
    """Forward+backward image passes of one job at the model input size."""
    cfg = job.config
    from ..methods import METHODS

    if job.method in METHODS and (own := METHODS.get(job.method).passes_per_target(cfg, job.target.kind)) is not None:
        return float(own)
    steps = getattr(cfg, "steps", 100)
    views = getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1
    size = getattr(cfg, "image_size", 224)
    extra = 1.0 if size <= 512 else 1.15  # rendering a large image costs a little more
    return float(steps * views * extra)


def model_gflops(model: str) -> float:
    """GFLOPs (multiply-accumulates) of one forward pass of ``model`` at its input size: its card's figure,
    else :data:`NOMINAL_GFLOPS`; the relative cost of a job."""
    card = known_card(model)
    return card.gflops if card is not None and card.gflops is not None else NOMINAL_GFLOPS


#: The share of an optimisation step that does not shrink with a shallower pass (the parameterisation's
#: image, crops, optimiser). With it, a MACO step that stops at Lite0's ``blocks.0`` is charged 0.27 of a
#: class step; the demo's ledger measured 0.31 (bench/README.md, "The workers' time left").
FIXED_STEP_SHARE = 0.2


def depth_factor(job: Job) -> float:
    """The part of a full pass that a neuron's or concept's job computes: its optimisation pass stops at
    the target's layer (:func:`atlas.models.footprint.layer_depths`); 1 for every other job, and for a
    model whose architecture cannot be measured."""
    layer = getattr(job.target, "layer", None)
    if job.target.kind not in ("neuron", "concept") or not layer:
        return 1.0
    from ..models.footprint import layer_depths

    depth = (layer_depths(job.model) or {}).get(layer.removesuffix(":in"))
    return 1.0 if depth is None else FIXED_STEP_SHARE + (1.0 - FIXED_STEP_SHARE) * depth


def nominal_seconds(job: Job, device: str = "cpu") -> float:
    g = model_gflops(job.model) / model_gflops(REFERENCE_MODEL)
    return passes_per_job(job) * depth_factor(job) * g / NOMINAL_LITE0_PER_S.get(device, 25.0)


def relative_cost(jobs: Iterable[Job]) -> float:
    """Device-independent cost of ``jobs`` (nominal CPU seconds): a function of the configuration alone,
    so that every shard of a run computes the same balance."""
    return sum(nominal_seconds(j, "cpu") for j in jobs)


def job_flops(job: Job) -> float:
    """FLOPs of one job: passes x (forward + input-gradient backward) at the model's input size."""
    return passes_per_job(job) * FWD_BWD_FACTOR * FLOPS_PER_MAC * model_gflops(job.model) * 1e9


def peak_hours(jobs: Iterable[Job], precision: str = "bf16",
               peak: Mapping[str, float] = H100_PEAK_FLOPS) -> float:
    """GPU-hours of ``jobs`` on one GPU computing at its peak rate for ``precision`` (a lower bound)."""
    return sum(job_flops(j) for j in jobs) / peak[precision] / 3600.0


def assumed_utilisation(model: str) -> float:
    """The assumed fraction of the bf16 peak the raw model reaches (:data:`ASSUMED_UTILISATION`), by its
    card's ``transformer`` (a model without a card: a convnet)."""
    card = known_card(model)
    return ASSUMED_UTILISATION["transformer" if card is not None and card.transformer else "convnet"]


def gpu_hours(jobs: Iterable[Job], utilisation: Optional[float] = None, loop_ratio: float = ASSUMED_LOOP_RATIO,
              precision: str = "bf16", peak: Mapping[str, float] = H100_PEAK_FLOPS) -> float:
    """GPU-hours on one GPU (default: an H100) when the raw model's forward+backward reaches
    ``utilisation`` of the peak (model FLOPs utilisation; default: :func:`assumed_utilisation` per model)
    and the optimisation loop runs at ``loop_ratio`` of that raw throughput (``bench/gpu.py`` measures
    both): FLOPs / (peak x utilisation x loop_ratio)."""
    total = 0.0
    for j in jobs:
        u = utilisation if utilisation is not None else assumed_utilisation(j.model)
        total += job_flops(j) / (peak[precision] * u * loop_ratio)
    return total / 3600.0


def measured_rates(metas: Iterable[dict]) -> Dict[Pair, float]:
    """Seconds per pass by (model, method) from finished jobs' metadata."""
    acc: Dict[Pair, list] = defaultdict(lambda: [0.0, 0.0])
    for m in metas:
        steps = m.get("steps_run") or m.get("config", {}).get("steps") or 1
        views = m.get("config", {}).get("crops") or m.get("config", {}).get("views") or 1
        acc[(m["model"], m["method"])][0] += float(m.get("seconds", 0.0))
        acc[(m["model"], m["method"])][1] += steps * views
    return {k: s / p for k, (s, p) in acc.items() if p > 0 and s > 0}


def estimate_seconds(jobs: Iterable[Job], rates: Optional[Dict[Pair, float]] = None, device: str = "cpu",
                     calibrated: Optional[Mapping[Pair, Rate]] = None, batch: int = 1) -> float:
    """Seconds for ``jobs`` on one device: calibrated rates first, then store-measured, then nominal.

    ``batch``: targets per batch (shares a calibrated batch's fixed overhead among its targets).
    """
    rates = rates or {}
    calibrated = calibrated or {}
    total = 0.0
    for j in jobs:
        pair = (j.model, j.method)
        if pair in calibrated:
            total += calibrated[pair].job_seconds(j, batch)
        elif pair in rates:
            total += passes_per_job(j) * rates[pair]
        else:
            total += nominal_seconds(j, device)
    return total


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
