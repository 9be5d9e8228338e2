"""The artifact store: one folder per finished job, written atomically, keyed by the job's hash.

Layout::

    <store>/jobs/<key>/image.png, alpha.png, [extras].png, meta.json
    <store>/failed/<key>.json          jobs that failed (NaN/Inf, ...), with the reason and step
    <store>/stages/<stage>/<key>/      results of shared stages (CRAFT concepts, neuron examples, ...)
    <store>/metrics/                   metric results (JSON)
    <store>/cache/                     small caches (magnitude spectra, ...)

A job folder is first written as ``jobs/.tmp-<key>-<host>-<pid>-<n>/`` and then renamed into place, so a
``jobs/<key>`` folder is always complete; a build killed at any moment leaves at most a temp folder, which
the next run removes (if its writer process is gone). ``meta.json`` records a SHA-256 of every file, so
a truncated or altered artifact is detected on read and recomputed.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from .. import __version__
from ..errors import AtlasError
from ..png import png_bytes
from .jobs import Job

log = logging.getLogger(__name__)
_HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
_counter = 0


#: Write failures the user fixes by freeing space or choosing another folder (not bugs).
DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class DiskError(AtlasError):
    """The output folder cannot be written (full, read-only, no permission): one line, exit status 1."""

    exit_code = 1


@contextmanager
def disk_errors(folder, option: str = "--store"):
    """Turn a full or read-only disk under ``folder`` into a one-line :class:`DiskError`. Writers clean up
    their temp files on the way out, so the folder stays consistent (every finished job still complete)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        what = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space"}.get(
            exc.errno, "make it writable")
        raise DiskError(f"cannot write to {str(folder)!r}: {exc.strerror or os.strerror(exc.errno)}; {what} "
                        f"and run again (finished work is kept), or choose another folder with {option}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _history(values, limit: int = 200):
    values = [float(v) for v in values]
    if len(values) <= limit:
        return values
    idx = np.linspace(0, len(values) - 1, limit).round().astype(int)
    return [values[i] for i in idx]


class Store:
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
        for name, digest in meta.get("files", {}).items():
            try:
                data = (self.jobs_dir / key / name).read_bytes()
            except OSError:
                log.warning("job %s: %s is missing; the job will be recomputed", key, name)
                return False
            if sha256(data) != digest:
                log.warning("job %s: %s is corrupt (checksum mismatch); the job will be recomputed", key, name)
                return False
        return True

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
        global _counter
        files: Dict[str, bytes] = {"image.png": png_bytes(vis.image), "alpha.png": png_bytes(vis.alpha)}
        for name, arr in vis.extras.items():
            files[f"{name}.png"] = png_bytes(arr)
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
        })
        if retry_of is not None:
            meta["retry_of"] = retry_of
        files["meta.json"] = json.dumps(meta, indent=1, sort_keys=True, default=float).encode()
        final = self.jobs_dir / job.key
        _counter += 1
        tmp = self.jobs_dir / f".tmp-{job.key}-{_HOST}-{os.getpid()}-{_counter}"
        tmp.mkdir(parents=True)
        try:
            for name, data in files.items():
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            if final.exists():  # a concurrent writer finished the same job, or a corrupt leftover
                if self.meta(job.key, verify=True) is not None:
                    shutil.rmtree(tmp)
                    return final
                trash = self.jobs_dir / f".trash-{job.key}-{_HOST}-{os.getpid()}-{_counter}"
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, final)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            if exc.errno in (39, 66):  # ENOTEMPTY: someone else renamed first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        if verify:
            for name, digest in meta.get("files", {}).items():
                try:
                    if sha256((d / name).read_bytes()) != digest:
                        log.warning("stage %s/%s: %s is corrupt; recomputing", stage, key, name)
                        return None
                except OSError:
                    log.warning("stage %s/%s: %s is missing; recomputing", stage, key, name)
                    return None
        return d

    def put_stage(self, stage: str, key: str, files: Dict[str, bytes], meta: Optional[dict] = None) -> Path:
        """Store a stage result (named files + meta.json with their checksums) atomically."""
        global _counter
        _counter += 1
        base = self.stages_dir / stage
        base.mkdir(parents=True, exist_ok=True)
        final = base / key
        tmp = base / f".tmp-{key}-{_HOST}-{os.getpid()}-{_counter}"
        tmp.mkdir()
        try:
            record = dict(meta or {}, key=key, stage=stage,
                          files={n: sha256(b) for n, b in files.items()},
                          created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            for name, data in {**files, "meta.json": json.dumps(record, indent=1, default=str).encode()}.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            if final.exists():
                if self.get_stage(stage, key) is not None:
                    shutil.rmtree(tmp)
                    return final
                trash = base / f".trash-{key}-{_HOST}-{os.getpid()}-{_counter}"
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno not in (17, 39, 66):  # EEXIST/ENOTEMPTY: a concurrent writer finished first
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

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
        from ..config import stable_hash

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
                if not (p.name.startswith(".tmp-") or p.name.startswith(".trash-") or p.name.endswith(".tmp")):
                    continue
                if _writer_alive(p.name):
                    continue
                if not p.exists() and not p.is_symlink():
                    continue  # inside a temp folder removed a moment ago
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed += 1
        return removed


def _writer_alive(name: str) -> bool:
    """True if the temp file ``name`` belongs to a live process on this host."""
    stem = name[:-4] if name.endswith(".tmp") else name
    tokens = stem.replace(".", "-").split("-")
    if _HOST not in tokens:
        return True  # another host's writer: leave it alone
    i = tokens.index(_HOST)
    try:
        pid = int(tokens[i + 1])
    except (IndexError, ValueError):
        return False
    return pid == os.getpid() or pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
