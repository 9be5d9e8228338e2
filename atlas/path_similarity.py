"""Path-similarity curves of a class (feature-accentuation paper §3, Fig. 8 A/C), in plain Python: the
accentuation method records one per-layer record per job (:func:`atlas.methods.image_measures.path_similarity`),
and the site averages a class's records into one curve without loading torch."""
from __future__ import annotations

from typing import Dict, Optional, Sequence


def mean_defined(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of the values that are not None (None if there are none)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize_path_similarity(records: Sequence[Dict[str, list]]) -> Dict[str, list]:
    """Average per-layer path-similarity records (same layers) into one: the class's curve."""
    if not records:
        return {"layers": [], "to_natural": [], "natural": [], "to_seed": [], "n": 0}
    layers = records[0]["layers"]
    out = {"layers": list(layers), "n": len(records)}
    for key in ("to_natural", "natural", "to_seed"):
        out[key] = [mean_defined([r[key][i] for r in records if r.get("layers") == layers])
                    for i in range(len(layers))]
    return out
