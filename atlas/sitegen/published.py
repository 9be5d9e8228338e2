"""The site's record of what it published: every version of every versioned page (figure, concept and
neuron pages), with the day it was first published and what made it (``.atlas-published.json`` in the
pages folder, next to the writer's file record).

A render reads it to list the earlier versions on each plain permalink, with what differs in their
settings, and adds the versions it publishes; only ``atlas prune`` removes versions from it. The settings
of each version are kept here (once per distinct set of settings), so that the list survives a store that
no longer holds the old jobs.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..config import stable_hash
from . import paths

log = logging.getLogger(__name__)

RECORD = ".atlas-published.json"
#: A second copy, read when the first is damaged (as the writer keeps its file record).
RECORD_COPY = ".atlas-published.copy.json"
FORMAT = 1


@dataclass(frozen=True)
class Version:
    """One published version of a page: its hash, the day it was first published and what made it."""

    plain: str
    version: str
    published: str
    settings: Mapping[str, Any]

    @property
    def page(self) -> str:
        return paths.versioned(self.plain, self.version)


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def flat_settings(made_by: Mapping[str, Any]) -> Dict[str, Any]:
    """``made_by`` with nested mappings flattened to dotted keys and other values as JSON scalars."""
    out: Dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k in sorted(value, key=str):
                put(f"{prefix}.{k}" if prefix else str(k), value[k])
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value, sort_keys=True, default=str)

    put("", made_by)
    return out


def differences(older: Mapping[str, Any], newer: Mapping[str, Any]) -> List[tuple]:
    """``[(key, older value, newer value)]`` for every setting that differs (a missing one is None)."""
    keys = sorted(set(older) | set(newer))
    return [(k, older.get(k), newer.get(k)) for k in keys if older.get(k) != newer.get(k)]


@dataclass
class Published:
    """The record: ``versions[plain path]`` in the order they were published."""

    versions: Dict[str, List[Version]] = field(default_factory=dict)
    #: where the site is published: ``site_url``, ``assets_url`` and ``assets_folder`` (relative to the
    #: pages folder where it can be), for ``atlas check``.
    trees: Dict[str, Optional[str]] = field(default_factory=dict)

    def of(self, plain: str) -> List[Version]:
        return list(self.versions.get(plain, []))

    def add(self, plain: str, version: str, settings: Mapping[str, Any], day: Optional[str] = None) -> Version:
        """Record ``version`` of ``plain`` (kept as it is if it was published before)."""
        known = self.versions.setdefault(plain, [])
        for v in known:
            if v.version == version:
                return v
        v = Version(plain, version, day or today(), dict(settings))
        known.append(v)
        return v

    def drop(self, plain: str, version: str) -> None:
        self.versions[plain] = [v for v in self.versions.get(plain, []) if v.version != version]
        if not self.versions[plain]:
            del self.versions[plain]

    def pages(self) -> List[str]:
        return [v.page for vs in self.versions.values() for v in vs]

    def to_json(self) -> bytes:
        table: Dict[str, Dict[str, Any]] = {}
        versions = {}
        for plain in sorted(self.versions):
            rows = []
            for v in self.versions[plain]:
                h = stable_hash(v.settings, length=12)
                table[h] = dict(v.settings)
                rows.append([v.version, v.published, h])
            versions[plain] = rows
        return json.dumps({"format": FORMAT, "trees": self.trees, "settings": table, "versions": versions},
                          sort_keys=True, separators=(",", ":")).encode()


def read_published(folder: Path) -> Published:
    """The record in ``folder``, or its copy if the record is damaged (empty if there is neither; damage to
    both is warned about, and the versions it held are then not listed)."""
    problems = []
    for name in (RECORD, RECORD_COPY):
        path = Path(folder) / name
        try:
            return _parse(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        log.warning("the record of published versions in %s is damaged (%s): earlier versions are not listed",
                    folder, "; ".join(problems))
    return Published()


def _parse(raw: Any) -> Published:
    table, out = raw["settings"], Published()
    trees = raw.get("trees") or {}
    out.trees = {k: trees.get(k) for k in ("site_url", "assets_url", "assets_folder")
                 if isinstance(trees.get(k), str)}
    for plain, rows in raw["versions"].items():
        for version, day, h in rows:
            if not isinstance(plain, str) or paths.unversioned(paths.versioned(plain, version))[1] != version:
                raise ValueError(f"bad version {version!r} of {plain!r}")
            out.versions.setdefault(plain, []).append(Version(plain, version, str(day), dict(table[h])))
    return out
