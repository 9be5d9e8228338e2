"""``stable_hash``: the content hash behind every job key, stage key and configuration hash.

The hash is SHA-256 of a canonical JSON text (sorted keys, no whitespace, ASCII), so it does not depend
on dict order, process or platform. Changing anything here changes every key of every store.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Canonical:
    """A value already in canonical form (:func:`canonical_form`), embedded as is: a configuration shared
    by many jobs is canonicalised once, not once per job."""

    __slots__ = ("value", "_text")

    def __init__(self, value: Any):
        self.value = value
        self._text = None

    @property
    def text(self) -> str:
        """The canonical JSON text of ``value``, encoded once."""
        if self._text is None:
            self._text = _dumps(self.value)
        return self._text


def canonical_form(obj: Any) -> Canonical:
    return Canonical(_canonical(obj))


_PLAIN = (str, int, bool, type(None))


def _canonical(obj: Any) -> Any:
    if type(obj) in _PLAIN:  # the common case first: exact scalars are their own canonical form
        return obj
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


#: one encoder for every hash (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def canonical_json(obj: Any) -> str:
    """Sorted-keys, whitespace-free JSON of dataclasses, mappings, sequences and scalars.

    A mapping's :class:`Canonical` values are spliced in as their cached text: the same JSON as encoding
    them again (keys sorted as ``json`` sorts them, each value encoded with the same options), without the
    cost - a job's key embeds a configuration shared by thousands of jobs."""
    if isinstance(obj, Mapping) and any(isinstance(v, Canonical) for v in obj.values()):
        items = {str(k): v for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}  # as _canonical, sorted
        return "{" + ",".join(_dumps(k) + ":" + (v.text if isinstance(v, Canonical) else _dumps(_canonical(v)))
                              for k, v in items.items()) + "}"
    return _dumps(_canonical(obj))


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 of :func:`canonical_json` (independent of dict order, process and platform)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
