"""Metric results on disk: JSON files under ``<store>/metrics/results/`` keyed by the hash of their inputs,
and one index per (configuration scope, model) naming the current results.

This module imports neither torch nor a model: the site renderer reads results through it.

A result's table cells are plain dicts (see :func:`cell`): every cell names its backbone, and a cell that
could not be computed carries ``unavailable`` (a one-line reason) instead of a value.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional

from ..atomic import atomic_write, read_json, seal_problem, sealed_json
from ..config import AtlasConfig, stable_hash
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


def _result_problem(value, key: str) -> Optional[str]:
    why = seal_problem(value)
    if why:
        return why
    if value.get("key") != key:
        return "another result's key"
    return None


def read_result(store: Store, key: str) -> Optional[dict]:
    """The stored result ``key``, or None if missing or damaged (warned once; ``atlas metrics`` computes
    it again). Results are sealed (:func:`atlas.atomic.sealed_json`): any change to the file, whatever
    its shape, is damage - the site never formats a result atlas did not write."""
    return read_json(results_dir(store) / f"{key}.json", f"metric result {key} (run `atlas metrics` to compute it "
                     f"again)", lambda v: _result_problem(v, key))


def write_result(store: Store, key: str, data: dict) -> None:
    data = dict(data, key=key, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic_write(results_dir(store) / f"{key}.json", sealed_json(data, default=_jsonable))


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
    atomic_write(store.metrics_dir / "index" / f"{scope}.json", sealed_json(index))


def _index_problem(value) -> Optional[str]:
    why = seal_problem(value)
    if why:
        return why
    units = value.get("units", {})
    if not isinstance(units, dict) or not all(isinstance(k, str) for k in units.values()):
        return "bad unit list"
    if any(value.get(n) is not None and not isinstance(value.get(n), str) for n in ("baseline", "tsne")):
        return "bad result key"
    return None


def read_index(store: Store, scope: str) -> Optional[dict]:
    """The index of a model's current results, or None (not computed; damaged: warned once)."""
    return read_json(store.metrics_dir / "index" / f"{scope}.json",
                     f"metrics index {scope} (run `atlas metrics` to write it again)", _index_problem)


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
