"""The artifact store: one folder per finished job, written atomically, keyed by the job's hash.

Layout::

    <store>/jobs/<key>/image.png, alpha.png, [extras].png, thumb.webp, view.webp, meta.json
    <store>/failed/<key>.json          jobs that failed (NaN/Inf, ...), with the reason and step
    <store>/stages/<stage>/<key>/      results of shared stages (CRAFT concepts, neuron examples, ...)
    <store>/metrics/                   metric results (JSON)
    <store>/cache/                     small caches (magnitude spectra, ...)

A job folder is first written as ``jobs/.tmp-<key>-<host>-<pid>-<n>/`` and then renamed into place
(:func:`atlas.pipeline.disk.atomic_folder`, as every stage result), so a ``jobs/<key>`` folder is always
complete; a build killed at any moment leaves at most a temp folder, which the next run removes (if its
writer process is gone). ``meta.json`` records a SHA-256 of every file, so
a truncated or altered artifact is detected on read and recomputed: the method's results under ``files``,
the images the site shows made from them (:mod:`atlas.webp`: a thumbnail and a view, made here once so that
rendering copies them) under ``derived``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from .. import __version__
from ..config import stable_hash
from .disk import atomic_folder, atomic_write, is_temp, writer_alive
from ..png import png_bytes
from ..webp import derived_images
from .jobs import Job

log = logging.getLogger(__name__)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files_intact(folder: Path, meta: dict, what: str) -> bool:
    """True if every file recorded in ``meta["files"]`` is in ``folder`` with its checksum; a missing or
    corrupt one is logged (``what`` names the job or stage result) and will be recomputed."""
    for name, digest in meta.get("files", {}).items():
        try:
            data = (folder / name).read_bytes()
        except OSError:
            log.warning("%s: %s is missing; it will be recomputed", what, name)
            return False
        if sha256(data) != digest:
            log.warning("%s: %s is corrupt (checksum mismatch); it will be recomputed", what, name)
            return False
    return True


def _history(values, limit: int = 200):
    values = [float(v) for v in values]
    if len(values) <= limit:
        return values
    idx = np.linspace(0, len(values) - 1, limit).round().astype(int)
    return [values[i] for i in idx]


class Store:
    """The store under ``root`` (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.failed_dir = self.root / "failed"
        self.cache_dir = self.root / "cache"
        self.stages_dir = self.root / "stages"
        self.metrics_dir = self.root / "metrics"

    # ------------------------------------------------------------------ reading
    def job_dir(self, key: str) -> Path:
        return self.jobs_dir / key

    def has(self, key: str) -> bool:
        return (self.jobs_dir / key / "meta.json").is_file()

    def intact(self, key: str) -> bool:
        """True if the job is stored and every file matches its checksum (a corrupt job is logged)."""
        return self.has(key) and self.meta(key, verify=True) is not None

    def meta(self, key: str, verify: bool = False) -> Optional[dict]:
        """The job's metadata, or None if it is missing, unreadable or (with ``verify``) corrupt."""
        path = self.jobs_dir / key / "meta.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("unreadable metadata %s: treated as missing", path)
            return None
        if verify and not self.verify(key, meta):
            return None
        return meta

    def verify(self, key: str, meta: dict) -> bool:
        """True if every file recorded in ``meta`` exists with its recorded checksum."""
        return _files_intact(self.jobs_dir / key, meta, f"job {key}")

    def derived(self, key: str, name: str, meta: dict) -> Optional[bytes]:
        """The bytes of the derived image ``name`` (:data:`atlas.webp.DERIVED`) of a stored job if it is there
        and intact, else None (jobs stored before derived images existed have none: the site makes them)."""
        derived = meta.get("derived") if isinstance(meta, dict) else None
        digest = derived.get(name) if isinstance(derived, dict) else None
        if not digest:
            return None
        try:
            data = (self.jobs_dir / key / name).read_bytes()
        except OSError:
            return None
        return data if sha256(data) == digest else None

    def iter_metas(self) -> Iterator[dict]:
        if not self.jobs_dir.is_dir():
            return
        for d in sorted(self.jobs_dir.iterdir()):
            if d.name.startswith("."):
                continue
            meta = self.meta(d.name)
            if meta is not None:
                yield meta

    def failure(self, key: str) -> Optional[dict]:
        try:
            return json.loads((self.failed_dir / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ writing
    def put(self, job: Job, vis, retry_of: Optional[dict] = None) -> Path:
        """Store a finished visualisation atomically; returns its folder. ``retry_of`` (a retried failed
        job: its failure and the seed used instead) is recorded in the meta."""
        files: Dict[str, bytes] = {"image.png": png_bytes(vis.image), "alpha.png": png_bytes(vis.alpha)}
        for name, arr in vis.extras.items():
            files[f"{name}.png"] = png_bytes(arr)
        derived = derived_images(files["image.png"])
        meta = dict(job.spec())
        meta.update({
            "key": job.key,
            "config_hash": job.config_hash,
            "atlas_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(float(vis.seconds), 3),
            "scores": vis.scores,
            "history": _history(vis.history),
            "steps_run": len(vis.history),
            "info": vis.info,
            "size": list(np.asarray(vis.image).shape[:2]),
            "files": {name: sha256(data) for name, data in files.items()},
            "derived": {name: sha256(data) for name, data in derived.items()},
        })
        if retry_of is not None:
            meta["retry_of"] = retry_of
        files.update(derived)
        files["meta.json"] = json.dumps(meta, indent=1, sort_keys=True, default=float).encode()
        final = atomic_folder(self.jobs_dir, job.key, files, lambda: self.intact(job.key))
        (self.failed_dir / f"{job.key}.json").unlink(missing_ok=True)
        return final

    # ------------------------------------------------------------------ stages
    def stage_dir(self, stage: str, key: str) -> Path:
        return self.stages_dir / stage / key

    def get_stage(self, stage: str, key: str, verify: bool = True) -> Optional[Path]:
        """The folder of a finished stage result, or None (missing, or corrupt with ``verify``)."""
        d = self.stage_dir(stage, key)
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if verify and not _files_intact(d, meta, f"stage {stage}/{key}"):
            return None
        return d

    def put_stage(self, stage: str, key: str, files: Dict[str, bytes], meta: Optional[dict] = None) -> Path:
        """Store a stage result (named files + meta.json with their checksums) atomically."""
        record = dict(meta or {}, key=key, stage=stage, files={n: sha256(b) for n, b in files.items()},
                      created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        files = {**files, "meta.json": json.dumps(record, indent=1, default=str).encode()}
        return atomic_folder(self.stages_dir / stage, key, files, lambda: self.get_stage(stage, key) is not None)

    def find_stage(self, stage: str, accept: Callable[[dict], bool]) -> Optional[Path]:
        """A finished (verified) result of ``stage`` whose recorded inputs satisfy ``accept`` - e.g. a scan
        over more channels than asked for, whose answer contains the one asked for."""
        base = self.stages_dir / stage
        if not base.is_dir():
            return None
        for d in sorted(base.iterdir()):
            if d.name.startswith("."):
                continue
            try:
                inputs = json.loads((d / "meta.json").read_text(encoding="utf-8")).get("inputs")
            except (OSError, ValueError):
                continue
            if isinstance(inputs, dict) and accept(inputs) and self.get_stage(stage, d.name) is not None:
                return d
        return None

    def cached_stage(self, stage: str, key_obj, compute: Callable[[], Tuple[Dict[str, bytes], dict]]) -> Path:
        """Return the stage result for ``key_obj`` (hashed), computing and storing it if missing or corrupt.

        ``compute()`` returns ``(files, meta)``; files maps names to bytes.
        """
        key = stable_hash(key_obj, length=20)
        hit = self.get_stage(stage, key)
        if hit is not None:
            return hit
        files, meta = compute()
        return self.put_stage(stage, key, files, dict(meta or {}, inputs=key_obj))

    def put_failure(self, job: Job, reason: str, step: Optional[int] = None) -> None:
        record = {"key": job.key, **job.spec(), "reason": reason, "step": step,
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(self.failed_dir / f"{job.key}.json", json.dumps(record, indent=1, default=str).encode())

    def clean_temp(self) -> int:
        """Remove temp folders/files left by writers on this host that are no longer running."""
        removed = 0
        bases = [self.jobs_dir, self.failed_dir, self.cache_dir, self.metrics_dir]
        if self.stages_dir.is_dir():
            bases += [d for d in self.stages_dir.iterdir() if d.is_dir()]
        deep = {self.cache_dir, self.metrics_dir}  # nested writers (feature caches): look at every level
        for base in bases:
            if not base.is_dir():
                continue
            for p in list(base.rglob("*") if base in deep else base.iterdir()):
                if not is_temp(p.name) or writer_alive(p.name):
                    continue
                if not p.exists() and not p.is_symlink():
                    continue  # inside a temp folder removed a moment ago
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed += 1
        return removed
