"""One validator for every configuration dataclass, driven by its fields.

:func:`build` turns a mapping (a TOML table, a method's settings) into a frozen dataclass. Every key must
be a field, or the error names the closest one; every value must match the field's annotation: ``bool``,
``int`` (a bool is not an int), ``float`` (an int is accepted and kept as an int, so that a key written
``lr = 1`` hashes as before), ``str``, ``Optional``/``Union``, ``Tuple[X, ...]``, ``Tuple[A, B]``,
``tuple``, ``Any``, or a nested dataclass (a table). Lists become tuples. Every number must be finite,
and a field whose default is a non-negative number must not be set negative.

The rules of one field are its metadata (:func:`rule`; the names follow pydantic's ``Field``):

================  ======================================================================================
``ge gt le lt``   bounds of every number in the value (``ge=1``: a positive count; for a list of
                  ``[layer, channel]`` pairs, every channel)
``min_length``    fewest items of a list (1: non-empty)
``choices``       the values allowed; another value is an "unknown <field>" error
``aliases``       strings that stand for a value (``{"all": None}``)
``single``        a lone string stands for a one-item list (``classes = "0-99"``)
``table``         the value is a table, stored as its ``(key, value)`` pairs sorted by key
``keys``          the keys such a table may have (``key_noun`` names them in the message)
``merge``         a table of tables whose entries update the base's entries key by key
``pattern``       a regular expression a string must match as a whole (``device``)
``folder``        the value is a folder path: ``~`` is expanded, and it must not be empty, an existing
                  file, or a path below a file (the value names the option that sets it, ``"--store"``)
``what``          how messages describe a valid value (otherwise derived from the type and the bounds)
``shorthand``     a table (dataclass) field that also takes a plain value, which sets this one key of it
                  (``site = "out"`` is ``[site] folder = "out"``)
================  ======================================================================================

Every error is one line: ``config key 'data.references' must be a positive integer, got 0``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Union

from ..errors import AtlasError, unknown_choice

_NONE = type(None)


def rule(default: Any, **meta: Any) -> Any:
    """A dataclass field with validation rules, e.g. ``batch_size: int = rule(4, ge=1)``."""
    return dataclasses.field(default=default, metadata=meta)


def freeze(value: Any) -> Any:
    """Lists (and tuples) -> tuples, recursively: hashable, and hashed like the lists they were."""
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class Place:
    """Where a table's values come from, as messages name them.

    path:   dotted name of the table within a configuration (``""``: the top level; ``"targets"``).
    source: what the top level is read from (a file name, or ``"config"``).
    method: set for a method's settings (``setting 'steps' of method maco``) instead of configuration keys.
    """

    path: str = ""
    source: str = "config"
    method: Optional[str] = None
    options: bool = False  # values given as command-line options (``--store``; ``data.pool`` is ``--data``)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def label(self, name: str) -> str:
        if self.method is not None:
            return f"setting {self.key(name)!r} of method {self.method}"
        if self.options:
            return f"option --{self.key(name).split('.')[0].replace('_', '-')}"
        return f"config key {self.key(name)!r}"

    def unknown_key(self) -> str:
        if self.method is not None:
            return f"setting of method {self.method}:"
        return f"key in [{self.path}]:" if self.path else f"key in {self.source}:"

    def bad(self) -> str:
        if self.method is not None:
            return f"bad settings for method {self.method}"
        return f"bad [{self.path}]" if self.path else f"bad {self.source}"

    def child(self, name: str) -> "Place":
        return dataclasses.replace(self, path=self.key(name))


@dataclass(frozen=True)
class _Field:
    type: Any
    default: Any
    meta: Mapping[str, Any]


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> Dict[str, _Field]:
    """Each field's type (its annotation; else its default's type), default and rules."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        hints = {}
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default
        if default is dataclasses.MISSING:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        meta = dict(f.metadata)
        if _is_number(default) and default >= 0 and not {"ge", "gt"} & set(meta):
            meta["ge"] = 0
        out[f.name] = _Field(hints.get(f.name, type(default) if default is not None else Any), default, meta)
    return out


