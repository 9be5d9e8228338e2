"""The one optimisation loop every method uses (lucid's ``render``, without I/O).

``optimize`` renders the parameterised images, applies the random transforms, runs the model with hooks
on the layers the objective reads, maximises the per-target scores, and accumulates the transparency map
(|dL/dx| of the rendered image, averaged over steps - MACO §3.2, "transparency for free").
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch

from ..models.handle import ModelHandle, StopForward
from .objectives import Evaluation, Objective
from .param import Parameterization
from .rng import TargetRNG
from .transforms import Transform, identity

OPTIMIZERS = {"adam": torch.optim.Adam, "nadam": torch.optim.NAdam, "sgd": torch.optim.SGD}


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; ``step`` says when."""

    def __init__(self, step: int):
        super().__init__(f"loss became NaN or infinite at step {step}")
        self.step = step


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimiser and learning-rate schedule.

    schedule: ``"constant"``, ``"cosine"`` (to 0 over the run) or ``"exponential"`` (x ``gamma`` every
    ``decay_every`` steps). ``warmup``: linear warm-up steps (VITAL / DeepInversion: 100 at 2000 steps).
    """

    name: str = "adam"
    lr: float = 0.05
    betas: Optional[tuple] = None
    schedule: str = "constant"
    warmup: int = 0
    gamma: float = 1.0
    decay_every: int = 0

    def build(self, params, steps: int):
        kw = {"lr": self.lr}
        if self.betas is not None and self.name in ("adam", "nadam"):
            kw["betas"] = tuple(self.betas)
        opt = OPTIMIZERS[self.name](params, **kw)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.factor(s, steps))

    def factor(self, step: int, steps: int) -> float:
        """Learning-rate multiplier at ``step`` (0-based)."""
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.schedule == "cosine":
            span = max(1, steps - self.warmup)
            return 0.5 * (1 + math.cos(math.pi * (step - self.warmup) / span))
        if self.schedule == "exponential" and self.decay_every:
            return self.gamma ** (step / self.decay_every)
        return 1.0


@dataclass
class OptimResult:
    """Rendered images (K, 3, H, W) in [0, 1], transparency (K, H, W) in [0, 1], per-step scores (steps, K),
    and the images at step 0 (to show that the target's score rose). ``terms``: per-step history (steps, K)
    of the named parts of the objective (:func:`~atlas.optim.objectives.logged`)."""

    images: torch.Tensor
    initial: torch.Tensor
    alpha: torch.Tensor
    history: torch.Tensor
    seconds: float
    terms: Dict[str, torch.Tensor] = field(default_factory=dict)
    best_step: Optional[int] = None  # with ``keep_best``: the step whose images ``images`` are


def alpha_map(grad_sum: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Accumulated |dL/dx| (K, 3, H, W) -> transparency (K, H, W) in [0, 1]: channel mean, clipped at the
    ``percentile``-th value of each image, divided by it."""
    a = grad_sum.mean(1)
    hi = torch.quantile(a.flatten(1).float(), percentile / 100.0, dim=1).clamp(min=1e-12)
    return (a / hi.view(-1, 1, 1)).clamp(0, 1)


class NonFiniteWatch:
    """Remembers the first step whose loss was NaN/Inf, without making the host wait for the device.

    Every ``check_every`` steps the device-side flag is copied into pinned host memory asynchronously
    (with a CUDA event); the copy is read at a later check once the event has completed, so a GPU loop
    never blocks on it. On the CPU the copy is immediate. :meth:`finish` waits, once, after the loop.
    """

    def __init__(self, steps: int, device: torch.device):
        self.steps = steps
        self.first = torch.full((), steps, dtype=torch.long, device=device)
        cuda = device.type == "cuda"
        self.host = torch.full((), steps, dtype=torch.long, pin_memory=cuda)
        self.view = self.host.numpy()  # reads the host buffer without a torch operation
        self.event = torch.cuda.Event() if cuda else None
        self.in_flight = False

    def update(self, loss: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()) & (self.first == self.steps)
        self.first = torch.where(bad, torch.full_like(self.first, step), self.first)

    def _raise_if_bad(self) -> None:
        value = int(self.view)
        if value < self.steps:
            raise NonFiniteLoss(value)

    def poll(self) -> None:
        """Raise :class:`NonFiniteLoss` if a finished copy shows a bad step; start the next copy."""
        if self.event is None:  # CPU: the copy is immediate and costs nothing
            self.host.copy_(self.first)
            self._raise_if_bad()
            return
        if self.in_flight and (self.event is None or self.event.query()):
            self.in_flight = False
            self._raise_if_bad()
        if not self.in_flight:
            self.host.copy_(self.first, non_blocking=self.event is not None)
            if self.event is not None:
                self.event.record()
            self.in_flight = True

    def finish(self) -> None:
        """Wait for the flag after the loop and raise if any step was bad."""
        if self.event is not None and self.in_flight:
            self.event.synchronize()
        self.host.copy_(self.first)
        self._raise_if_bad()


def optimize(
    model: ModelHandle,
    param: Parameterization,
    objective: Objective,
    steps: int,
    rng: TargetRNG,
    optimizer: OptimizerSpec = OptimizerSpec(),
    transforms: Transform = identity,
    on_step: Optional[Callable[[int], None]] = None,
    check_every: int = 16,
    keep_best: bool = False,
) -> OptimResult:
    """Maximise ``objective`` over ``param`` for ``steps`` steps; return images, transparency and history.

    ``keep_best``: return the images of the step with the highest total score of the batch (the lowest
    loss, DeepInversion's ``best_inputs``) instead of the images after the last step; they are tracked on
    the device, without waiting for it.

    Raises :class:`NonFiniteLoss` if the loss becomes NaN/Inf. The loop never waits for the device: the
    check runs every ``check_every`` steps on an asynchronous copy (:class:`NonFiniteWatch`), scores stay
    on the device until the end, and random geometry is drawn on the host (``TargetRNG.host``).
    """
    start = time.perf_counter()
    k = len(rng)
    opt, sched = optimizer.build(param.params(), steps)
    grad_sum = None
    history = []
    watch = NonFiniteWatch(steps, rng.device)
    terms: Dict[str, list] = {}
    initial = None
    best = None  # (images, total score, step) of the best step so far, on the device
    stop = bool(objective.layers) and not objective.needs_logits  # end each pass at the objective's layers
    with model.capture(objective.layers, stop=stop) as acts:
        for step in range(steps):
            image = param()
            image.retain_grad()
            if initial is None:
                initial = image.detach().clamp(0, 1)  # a new tensor; moved to the host after the loop
            views = transforms(image, rng)
            acts.clear()
            try:
                logits = model(views)
            except StopForward:
                logits = None
            ev = Evaluation(image, views, logits, acts, k, step, steps)
            scores = objective(ev)
            loss = -scores.sum()
            if keep_best:  # a snapshot of this step's images, before the update changes them in place
                best = _better(best, image.detach(), scores.detach().sum(), step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            param.post_step()
            g = image.grad.detach().abs()
            grad_sum = g if grad_sum is None else grad_sum + g
            history.append(scores.detach())
            watch.update(loss, step)
            if (step + 1) % check_every == 0:
                watch.poll()
            for name, value in ev.terms.items():
                terms.setdefault(name, []).append(value.expand(k))
            if on_step is not None:
                on_step(step)
    watch.finish()
    best_step = None
    with torch.no_grad():
        if best is not None:
            images, best_step = best[0].clamp(0, 1), int(best[2])
        else:
            images = param().clamp(0, 1)
    return OptimResult(
        images=images.detach().cpu(),
        initial=initial.cpu() if initial is not None else images.detach().cpu(),
        alpha=alpha_map(grad_sum).cpu() if grad_sum is not None else torch.ones(images.shape[0], *images.shape[2:]),
        history=torch.stack(history).float().cpu() if history else torch.zeros(0, k),
        seconds=time.perf_counter() - start,
        terms={name: torch.stack(v).cpu() for name, v in terms.items()},
        best_step=best_step,
    )


def _better(best, image: torch.Tensor, total: torch.Tensor, step: int):
    """The (images, total, step) of the better of ``best`` and this step (ties keep the earlier), computed
    with device-side selects so that the loop never waits for the device."""
    step_t = torch.full((), step, device=total.device)
    if best is None:
        return image.clone(), total, step_t
    keep = best[1] >= total
    return (torch.where(keep, best[0], image), torch.where(keep, best[1], total),
            torch.where(keep, best[2], step_t))
