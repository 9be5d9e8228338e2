"""Choosing lambda inside the model's "sensitive region" (feature-accentuation paper, Appendix E).

The regularisation-layer distance d(lambda) between an accentuation and its seed saturates at both ends:
at a tiny lambda it is the unregularised accentuation's distance d_max, at a huge one the seed's d_min.
Between them the image interpolates perceptually. Appendix E bounds the search by the distances at
lambda = 1e-6 and 1e6, accentuates calibration images toward their second-highest logit, and finds that
the region depends on the model and layer, not on the image - so it is searched once per (model, layer,
settings) and cached as a stage in the store. We bisect log10(lambda) for the lambda whose min-max
normalised distance (d - d_min) / (d_max - d_min) equals ``fraction``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Tuple

LOG_BOUNDS = (-6.0, 6.0)


@dataclass(frozen=True)
class LambdaChoice:
    """The chosen lambda, the bounding distances and every (log10 lambda, distance) evaluated."""

    lam: float
    d_min: float
    d_max: float
    d_chosen: float
    fraction: float
    evaluations: Tuple[Tuple[float, float], ...] = field(default=())

    @property
    def normalized(self) -> float:
        """Where the chosen lambda's distance lies between the bounds (0: seed, 1: unregularised)."""
        span = self.d_max - self.d_min
        return (self.d_chosen - self.d_min) / span if span > 0 else 0.0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "LambdaChoice":
        raw = json.loads(data)
        raw["evaluations"] = tuple(tuple(e) for e in raw.get("evaluations", ()))
        return cls(**raw)


def bisect_lambda(distance: Callable[[float], float], fraction: float = 0.5, iters: int = 5,
                  bounds: Tuple[float, float] = LOG_BOUNDS) -> LambdaChoice:
    """Bisect log10(lambda) in ``bounds`` for the normalised distance ``fraction``.

    ``distance(lam)`` runs an accentuation and returns its regularisation-layer distance; it is called
    ``iters + 2`` times. d is expected to fall as lambda grows; noise in d only costs precision.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"lambda fraction must lie in (0, 1), got {fraction}")
    lo, hi = bounds
    evals: List[Tuple[float, float]] = []

    def d_at(log_lam: float) -> float:
        d = float(distance(10.0 ** log_lam))
        evals.append((log_lam, d))
        return d

    d_max, d_min = d_at(lo), d_at(hi)
    if d_max < d_min:  # noise or an insensitive layer: keep the bounds ordered
        d_max, d_min = d_min, d_max
    goal = d_min + fraction * (d_max - d_min)
    best = (math.inf, 0.5 * (lo + hi), goal)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        d = d_at(mid)
        if abs(d - goal) < best[0]:
            best = (abs(d - goal), mid, d)
        if d > goal:  # too little regularisation
            lo = mid
        else:
            hi = mid
    _, log_lam, d = best
    return LambdaChoice(lam=10.0 ** log_lam, d_min=d_min, d_max=d_max, d_chosen=d, fraction=fraction,
                        evaluations=tuple(evals))
