"""Was every image visibly optimised? After a run, the jobs whose own target score did not rise from the
initial image to the result (DESIGN.md: "every image must be visibly optimised"), read from the scores
the methods store: a class logit, a neuron's mean activation or a concept direction's response
(``<name>_start`` / ``<name>_end``), else the method's own objective (``objective_start`` / ``_end``: for
MACO a neuron's or concept's objective is that response; for VITAL the negated matching loss). Image
targets (image-seeded methods, which report their own metrics) are not judged."""
from __future__ import annotations

from typing import List, Sequence, Tuple

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


def summary_lines(jobs: Sequence[Job], store: Store, limit: int = 5) -> List[str]:
    """Warning lines for ``atlas run`` / ``atlas build`` (none when every judged image improved)."""
    judged, flat = not_raised(jobs, store)
    if not flat:
        return []
    lines = [f"warning: {len(flat)} of {judged} images did not raise their target's score (more steps or "
             f"another lr may help; see each figure's page):"]
    lines += [f"  {job.label()}: {name} {a:.3g} -> {b:.3g}" for job, name, a, b in flat[:limit]]
    if len(flat) > limit:
        lines.append(f"  ... {len(flat) - limit} more")
    return lines
