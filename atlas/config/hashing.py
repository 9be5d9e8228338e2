"""``stable_hash``: the content hash behind every job key, stage key and configuration hash.

The hash is SHA-256 of a canonical JSON text (sorted keys, no whitespace, ASCII), so it does not depend
on dict order, process or platform. Changing anything here changes every key of every store.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping


class Canonical:
    """A value already in canonical form (:func:`canonical_form`), embedded as is: a configuration shared
    by many jobs is canonicalised once, not once per job."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def canonical_form(obj: Any) -> Canonical:
    return Canonical(_canonical(obj))


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Canonical):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return repr(obj)
        return float(repr(obj))
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(f"cannot hash object of type {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """Sorted-keys, whitespace-free JSON of dataclasses, mappings, sequences and scalars."""
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 of :func:`canonical_json` (independent of dict order, process and platform)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
