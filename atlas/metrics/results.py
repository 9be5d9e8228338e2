"""Metric results on disk: JSON files under ``<store>/metrics/results/`` keyed by the hash of their inputs,
and one index per (configuration scope, model) naming the current results.

This module imports neither torch nor a model: the site renderer reads results through it.

A result's table cells are plain dicts (see :func:`cell`): every cell names its backbone, and a cell that
could not be computed carries ``unavailable`` (a one-line reason) instead of a value.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Optional

from ..config import AtlasConfig, stable_hash
from ..pipeline.disk import atomic_write
from ..pipeline.store import Store

log = logging.getLogger(__name__)


def cell(title: str, value: Optional[float] = None, better: Optional[str] = None, backbone: str = "",
         unavailable: Optional[str] = None, n: Optional[int] = None, std: Optional[float] = None,
         note: str = "") -> Dict[str, Any]:
    """One table cell: ``better`` is "higher", "lower" or None (no ranking); ``n`` how many samples."""
    if value is None and unavailable is None:
        raise ValueError(f"cell {title!r} needs a value or an unavailable reason")
    return {"title": title, "value": None if value is None else float(value), "better": better,
            "backbone": backbone, "unavailable": unavailable, "n": n,
            "std": None if std is None else float(std), "note": note}


def results_dir(store: Store):
    return store.metrics_dir / "results"


def read_result(store: Store, key: str) -> Optional[dict]:
    """The stored result ``key``, or None if missing or unreadable (then it is recomputed)."""
    path = results_dir(store) / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("unreadable metric result %s: recomputing", path)
        return None


def write_result(store: Store, key: str, data: dict) -> None:
    data = dict(data, key=key, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic_write(results_dir(store) / f"{key}.json",
                 json.dumps(data, indent=1, sort_keys=True, default=_jsonable).encode())


def _jsonable(v):
    try:
        return v.item()  # numpy scalars
    except AttributeError:
        return str(v)


def scope_id(cfg: AtlasConfig, model: str, classes) -> str:
    """Which build a model's metrics belong to: everything in the configuration that changes the set of
    jobs or how they are evaluated (not the output folders)."""
    return stable_hash({"model": model, "name": cfg.name, "methods": list(cfg.methods), "seeds": list(cfg.seeds),
                        "classes": list(classes), "targets": cfg.targets, "metrics": cfg.metrics,
                        "data": cfg.data, "settings": cfg.settings}, length=20)


def write_index(store: Store, scope: str, index: dict) -> None:
    atomic_write(store.metrics_dir / "index" / f"{scope}.json",
                 json.dumps(index, indent=1, sort_keys=True).encode())


def read_index(store: Store, scope: str) -> Optional[dict]:
    try:
        return json.loads((store.metrics_dir / "index" / f"{scope}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_model_results(store: Store, cfg: AtlasConfig, model: str, classes) -> Optional[dict]:
    """{"units": {name: result}, "baseline": result, "tsne": result} for ``model``, or None if the metrics
    step has not run for this configuration."""
    index = read_index(store, scope_id(cfg, model, classes))
    if index is None:
        return None
    out: Dict[str, Any] = {"units": {}, "created": index.get("created")}
    for name, key in index.get("units", {}).items():
        res = read_result(store, key)
        if res is not None:
            out["units"][name] = res
    for name in ("baseline", "tsne"):
        key = index.get(name)
        out[name] = read_result(store, key) if key else None
    return out
