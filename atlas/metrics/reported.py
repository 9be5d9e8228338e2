"""Metrics that methods compute themselves and store in their jobs' ``meta.json``, gathered into the tables.

A method puts per-image numbers in ``scores`` (scalars, or ``{layer: value}`` mappings / lists such as path
similarity per layer). Every numeric score that is not bookkeeping of the optimisation (logits and
probabilities before/after, objective, ranks; see :data:`BOOKKEEPING`) and not a class id (:data:`CLASS_IDS`:
an average of class ids means nothing) becomes a column averaged over the group; :data:`REPORTED` gives the
known ones a title, a direction for ranking and a scale (a fraction shown as a percentage). Known keys are
also read from ``info``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..registry import Registry
from .results import cell


@dataclass(frozen=True)
class Reported:
    title: str
    better: Optional[str] = None  # "higher", "lower" or None
    source: str = ""              # the paper section the metric comes from
    scale: float = 1.0            # the column shows scale x the mean (100: a per-image 0/1 shown in %)


#: Known method-reported metrics (a method may register more).
REPORTED: Registry[Reported] = Registry("reported metric")
REPORTED.add("path_similarity", Reported("Path similarity", "higher", "feature accentuation §3, Fig. 8"))
REPORTED.add("visualization_correlation", Reported("Visualization correlation", "higher",
                                                   "attribution visualization §4.2, Fig. 9"))
REPORTED.add("classification_consistency", Reported("Classification consistency (%)", "higher",
                                                    "attribution visualization §4.2, Fig. 10", scale=100.0))

#: Score keys that describe the optimisation itself, not the quality of the result.
BOOKKEEPING = ("logit_start", "logit_end", "prob_start", "prob_end", "rank_end", "rank_start", "top1", "top1_prob",
               "top2", "top2_prob", "objective_start", "objective_end")
#: Score keys that hold class ids (the goal of an image target, the top-1 class before and after): recorded
#: per image, never averaged into a column.
CLASS_IDS = ("goal", "top1_start", "top1_end", "seed_top1")


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def scalar_of(value: Any) -> Tuple[Optional[float], Optional[Dict[str, float]]]:
    """(mean, per-part values) of a score: a number, a ``{name: number}`` mapping (e.g. per layer) or a list."""
    n = _number(value)
    if n is not None:
        return n, None
    if isinstance(value, dict):
        parts = {str(k): x for k, v in value.items() if (x := _number(v)) is not None}
    elif isinstance(value, (list, tuple)):
        parts = {str(i): x for i, v in enumerate(value) if (x := _number(v)) is not None}
    else:
        return None, None
    return (float(np.mean(list(parts.values()))), parts) if parts else (None, None)


def gather_reported(metas: Sequence[dict]) -> Tuple[Dict[str, dict], Dict[str, dict]]:
    """Table cells (``reported:<key>``) and per-target values of the metrics stored by the method itself."""
    values: Dict[str, List[float]] = defaultdict(list)
    parts: Dict[str, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))
    per: Dict[str, dict] = defaultdict(dict)
    for meta in metas:
        found = {k: v for k, v in (meta.get("scores") or {}).items() if k not in BOOKKEEPING and k not in CLASS_IDS}
        found.update({k: v for k, v in (meta.get("info") or {}).items() if k in REPORTED and k not in found})
        target = _slug(meta.get("target") or {})
        for key, raw in sorted(found.items()):
            mean, sub = scalar_of(raw)
            if mean is None:
                continue
            values[key].append(mean)
            per[target].setdefault(str(meta.get("seed", 0)), {})[key] = mean
            for name, x in (sub or {}).items():
                parts[key][name].append(x)
    cells = {}
    for key, vals in sorted(values.items()):
        known = REPORTED.get(key) if key in REPORTED else Reported(key.replace("_", " "))
        note = "reported by the method" + (f" ({known.source})" if known.source else "")
        if parts.get(key):
            note += "; mean over " + ", ".join(f"{k}: {np.mean(v):.3g}" for k, v in parts[key].items())
        cells[f"reported:{key}"] = cell(known.title, known.scale * float(np.mean(vals)), known.better,
                                        "method's own measurement", n=len(vals), note=note)
    return cells, dict(per)


def _slug(target: dict) -> str:
    from ..targets import Target

    try:
        return Target.from_dict(target).slug()
    except (TypeError, ValueError):
        return "unknown"
