"""The ledger: which process computed which jobs, and when (``<store>/ledger/*.jsonl``).

Every runner process appends one JSON line per finished batch to its own file (named by host, process id
and start time), so concurrent shards never write to the same file and a process killed mid-line leaves at
most one unreadable last line, which readers skip. The ledger answers "was any job computed twice?" and
"how fast did each worker go?"; the store itself stays the record of what is done.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from ..atomic import HOST as _HOST
from ..atomic import warn_once


class Ledger:
    """Append-only record of this process's finished batches; the file is created on the first record."""

    def __init__(self, root: str | Path, tags: Optional[Dict[str, object]] = None):
        self.dir = Path(root) / "ledger"
        self.tags = dict(tags or {})
        self._path: Optional[Path] = None

    @property
    def path(self) -> Path:
        if self._path is None:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._path = self.dir / f"{_HOST}-{os.getpid()}-{stamp}-{time.monotonic_ns() % 10**6:06d}.jsonl"
        return self._path

    def record(self, keys: List[str], seconds: float, **extra) -> None:
        """Append one line: the job keys just stored, the seconds they took, and this process's tags."""
        line = {"keys": list(keys), "seconds": round(float(seconds), 3), "host": _HOST, "pid": os.getpid(),
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **self.tags, **extra}
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _well_formed(rec) -> bool:
    """A record as :meth:`Ledger.record` writes it: job keys (strings), and optional retried keys."""
    if not isinstance(rec, dict) or not isinstance(rec.get("keys"), list):
        return False
    retried = rec.get("retried", [])
    return all(isinstance(k, str) for k in rec["keys"]) and isinstance(retried, list) and all(
        isinstance(k, str) for k in retried)


def read_ledger(root: str | Path) -> Iterator[dict]:
    """Every well-formed record of every process. A torn last line of a killed process is skipped
    silently; other damage (bytes that are not UTF-8, lines that are not records) is skipped with one
    warning per file: the ledger is a log, the store stays the record of what is done."""
    d = Path(root) / "ledger"
    if not d.is_dir():
        return
    for path in sorted(d.glob("*.jsonl")):
        try:
            lines = path.read_bytes().split(b"\n")
        except OSError:
            continue
        bad = 0
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                rec = None
            if _well_formed(rec):
                yield rec
            elif i < len(lines) - 1:  # not the torn last line of a killed writer
                bad += 1
        if bad:
            warn_once(path, f"ledger {path.name}: {bad} damaged line(s) skipped")


def completions(root: str | Path) -> Counter:
    """How many times each job key was computed and stored, over all processes."""
    return Counter(k for rec in read_ledger(root) for k in rec["keys"])

