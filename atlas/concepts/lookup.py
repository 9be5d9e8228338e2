"""Find stage results in the store by their recorded inputs (the site has no model or pool to rebuild
their keys, which include the pool's fingerprint): the newest matching entry wins."""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Dict, Optional, Sequence

from ..config import canonical_json


def latest_entries(store, stage: str, match: dict, by: Sequence[str],
                   wanted: Optional[Collection[tuple]] = None) -> Dict[tuple, Path]:
    """``{tuple(inputs[b] for b in by): folder}`` of the verified entries of ``stage`` whose inputs contain
    ``match``; for several entries with the same ``by`` values, the newest *intact* one (a damaged newer
    entry is warned about and passed over, never hides an older good one). ``wanted``: only these keys
    (the others are neither checksummed nor returned)."""
    root = Path(store.stages_dir) / stage
    best: Dict[str, tuple] = {}
    if not root.is_dir():
        return {}
    for d in root.iterdir():
        if d.name.startswith(".") or not d.is_dir():
            continue
        meta = store.stage_meta(stage, d.name, verify=False)
        inputs = meta.get("inputs") if meta is not None else None
        if not isinstance(inputs, dict) or any(inputs.get(k) != v for k, v in match.items()):
            continue
        key = tuple(inputs.get(b) for b in by)
        if wanted is not None and not (all(isinstance(v, (int, str)) for v in key) and key in wanted):
            continue
        created = str(meta.get("created", ""))
        token = canonical_json(list(key))
        if (token not in best or created > best[token][0]) and store.get_stage(stage, d.name) is not None:
            best[token] = (created, key, d)
    return {key: d for _, key, d in best.values()}
