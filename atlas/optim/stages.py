"""Several runs of the loop as one result: multi-resolution DeepInversion, Plug-In Inversion's growing canvas.

Each stage is one call of :func:`~atlas.optim.loop.optimize` (with its own optimiser and schedule, as in the
reference code); :func:`chain` joins their results.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .augment import paste_center, resize_maps
from .loop import OptimResult


def chain(results: Sequence[OptimResult], place: str = "center") -> OptimResult:
    """One result for consecutive stages: the last stage's images, the first stage's start, histories and
    terms concatenated, seconds summed, and the transparency maps averaged with weights proportional to each
    stage's steps. Smaller maps are centred on the final image (``place="center"``, a canvas grown around
    its centre) or resized to it (``place="zoom"``, a canvas upsampled)."""
    if not results:
        raise ValueError("no stages to chain")
    last = results[-1]
    size = last.alpha.shape[-1]
    steps = [max(r.history.shape[0], 1) for r in results]
    fit = resize_maps if place == "zoom" else paste_center
    alpha = sum(fit(r.alpha, size) * n for r, n in zip(results, steps)) / sum(steps)
    alpha = alpha / alpha.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    names = dict.fromkeys(n for r in results for n in r.terms)
    terms = {n: torch.cat([r.terms[n] for r in results if n in r.terms]) for n in names}
    return OptimResult(
        images=last.images, initial=results[0].initial, alpha=alpha,
        history=torch.cat([r.history for r in results]), seconds=sum(r.seconds for r in results),
        terms=terms, best_step=last.best_step,
    )