def build(cls: type, raw: Mapping[str, Any], place: Place = Place(), base: Any = None,
          rules: Optional[Mapping[str, Mapping[str, Any]]] = None, also: Sequence[str] = ()) -> Any:
    """``cls`` from the mapping ``raw``, every key and value checked (see the module docstring).

    base:  an instance whose other fields are kept (None: the defaults).
    rules: more rules per field name, over the fields' own (e.g. every method's ``steps`` >= 1).
    also:  keys the caller reads itself (accepted here, e.g. ``preset``).
    """
    check_keys(cls, raw, place, also)
    specs, kw = _fields(cls), {}
    for name, value in raw.items():
        if name in also:
            continue
        spec = specs[name]
        meta = {**spec.meta, **(rules or {}).get(name, {})}
        old = getattr(base, name) if base is not None else spec.default
        kw[name] = check(value, spec.type, meta, place, name, old)
    try:
        return dataclasses.replace(base, **kw) if base is not None else cls(**kw)
    except (TypeError, ValueError) as exc:  # the dataclass's own __post_init__ checks
        raise AtlasError(f"{place.bad()}: {exc}") from None


def check_keys(cls: type, raw: Mapping[str, Any], place: Place = Place(), also: Sequence[str] = ()) -> None:
    """An error naming the closest valid key if ``raw`` has a key that is not a field of ``cls``."""
    names = [*_fields(cls), *also]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise unknown_choice(place.unknown_key(), unknown[0], names)


def check(value: Any, tp: Any, meta: Mapping[str, Any], place: Place, name: str, old: Any = None) -> Any:
    """``value`` of key ``name`` (type ``tp``, rules ``meta``) converted: lists -> tuples, tables ->
    dataclasses or sorted pairs. ``old``: the value it replaces (a nested table starts from it)."""
    aliases = meta.get("aliases", {})
    if isinstance(value, str) and value in aliases:
        return aliases[value]
    if meta.get("single") and isinstance(value, str):
        value = [value]
    if "choices" in meta:
        if value not in meta["choices"]:
            raise unknown_choice(name, value, meta["choices"])
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if "shorthand" in meta and not isinstance(value, Mapping):
            value = {meta["shorthand"]: value}
        if not isinstance(value, Mapping):
            raise _bad(place, name, value, "a table")
        return build(tp, value, place.child(name), base=old)
    if meta.get("table"):
        return _table(value, tp, meta, place, name, old)
    if tp is Any:
        return freeze(value)
    try:
        out = _conform(value, tp)
    except _Mismatch:
        raise _bad(place, name, value, describe(tp, meta)) from None
    if not _within(out, meta):
        finite = not _is_number(out) or math.isfinite(out)
        if not _within(out, {k: v for k, v in meta.items() if k not in ("ge", "gt")}):
            shown = meta  # too large: say both bounds
        else:  # too small: the upper bound is beside the point (``must be a positive integer, got 0``)
            shown = {k: v for k, v in meta.items() if k not in ("le", "lt")}
        raise _bad(place, name, value, describe(tp, shown) if finite else "a finite number")
    if isinstance(out, str) and "pattern" in meta and not re.fullmatch(meta["pattern"], out):
        raise _bad(place, name, value, describe(tp, meta))
    if isinstance(out, str) and "folder" in meta:
        return _folder(out, place, name, meta["folder"])
    return out


def _folder(value: str, place: Place, name: str, option: str) -> str:
    """A folder path with ``~`` expanded; an error if it is empty, a file, or below a file."""
    if not value.strip() or "\x00" in value:
        raise _bad(place, name, value, f"a folder path (choose one with {option})")
    path = os.path.expanduser(value)
    probe = Path(path)
    for p in (probe, *probe.parents):
        try:
            is_file = p.exists() and not p.is_dir()
        except (OSError, ValueError):  # a name too long, a folder we may not look into: the write says so
            return path
        if is_file:
            where = "is a file" if p == probe else f"is below {str(p)!r}, which is a file"
            raise AtlasError(f"{place.label(name)}: {value!r} {where}; a folder is needed here: choose "
                             f"another with {option}")
    return path


def _bad(place: Place, name: str, value: Any, what: str) -> AtlasError:
    return AtlasError(f"{place.label(name)} must be {what}, got {value!r}")


def _table(value: Any, tp: Any, meta: Mapping[str, Any], place: Place, name: str, old: Any) -> tuple:
    """A table stored as sorted ``(key, value)`` pairs; ``tp`` is ``Tuple[Tuple[str, X], ...]``."""
    if not isinstance(value, Mapping):
        raise _bad(place, name, value, meta.get("what", "a table"))
    here, entry = place.child(name), _entry_type(tp)
    keys = meta.get("keys")
    for key in value:
        if keys is not None and key not in keys:
            raise unknown_choice(f"{meta.get('key_noun', 'key')} in [{here.path}]:", key, keys)
    if meta.get("merge") and old:
        merged = {k: dict(v) for k, v in old}
        for k, v in value.items():
            merged[k] = {**merged.get(k, {}), **v} if isinstance(v, Mapping) else v
        value = merged
    inner = {"table": True} if _entry_type(entry) is not None else {}
    pairs = ((str(k), check(v, entry, inner, here, k)) for k, v in value.items())
    return tuple(sorted(pairs, key=lambda kv: kv[0]))


