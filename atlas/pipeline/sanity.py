"""Was every image visibly optimised? After a run, the jobs whose own target score did not rise from the
initial image to the result (DESIGN.md: "every image must be visibly optimised"), read from the scores
the methods store: a class logit, a neuron's mean activation or a concept direction's response
(``<name>_start`` / ``<name>_end``), else the method's own objective (``objective_start`` / ``_end``: for
MACO a neuron's or concept's objective is that response; for VITAL the negated matching loss). Image
targets (image-seeded methods, which report their own metrics) are not judged."""
from __future__ import annotations

from typing import List, Sequence, Tuple

from ..image_checks import degenerate_reason
from .jobs import Job
from .store import Store

#: Score pairs, per target kind, whose end should exceed their start.
RISING = {"class": "logit", "neuron": "activation", "concept": "direction"}


def not_raised(jobs: Sequence[Job], store: Store) -> Tuple[int, List[Tuple[Job, str, float, float]]]:
    """(how many stored jobs were judged, [(job, score name, start, end), ...] of those whose score did not
    rise)."""
    judged, flat = 0, []
    for job in jobs:
        name = RISING.get(job.target.kind)
        meta = store.meta(job.key) if name else None
        scores = (meta or {}).get("scores") or {}
        if f"{name}_start" not in scores:
            name = "objective"
        start, end = scores.get(f"{name}_start"), scores.get(f"{name}_end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
            continue
        judged += 1
        if not end > start:
            flat.append((job, name, float(start), float(end)))
    return judged, flat


def degenerate(jobs: Sequence[Job], store: Store) -> List[Tuple[Job, str]]:
    """[(job, reason), ...] of the stored jobs whose image is degenerate (:mod:`atlas.image_checks`: noise,
    saturated, or a class the model does not rank in its top 5); the site withholds them."""
    out = []
    for job in jobs:
        meta = store.meta(job.key)
        checks = (meta or {}).get("checks")
        if isinstance(checks, dict):
            reason = degenerate_reason(checks, meta.get("scores"), job.target.kind)
            if reason:
                out.append((job, reason))
    return out


def summary_lines(jobs: Sequence[Job], store: Store, limit: int = 5) -> List[str]:
    """Warning lines for ``atlas run`` / ``atlas build`` (none when every judged image improved and none
    is degenerate)."""
    judged, flat = not_raised(jobs, store)
    lines = []
    if flat:
        lines.append(f"warning: {len(flat)} of {judged} images did not raise their target's score (more steps "
                     f"or another lr may help; see each figure's page):")
        lines += [f"  {job.label()}: {name} {a:.3g} -> {b:.3g}" for job, name, a, b in flat[:limit]]
        if len(flat) > limit:
            lines.append(f"  ... {len(flat) - limit} more")
    bad = degenerate(jobs, store)
    if bad:
        lines.append(f"warning: {len(bad)} images are degenerate; the site withholds them and says why:")
        lines += [f"  {job.label()}: {reason}" for job, reason in bad[:limit]]
        if len(bad) > limit:
            lines.append(f"  ... {len(bad) - limit} more")
    return lines
