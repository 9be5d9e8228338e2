"""Memory estimates before any work: a plan whose batches cannot fit the machine is refused.

One batch of a (model, method) holds, per target: the activations autograd keeps for every image it sends
through the model at once (its crops or views, :meth:`Method.images_per_pass`; measured per architecture
on the meta device, :mod:`atlas.models.footprint`) times :data:`BACKWARD_FACTOR`, and
:data:`IMAGE_COPIES` copies of its optimised image (3 x S x S floats at ``image_size`` S); the model's
parameters once. The largest batch of a plan is compared with the memory of the device it runs on: the
GPU's memory, or on the CPU the machine's memory bounded by the container's limit (cgroup) and the
process's limits (``ulimit -v`` / ``-d``). ``atlas run`` and ``build`` refuse a plan that needs more with
one line naming the estimate, the limit and what to lower, before anything loads; ``atlas plan`` shows the
estimate and the verdict (a plan made on a login node for a GPU run is not refused there).

How close the estimate comes: ``bench/memory.py`` measures the peak of real MACO batches (Lite0, demo
settings: 1261 / 1622 / 2409 MiB at batch 1 / 2 / 4; this estimate: see bench/README.md).
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ..errors import AtlasError
from ..methods import METHODS
from ..models.cards import known_card
from ..models.footprint import footprint
from .jobs import Job
from .sharding import plan_batches

#: Copies of the optimised image (3 x S x S float32) one target keeps: parameters, gradients, optimiser
#: moments, the rendered image, its transforms and accumulators. Measured as the growth of peak memory from
#: 1024 to 2048 px per target (bench/README.md, "Memory"): MACO 10, Plug-In Inversion 8, DeepInversion and
#: feature accentuation 16, attribution visualization 32 (its noise pyramid).
IMAGE_COPIES = 16
#: The backward pass's transient tensors on top of the kept activations (Lite0: ~90 MiB per image measured
#: in a MACO run against 76 MiB kept).
BACKWARD_FACTOR = 1.25
#: What the process holds before any batch, beyond the model's parameters: on the CPU torch and the
#: libraries (bench/memory.py: 765 MiB after loading Lite0, 18 MiB of it parameters), on a GPU the CUDA
#: context's share of the device memory.
RUNTIME_BYTES = {"cpu": 750 * 2**20, "cuda": 500 * 2**20}

GiB = float(2**30)


@dataclass(frozen=True)
class MemoryNeed:
    """The estimate for one batch: ``bytes`` for ``targets`` targets of ``method`` on ``model``."""

    bytes: int
    model: str
    method: str
    targets: int
    image_size: int
    images: float  # model-input images per target per step
    partial: bool  # the model's activations could not be measured: the image part only (a lower bound)

    def describe(self) -> str:
        return (f"{self.method} on {self.model}: {self.targets} target(s) x {self.images:g} image(s) per step at "
                f"image_size {self.image_size}")


def batch_need(jobs: Sequence[Job], activation_scale: float = 1.0, base: int = 0) -> MemoryNeed:
    """The estimated peak memory of optimising ``jobs`` (one batch) together (``activation_scale``: 0.5
    under bf16 autocast; ``base``: what the process holds besides, :data:`RUNTIME_BYTES`)."""
    job = jobs[0]
    method, card, fp = METHODS.get(job.method), known_card(job.model), footprint(job.model)
    cfg = job.config
    input_size = card.input_size if card is not None else 224
    size = int(getattr(cfg, "image_size", None) or input_size)
    images = method.images_per_pass(cfg, card) if card is not None else 1.0
    per_target = IMAGE_COPIES * 3 * size * size * 4
    total = base
    if fp is not None:
        per_target += images * fp.per_image * BACKWARD_FACTOR * activation_scale
        total += fp.parameters
    total += len(jobs) * per_target
    return MemoryNeed(int(total), job.model, job.method, len(jobs), size, images, partial=fp is None)


def largest_need(jobs: Sequence[Job], batch_size: int, activation_scale: float = 1.0,
                 base: int = 0) -> Optional[MemoryNeed]:
    """The :func:`batch_need` of the plan's most demanding batch (None for an empty plan)."""
    seen, best = set(), None
    for b in plan_batches(jobs, batch_size):
        sig = (b.model, b.method, b.jobs[0].config_hash, len(b.jobs))
        if sig in seen:
            continue
        seen.add(sig)
        need = batch_need(b.jobs, activation_scale, base)
        if best is None or need.bytes > best.bytes:
            best = need
    return best


