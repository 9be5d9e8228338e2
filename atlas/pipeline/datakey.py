"""The data part of a job's key: which images a data-using method (MACO's spectrum, VITAL's references,
the image-seeded methods) saw.

A folder pool is identified by its normalised location (:func:`atlas.config.pool_location`: ``mixed``,
``./mixed``, ``mixed/`` and the absolute path are one folder) and a fingerprint of its contents (every
image's class, name and size: :meth:`atlas.data.pools.FolderPool.fingerprint`), so renaming, adding or
re-encoding an image makes other jobs, and the same folder named differently makes the same jobs.

Where the folder is not at hand (``atlas render`` on a web host, ``atlas status`` on a login node), the
fingerprint the last run saw there is read from the store (``cache/pools.json``, written by every run), so
the keys are the same; if neither is available the fingerprint is unknown (``None``) and the plan says so
(:attr:`atlas.pipeline.planner.Plan.unknown_data`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..atomic import atomic_write, read_json
from ..config import pool_location
from ..data.pools import open_pool
from ..errors import AtlasError

RECORD = Path("cache") / "pools.json"


def _record_problem(value) -> Optional[str]:
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    for loc, entry in value.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str)):
            return f"bad entry for {loc[:60]!r}"
    return None


def recorded(store_root) -> Dict[str, dict]:
    """The store's record of data folders: ``{location: {"fingerprint", "when"}}`` (damaged: warned, empty)."""
    return read_json(Path(store_root) / RECORD, "record of data folders", _record_problem) or {}


def fingerprint_here(location: str) -> Optional[str]:
    """The fingerprint of the pool at ``location`` on this machine (one listing and one ``stat`` per image),
    or None if it cannot be opened here."""
    try:
        return open_pool(location).fingerprint()
    except (AtlasError, OSError):
        return None


def pool_identity(pool: str, store_root) -> Tuple[str, Optional[str]]:
    """(location, fingerprint) of the configured pool: measured here, else as recorded in the store, else
    None. The bundled photos are identified by name (they come with the installed packages)."""
    location = pool_location(pool)
    if location == "bundled":
        return location, None
    fp = fingerprint_here(location)
    if fp is None:
        entry = recorded(store_root).get(location)
        fp = entry["fingerprint"] if entry else None
    return location, fp


def remember(store_root, data: Dict[str, object]) -> None:
    """Record the data folder's fingerprint that a plan measured (``data``: a job's data key), so that a
    later plan without the folder finds the same keys; a run calls this. Writes only what changed."""
    location, fp = data.get("pool"), data.get("pool_fingerprint")
    if not isinstance(location, str) or not isinstance(fp, str):
        return
    record = recorded(store_root)
    if record.get(location, {}).get("fingerprint") == fp:
        return
    record[location] = {"fingerprint": fp, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(Path(store_root) / RECORD, json.dumps(record, indent=1, sort_keys=True).encode())
