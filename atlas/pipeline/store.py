"""The artifact store: one folder per finished job, written atomically, keyed by the job's hash.

Layout::

    <store>/jobs/<key>/image.png, alpha.png, [extras].png, thumb.webp, view.webp, meta.json
    <store>/failed/<key>.json          jobs that failed (NaN/Inf, ...), with the reason and step
    <store>/stages/<stage>/<key>/      results of shared stages (CRAFT concepts, neuron examples, ...)
    <store>/metrics/                   metric results (JSON)
    <store>/cache/                     small caches (magnitude spectra, ...)

A job folder is first written as ``jobs/.tmp-<key>-<host>-<pid>-<n>/`` and then renamed into place
(:func:`atlas.atomic.atomic_folder`, as every stage result), so a ``jobs/<key>`` folder is always
complete; a build killed at any moment leaves at most a temp folder, which the next run removes (if its
writer process is gone). ``meta.json`` records the size and SHA-256 of every file
(:mod:`atlas.atomic`'s checked folders), so a truncated or altered artifact is detected and recomputed:
``plan``, ``status`` and ``submit`` compare sizes (:meth:`Store.has`, one ``stat`` per file), ``run`` and
``render`` checksums (:meth:`Store.intact`, :meth:`Store.meta` with ``verify``). Every record read back
(job metadata, failures, stage records) is checked for its shape as well: a ``meta.json`` of ``null``, a
list or ``{}`` is a damaged entry - warned about once, treated as missing, recomputed - never a crash.
The images the site shows made from the results (:mod:`atlas.webp`: a thumbnail and a view, made here
once so that rendering copies them) are recorded under ``derived``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Set, Tuple

import numpy as np

from .. import __version__
from ..atomic import (SEAL, atomic_folder, atomic_write, checked_record, files_intact, is_int, is_temp, read_json,
                      record_problem, seal_problem, sealed_json, sha256, writer_alive)
from ..config import stable_hash
from ..image_checks import image_checks
from ..png import png_bytes
from ..webp import derived_images
from .jobs import Job

log = logging.getLogger(__name__)

__all__ = ["Store", "sha256"]

#: files every job folder holds (``meta.json`` records them)
JOB_FILES = ("image.png", "alpha.png")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def stage_meta_problem(meta, key: str, seal: bool = True) -> Optional[str]:
    """Why ``meta`` is not a stage result's record (None if it is): sealed as written (older records
    without the seal are checked field by field only), a checked-folder record naming ``key``."""
    if seal and isinstance(meta, dict) and SEAL in meta:
        why = seal_problem(meta)
        if why:
            return why
    return record_problem(meta, key=key)


def job_meta_problem(meta, key: str, seal: bool = True) -> Optional[str]:
    """Why ``meta`` is not a job's metadata (None if it is): sealed as :meth:`Store.put` wrote it (any
    change to the file is damage; metadata written before the seal is checked field by field only), a
    checked-folder record listing the job's image and transparency map, naming the job's key, with the
    fields that pages, the metrics and the estimates read. ``seal=False``: the seal is not checked (a file
    whose seal was checked before and that has not changed since: :class:`Stamps`)."""
    if seal and isinstance(meta, dict) and SEAL in meta:
        why = seal_problem(meta)
        if why:
            return why
    why = record_problem(meta, required=JOB_FILES, key=key)
    if why:
        return why
    size = meta.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)):
        return "bad image size"
    for name, ok in (("model", lambda v: isinstance(v, str)), ("method", lambda v: isinstance(v, str)),
                     ("config", lambda v: isinstance(v, dict)), ("target", lambda v: isinstance(v, dict)),
                     ("scores", lambda v: isinstance(v, dict)), ("info", lambda v: isinstance(v, dict)),
                     ("history", lambda v: isinstance(v, list) and all(_number(x) for x in v)),
                     ("seconds", _number), ("steps_run", is_int), ("seed", is_int),
                     ("retry_of", lambda v: isinstance(v, dict))):
        if name in meta and not ok(meta[name]):
            return f"bad {name!r}"
    for name in ("model", "method"):
        if name not in meta:
            return f"no {name!r}"
    return None


def _failure_problem(rec) -> Optional[str]:
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    if not isinstance(rec.get("reason", ""), str):
        return "bad 'reason'"
    if rec.get("step") is not None and not is_int(rec.get("step")):
        return "bad 'step'"
    return None


def _history(values, limit: int = 200):
    values = [float(v) for v in values]
    if len(values) <= limit:
        return values
    idx = np.linspace(0, len(values) - 1, limit).round().astype(int)
    return [values[i] for i in idx]


class Stamps:
    """What the last checksummed reads of store folders found, so that a later reader (``render``) does not
    checksum them again while they are unchanged: for each folder verified deeply (every checksum and the
    record's seal), the SHA-256 of ``(name, size, mtime, ctime, inode)`` of its ``meta.json`` and every file
    it records. Any write to a file, a rename onto it, a new hard link, ``touch``, ``chmod``, a copy of the
    store elsewhere changes its ctime or inode: the folder is checksummed again. A stamp is recorded only for
    folders whose files were last changed more than :data:`RACY` seconds before the check began (a change
    within the file system's timestamp granularity could otherwise keep the stamp). Damage that leaves every
    timestamp as it was (a disk's bit rot below the file system) is found by ``atlas run``, which always
    checksums, and by a render without the stamps file. Kept in ``<store>/cache/verified.json``; a store
    that cannot be written keeps none (every render checksums); a damaged stamps file counts as empty."""

    RACY = 2.0
    FILE = "verified.json"

    def __init__(self, path: Path):
        self.path = path
        self.start = time.time_ns()
        self.old: Dict[str, str] = {}
        self.new: Dict[str, str] = {}
        try:
            got = json.loads(path.read_bytes().decode("utf-8"))
            if isinstance(got, dict) and got.get("format") == 1 and isinstance(got.get("folders"), dict):
                self.old = {k: v for k, v in got["folders"].items() if isinstance(k, str) and isinstance(v, str)}
        except (OSError, ValueError, RecursionError):
            pass

    @staticmethod
    def of(folder: Path, meta) -> Tuple[Optional[str], int]:
        """(stamp of ``folder`` with the files ``meta`` records, newest change time in ns); (None, 0) if a
        file cannot be read or ``meta`` records none."""
        files = meta.get("files") if isinstance(meta, dict) else None
        if not isinstance(files, dict):
            return None, 0
        parts, newest = [], 0
        for name in ("meta.json", *sorted(files)):
            try:
                st = (folder / name).stat()
            except (OSError, ValueError):
                return None, 0
            parts.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}")
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        return sha256("\n".join(parts).encode())[:32], newest

    def trusted(self, rel: str, folder: Path, meta) -> bool:
        """``folder`` (``rel`` in the store) is unchanged since it was verified deeply."""
        want = self.old.get(rel)
        if want is None:
            return False
        stamp, _ = self.of(folder, meta)
        if stamp != want:
            return False
        self.new[rel] = stamp
        return True

    def verified(self, rel: str, folder: Path, meta) -> None:
        """``folder`` was just verified deeply: remember its stamp (unless a file changed too recently)."""
        stamp, newest = self.of(folder, meta)
        if stamp is not None and newest < self.start - int(self.RACY * 1e9):
            self.new[rel] = stamp

    def save(self) -> None:
        """Write the stamps: those of this reader, and the earlier ones of folders it did not look at
        (another plan's). A store that cannot be written keeps none."""
        folders = {**self.old, **self.new}
        if folders == self.old:
            return
        try:
            atomic_write(self.path, json.dumps({"format": 1, "folders": folders}, separators=(",", ":"),
                                               sort_keys=True).encode(), sync=False)
        except OSError:
            pass


class Store:
    """The store under ``root`` (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.failed_dir = self.root / "failed"
        self.cache_dir = self.root / "cache"
        self.stages_dir = self.root / "stages"
        self.metrics_dir = self.root / "metrics"
        self.stamps: Optional[Stamps] = None  # set within :meth:`stamped` (a render's gather)

    @contextmanager
    def stamped(self) -> Iterator["Stamps"]:
        """Within the block, checksummed reads (``meta(verify=True)``, ``stage_meta``) skip the checksums of
        folders unchanged since an earlier such read verified them (:class:`Stamps`); what was verified is
        kept when the block ends without an error."""
        before, self.stamps = self.stamps, Stamps(self.cache_dir / Stamps.FILE)
        try:
            yield self.stamps
            self.stamps.save()
        finally:
            self.stamps = before

    # ------------------------------------------------------------------ reading
    def job_dir(self, key: str) -> Path:
        return self.jobs_dir / key

    def has(self, key: str) -> bool:
        """True if the job is done: its metadata is well formed and every file has its recorded size
        (cheap: one ``stat`` per file; ``plan``, ``status`` and ``submit`` ask this of every job). A
        truncated image or a malformed ``meta.json`` is not done (warned once)."""
        return self.meta(key, verify="sizes") is not None

    def done(self, keys: Iterable[str]) -> Set[str]:
        """The keys among ``keys`` that are done (:meth:`has`), listing the store's jobs once: a plan of
        343 000 jobs asks without trying to open a file per pending job."""
        present = _names(self.jobs_dir)
        return {k for k in keys if k in present and self.has(k)}

    def failures(self, keys: Iterable[str]) -> Dict[str, dict]:
        """The failure record (:meth:`failure`) of each key among ``keys`` that has one."""
        present = _names(self.failed_dir)
        out = {}
        for k in keys:
            rec = self.failure(k) if f"{k}.json" in present else None
            if rec is not None:
                out[k] = rec
        return out

    def intact(self, key: str) -> bool:
        """True if the job is stored and every file matches its checksum (a corrupt job is logged)."""
        return self.meta(key, verify=True) is not None

    def meta(self, key: str, verify: bool | str = False) -> Optional[dict]:
        """The job's metadata, or None if it is missing, unreadable or malformed, or (with ``verify``) a
        file is missing or damaged: ``verify=True`` compares checksums, ``verify="sizes"`` only sizes."""
        path = self.jobs_dir / key / "meta.json"
        stamps, rel = self.stamps, f"jobs/{key}"
        if verify is True and stamps is not None and rel in stamps.old:
            meta = read_json(path, f"job {key}", lambda m: job_meta_problem(m, key, seal=False))
            if meta is not None and stamps.trusted(rel, path.parent, meta):
                return meta  # verified deeply before, not changed since
        meta = read_json(path, f"job {key}", lambda m: job_meta_problem(m, key))
        if meta is None:
            return None
        if verify and not self.verify(key, meta, deep=verify is True):
            return None
        if verify is True and stamps is not None:
            stamps.verified(rel, path.parent, meta)
        return meta

    def verify(self, key: str, meta: dict, deep: bool = True) -> bool:
        """True if every file recorded in ``meta`` exists with its recorded size and (``deep``) checksum."""
        return files_intact(self.jobs_dir / key, meta, f"job {key}", deep=deep)

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
        """The metadata of every stored job (well-formed records only; files not verified)."""
        if not self.jobs_dir.is_dir():
            return
        for d in sorted(self.jobs_dir.iterdir()):
            if d.name.startswith(".") or not d.is_dir():
                continue
            meta = self.meta(d.name)
            if meta is not None:
                yield meta

    def is_empty(self) -> bool:
        """True if the store holds no job folder at all (e.g. ``--store`` names a folder by mistake)."""
        try:
            return not any(not d.name.startswith(".") for d in self.jobs_dir.iterdir())
        except OSError:
            return True

    def failure(self, key: str) -> Optional[dict]:
        """The failure record of job ``key`` (None if none, or damaged: then the job is simply pending)."""
        return read_json(self.failed_dir / f"{key}.json", f"failure record of job {key}", _failure_problem)

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
            "checks": image_checks(vis.image),
            **checked_record(files),
            "derived": {name: sha256(data) for name, data in derived.items()},
        })
        if retry_of is not None:
            meta["retry_of"] = retry_of
        files.update(derived)
        files["meta.json"] = sealed_json(meta, default=float)  # any later change to it reads as damage
        final = atomic_folder(self.jobs_dir, job.key, files, lambda: self.intact(job.key))
        (self.failed_dir / f"{job.key}.json").unlink(missing_ok=True)
        return final

    # ------------------------------------------------------------------ stages
    def stage_dir(self, stage: str, key: str) -> Path:
        return self.stages_dir / stage / key

    def stage_meta(self, stage: str, key: str, verify: bool = True) -> Optional[dict]:
        """The record of a finished stage result, or None (missing; malformed, or with ``verify`` a file
        missing or corrupt: warned once)."""
        d = self.stage_dir(stage, key)
        what = f"stage {stage}/{key} (the next `atlas run` computes it again)"
        stamps, rel = self.stamps, f"stages/{stage}/{key}"
        if verify and stamps is not None and rel in stamps.old:
            meta = read_json(d / "meta.json", what, lambda m: stage_meta_problem(m, key, seal=False))
            if meta is not None and stamps.trusted(rel, d, meta):
                return meta  # verified deeply before, not changed since
        meta = read_json(d / "meta.json", what, lambda m: stage_meta_problem(m, key))
        if meta is None or (verify and not files_intact(d, meta, f"stage {stage}/{key}")):
            return None
        if verify and stamps is not None:
            stamps.verified(rel, d, meta)
        return meta

    def get_stage(self, stage: str, key: str, verify: bool = True) -> Optional[Path]:
        """The folder of a finished stage result, or None (missing, or corrupt with ``verify``)."""
        return self.stage_dir(stage, key) if self.stage_meta(stage, key, verify) is not None else None

    def put_stage(self, stage: str, key: str, files: Dict[str, bytes], meta: Optional[dict] = None) -> Path:
        """Store a stage result (named files + meta.json with their checksums and sizes) atomically."""
        record = dict(meta or {}, key=key, stage=stage, **checked_record(files),
                      created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        files = {**files, "meta.json": sealed_json(record, default=str)}
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
            meta = self.stage_meta(stage, d.name, verify=False)
            inputs = meta.get("inputs") if meta is not None else None
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
        shards = self.root / "shards"
        bases = [self.jobs_dir, self.failed_dir, self.cache_dir, self.metrics_dir, shards]
        if self.stages_dir.is_dir():
            bases += [d for d in self.stages_dir.iterdir() if d.is_dir()]
        deep = {self.cache_dir, self.metrics_dir, shards}  # nested writers (feature caches): every level
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


def _names(folder: Path) -> Set[str]:
    """The entries of ``folder`` (none if it does not exist or cannot be read)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()