def _proc_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> Optional[int]:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path, encoding="ascii").read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def host_memory() -> Tuple[int, str]:
    """(bytes, what bounds them) this process may use on the CPU: the machine's memory, the container's
    limit, or what ``ulimit -v`` / ``-d`` leaves beyond what the process already maps."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 2**62
    limits = [(total, "the machine's memory")]
    cg = _cgroup_limit()
    if cg is not None:
        limits.append((cg, "the container's memory limit"))
    mapped = (_proc_kib("VmSize") or 0) * 1024
    for which, label in ((resource.RLIMIT_AS, "ulimit -v"), (resource.RLIMIT_DATA, "ulimit -d")):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY:
            limits.append((max(soft - mapped, 0), f"what {label} leaves this process"))
    return min(limits)


def device_memory(device: torch.device) -> Tuple[int, str]:
    """(bytes, label) of the memory a batch on ``device`` can use."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return int(props.total_memory), f"the memory of cuda:{index} ({props.name})"
    return host_memory()


@dataclass(frozen=True)
class MemoryCheck:
    """The plan's largest batch (``need``) against the ``limit`` bytes of ``label`` on the device."""

    need: MemoryNeed
    limit: int
    label: str

    @property
    def fits(self) -> bool:
        return self.need.bytes <= self.limit

    def line(self) -> str:
        """``atlas plan``'s memory line."""
        est = f"{'at least ' if self.need.partial else '~'}{self.need.bytes / GiB:.3g} GiB"
        if self.fits:
            return f"memory: {est} for the largest batch ({self.need.describe()}) of {self.limit / GiB:.3g} GiB " \
                   f"({self.label})"
        return f"memory: does not fit: {self.problem()} (atlas run refuses it here)"

    def problem(self) -> str:
        est = f"{'at least ' if self.need.partial else '~'}{self.need.bytes / GiB:.3g} GiB"
        return (f"{self.need.describe()} needs {est}, more than the {self.limit / GiB:.3g} GiB of {self.label}; "
                f"lower image_size, crops/views or batch_size")


def check_memory(jobs: Sequence[Job], batch_size: int, device: torch.device, precision: str = "fp32",
                 refuse: bool = True) -> Optional[MemoryCheck]:
    """The plan's largest batch against ``device``'s memory (None for an empty plan). ``refuse``: a batch
    that cannot fit is an :class:`AtlasError` (``maco on efficientnet_lite0: 1 target(s) x 4 image(s) per
    step at image_size 100000 needs ~1.79e+03 GiB, more than the 23 GiB of the machine's memory; lower
    image_size, crops/views or batch_size``). ``precision``: the run's (bf16 autocast on a GPU keeps
    activations at half the bytes)."""
    half = device.type == "cuda" and precision != "fp32"
    return _against(jobs, batch_size, half, device.type, lambda: device_memory(device), refuse)


def _against(jobs: Sequence[Job], batch_size: int, half: bool, device_type: str, memory, refuse: bool) -> Optional[MemoryCheck]:
    """The plan's largest batch on a ``device_type`` device against ``memory() -> (bytes, label)``."""
    need = largest_need(jobs, batch_size, activation_scale=0.5 if half else 1.0,
                        base=RUNTIME_BYTES.get(device_type, RUNTIME_BYTES["cpu"]))
    if need is None:
        return None
    check = MemoryCheck(need, *memory())
    if refuse and not check.fits:
        raise AtlasError(check.problem())
    return check


def check_cluster_memory(jobs: Sequence[Job], batch_size: int, gpu_memory_gb: Optional[float],
                         precision: str) -> Optional[MemoryCheck]:
    """``atlas submit``'s check, made on the login node before any shard starts: the plan's largest batch
    against ``[cluster] gpu_memory_gb``, the memory of one GPU of the nodes the shards will run on (a
    shard computes on one GPU; ``precision``: the plan's, bf16 keeps activations at half the bytes). A
    batch that cannot fit is an :class:`AtlasError` naming it and what to lower; None when the memory is
    not configured or the plan is empty."""
    if gpu_memory_gb is None:
        return None
    label = f"a cluster GPU ([cluster] gpu_memory_gb = {gpu_memory_gb:g})"
    return _against(jobs, batch_size, precision != "fp32", "cuda", lambda: (int(gpu_memory_gb * GiB), label), True)
