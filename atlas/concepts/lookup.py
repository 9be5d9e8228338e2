"""Find stage results in the store by their recorded inputs (the site has no model or pool to rebuild
their keys, which include the pool's fingerprint): the newest matching entry wins."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence


def latest_entries(store, stage: str, match: dict, by: Sequence[str]) -> Dict[tuple, Path]:
    """``{tuple(inputs[b] for b in by): folder}`` of the verified entries of ``stage`` whose inputs contain
    ``match``; for several entries with the same ``by`` values, the newest."""
    root = Path(store.stages_dir) / stage
    best: Dict[tuple, tuple] = {}
    if not root.is_dir():
        return {}
    for meta_path in root.glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        inputs = meta.get("inputs", {})
        if any(inputs.get(k) != v for k, v in match.items()):
            continue
        key = tuple(inputs.get(b) for b in by)
        created = meta.get("created", "")
        if key not in best or created > best[key][0]:
            best[key] = (created, meta_path.parent)
    return {k: d for k, (_, d) in best.items() if store.get_stage(stage, d.name) is not None}