def _entry_type(tp: Any) -> Any:
    """X of ``Tuple[Tuple[str, X], ...]`` (the type of a table of pairs), else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        pair = typing.get_args(args[0])
        if typing.get_origin(args[0]) is tuple and len(pair) == 2 and pair[0] is str:
            return pair[1]
    return None


# ------------------------------------------------------------------------------------------- types
class _Mismatch(Exception):
    """A value does not have the annotated type."""


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _conform(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (lists -> tuples), or :class:`_Mismatch`."""
    if tp is Any:
        return freeze(value)
    if _is_union(tp):
        if value is None and _NONE in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is not _NONE:
                try:
                    return _conform(value, arg)
                except _Mismatch:
                    pass
        raise _Mismatch
    args = typing.get_args(tp)
    if tp is tuple or typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if not args:
            return freeze(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_conform(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_conform(v, a) for v, a in zip(value, args))
    if tp is float:
        ok = _is_number(value)
    elif tp is int:
        ok = _is_number(value) and isinstance(value, int)
    elif isinstance(tp, type):
        ok = isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
    else:  # an annotation this validator does not read
        ok = True
    if not ok:
        raise _Mismatch
    return value


def _numbers(value: Any) -> Iterator[float]:
    if _is_number(value):
        yield value
    elif isinstance(value, tuple):
        for v in value:
            yield from _numbers(v)


def _within(value: Any, meta: Mapping[str, Any]) -> bool:
    """Whether ``value`` keeps the bounds: finite numbers, ``ge``/``gt``/``le``/``lt``, ``min_length``."""
    if isinstance(value, tuple) and len(value) < meta.get("min_length", 0):
        return False
    for x in _numbers(value):
        if not math.isfinite(x):
            return False
        if ("ge" in meta and x < meta["ge"]) or ("gt" in meta and x <= meta["gt"]):
            return False
        if ("le" in meta and x > meta["le"]) or ("lt" in meta and x >= meta["lt"]):
            return False
    return True


# ------------------------------------------------------------------------------------------- messages
def describe(tp: Any, meta: Optional[Mapping[str, Any]] = None) -> str:
    """What a valid value looks like, for messages: ``a positive integer``, ``a list of strings``, ..."""
    meta = meta or {}
    if "what" in meta:
        return meta["what"]
    if meta.get("table") or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "a table"
    noun = _noun(tp, meta)
    if noun.startswith("true or false"):
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _noun(tp: Any, meta: Mapping[str, Any], plural: bool = False) -> str:
    if _is_union(tp):
        return " or ".join(_noun(a, meta, plural) for a in typing.get_args(tp) if a is not _NONE)
    args = typing.get_args(tp)
    if tp is tuple or typing.get_origin(tp) is tuple:
        head = ("non-empty " if meta.get("min_length") else "") + ("lists" if plural else "list")
        if not args:
            return head
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{head} of {_noun(args[0], meta, plural=True)}"
        if len(set(args)) == 1:
            return f"{head} of {len(args)} {_noun(args[0], meta, plural=True)}"
        return f"{head} [" + ", ".join(_noun(a, meta) for a in args) + "]"
    if tp is bool:
        return "true or false" + (" values" if plural else "")
    if tp is int:
        return _bounded("integer", meta, plural)
    if tp is float:
        return _bounded("number", meta, plural)
    names = {str: "string", Any: "value"}
    word = names.get(tp, getattr(tp, "__name__", str(tp)))
    return word + ("s" if plural else "")


def _bounded(noun: str, meta: Mapping[str, Any], plural: bool) -> str:
    """``non-negative integer``, ``positive number``, ``integer >= 2``, ``number in (0, 100)``, ..."""
    noun += "s" if plural else ""
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    if le is None and lt is None:
        if ge == 0 and gt is None:
            return "non-negative " + noun
        if (gt == 0 and ge is None) or (ge == 1 and gt is None and noun.startswith("integer")):
            return "positive " + noun
    if gt is not None and lt is not None and ge is None and le is None:
        return f"{noun} in ({gt}, {lt})"
    bounds = [f"{op} {v}" for op, v in ((">=", ge), (">", gt), ("<=", le), ("<", lt)) if v is not None]
    if not bounds:
        return noun if noun.startswith("integer") else "finite " + noun
    return f"{noun} " + " and ".join(bounds)
