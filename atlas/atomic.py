"""Writing files safely - the one implementation every room uses (the store, caches, the MACO spectrum,
metrics, submissions, the site): whole files and whole folders appear at once or not at all, a full or
read-only disk is a one-line error, and a folder of files records each file's size and checksum so that a
reader can tell a finished result from a damaged one.

Every writer first writes a temp file or folder named after its host and process (``.<name>.<host>-<pid>.tmp``,
``.tmp-<key>-<host>-<pid>-<n>/``), syncs it, and renames it into place. A writer killed at any moment
leaves at most that temp entry, which :meth:`atlas.pipeline.store.Store.clean_temp` removes once its
process is gone (:func:`writer_alive`).

*Checked folders* (a job's files, a stage result, a cached spectrum) hold their files and a ``meta.json``
that records ``files`` (name -> SHA-256) and ``sizes`` (name -> bytes). :func:`files_intact` checks them:
cheaply (sizes, one ``stat`` per file: what ``plan``, ``status`` and ``submit`` afford for every job) or
fully (checksums: before a result is used or shown).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .errors import AtlasError

log = logging.getLogger("atlas.atomic")

HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
_counter = 0  # numbers this process's temp folders


#: Write failures the user fixes by freeing space or choosing another folder (not bugs).
DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
#: A file where a folder must go or a folder where a file must go (e.g. a damaged store): the user moves it.
IN_THE_WAY = {errno.EISDIR, errno.ENOTDIR}


class DiskError(AtlasError):
    """The output folder cannot be written (full, read-only, no permission): one line, exit status 1."""

    exit_code = 1


def disk_error(exc: OSError, folder, option: str = "--store") -> DiskError:
    """The one-line :class:`DiskError` for ``exc`` (an OSError whose errno is in :data:`DISK_ERRORS` or
    :data:`IN_THE_WAY`)."""
    if exc.errno in IN_THE_WAY:
        where = exc.filename2 or exc.filename or folder
        return DiskError(f"cannot write {str(where)!r} under {str(folder)!r}: {exc.strerror or os.strerror(exc.errno)} "
                         f"(a file or folder of another kind is in the way); move it away and run again")
    what = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space"}.get(
        exc.errno, "make it writable")
    return DiskError(f"cannot write to {str(folder)!r}: {exc.strerror or os.strerror(exc.errno)}; {what} "
                     f"and run again (finished work is kept), or choose another folder with {option}")


@contextmanager
def disk_errors(folder, option: str = "--store"):
    """Turn a full or read-only disk under ``folder`` into a one-line :class:`DiskError`. Writers clean up
    their temp files on the way out, so the folder stays consistent (every finished job still complete)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRORS and exc.errno not in IN_THE_WAY:
            raise
        raise disk_error(exc, folder, option) from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_all(path: Path, data: bytes, sync: bool) -> None:
    """Write ``data`` to ``path`` with ``os.write`` (a short write on a full disk raises ENOSPC as an
    OSError with its errno, never a bare "n requested and m written") and, with ``sync``, wait until it is
    on disk (a rename after it never exposes a hole)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:  # pragma: no cover - a full disk raises; never loop forever
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            view = view[n:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    """The temp file a writer of ``name`` in this process uses (its host and process id in the name)."""
    return f".{name}.{HOST}-{os.getpid()}.tmp"


def atomic_write(path, data: bytes, sync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename. ``sync`` waits until the
    bytes are on disk first (the store); a site, which can always be written again, skips it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        _write_all(tmp, bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data, sync)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: copy_file_range cannot copy between these files (another file system on an old kernel, no support):
#: the bytes are read and written instead
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}


def _copy_fd(src: int, dst: int) -> int:
    """Copy what is left of the file ``src`` to ``dst``: by the kernel (``copy_file_range``: no bytes pass
    through Python; a file system that shares extents, as XFS or Btrfs, makes a copy-on-write clone: an
    independent file that costs no space), else read and written. Returns the bytes copied."""
    n = 0
    kernel = hasattr(os, "copy_file_range")
    while kernel:
        try:
            k = os.copy_file_range(src, dst, 1 << 30)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            break
        if k == 0:  # the end (or a file system that copies nothing this way: the loop below finds out)
            break
        n += k
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            return n
        view = memoryview(chunk)
        while view:
            k = os.write(dst, view)
            if k <= 0:  # pragma: no cover - a full disk raises
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view, n = view[k:], n + k


def atomic_copy(src, path) -> int:
    """Copy the file ``src`` to ``path`` as :func:`atomic_write` writes (a temp file, then a rename; no
    sync: for the site, which can always be written again). ``path`` is a file of its own, never a link to
    ``src``: a later change to ``src`` does not reach it. Returns the bytes copied."""
    path = Path(path)
    tmp = path.with_name(temp_name(path.name))
    try:
        with open(src, "rb") as fi:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                n = _copy_fd(fi.fileno(), fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        return n
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: A rename into place that fails because another writer's folder got there first (EEXIST, or ENOTEMPTY
#: where renaming onto a non-empty folder says so): that writer's result stands.
_LOST_RACE = {errno.EEXIST, errno.ENOTEMPTY}


def atomic_folder(base, key: str, files: Dict[str, bytes], intact: Callable[[], bool]) -> Path:
    """Write ``files`` (relative name -> bytes) as the folder ``base/key``, atomically; return its path.

    The files go to ``base/.tmp-<key>-<host>-<pid>-<n>/`` (each synced), which is then renamed to
    ``base/key``: a reader sees the whole folder or none of it, and a writer killed at any moment leaves
    only a temp folder (removed by :meth:`Store.clean_temp`). If ``base/key`` exists already and
    ``intact()`` (a concurrent writer finished the same work), it is kept; a corrupt one is moved aside and
    replaced. Nothing is left behind when writing fails (a full or read-only disk re-raises).
    """
    global _counter
    _counter += 1
    base = Path(base)
    tag = f"{key}-{HOST}-{os.getpid()}-{_counter}"
    final, tmp = base / key, base / f".tmp-{tag}"
    tmp.mkdir(parents=True)
    try:
        for name, data in files.items():
            if (tmp / name).parent != tmp:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            _write_all(tmp / name, data, sync=True)
        if final.exists() or final.is_symlink():
            if final.is_dir() and intact():
                shutil.rmtree(tmp)
                return final
            trash = base / f".trash-{tag}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink(missing_ok=True)
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno not in _LOST_RACE:
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def is_temp(name: str) -> bool:
    """Whether ``name`` is a writer's temp file or folder (or a corrupt folder moved aside)."""
    return name.startswith((".tmp-", ".trash-")) or (name.startswith(".") and name.endswith(".tmp"))


def writer_alive(name: str) -> bool:
    """True if the temp file ``name`` belongs to a live process on this host."""
    stem = name[:-4] if name.endswith(".tmp") else name
    tokens = stem.replace(".", "-").split("-")
    if HOST not in tokens:
        return True  # another host's writer: leave it alone
    i = tokens.index(HOST)
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
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


# ---------------------------------------------------------------------------------------- checked folders
def checked_record(files: Dict[str, bytes]) -> Dict[str, Dict[str, Any]]:
    """What a checked folder's ``meta.json`` records of its ``files``: checksums and sizes."""
    return {"files": {n: sha256(b) for n, b in files.items()}, "sizes": {n: len(b) for n, b in files.items()}}


def _is_hex64(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def record_problem(meta, required=(), key: Optional[str] = None) -> Optional[str]:
    """Why ``meta`` (a parsed ``meta.json``) is not the record of a checked folder, or None if it is:
    a JSON object whose ``files`` maps safe relative names to SHA-256s and whose ``sizes`` (optional:
    folders written before sizes were recorded) maps the same names to byte counts. ``required`` names
    files the record must list; ``key``, the key the record must name (the folder's name)."""
    if not isinstance(meta, dict):
        return f"not a JSON object ({type(meta).__name__})"
    if key is not None and meta.get("key") != key:
        return f"its key is {str(meta.get('key'))[:24]!r}, not {key!r}"
    files = meta.get("files")
    if not isinstance(files, dict):
        return "no file checksums recorded"
    for name, digest in files.items():
        parts = Path(name).parts
        if not name or name.startswith("/") or ".." in parts or "\\" in name or not _is_hex64(digest):
            return f"bad file entry {str(name)[:40]!r}"
    for name in required:
        if name not in files:
            return f"{name} not recorded"
    sizes = meta.get("sizes")
    if sizes is not None:
        if not isinstance(sizes, dict) or set(sizes) != set(files) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values()):
            return "bad file sizes"
    return None


def files_intact(folder: Path, meta: dict, what: str, deep: bool = True) -> bool:
    """True if every file recorded in ``meta`` (a record :func:`record_problem` accepts) is in ``folder``
    with its recorded size and, if ``deep``, its checksum. A record without sizes (older folders) is
    always checked deeply. A missing or damaged file is warned about once (``what`` names the job or
    stage result) and the caller treats the folder as missing: it will be recomputed."""
    sizes = meta.get("sizes")
    for name, digest in meta["files"].items():
        path = Path(folder) / name
        try:
            if deep or sizes is None:
                data = path.read_bytes()
                bad = "size" if sizes is not None and len(data) != sizes[name] else (
                    "checksum" if sha256(data) != digest else None)
            else:
                bad = "size" if path.stat().st_size != sizes[name] else None
        except (OSError, ValueError):
            warn_once(path, f"{what}: {name} is missing; it will be recomputed")
            return False
        if bad:
            warn_once(path, f"{what}: {name} is corrupt ({bad} mismatch); it will be recomputed")
            return False
    return True


# ------------------------------------------------------------------------------------------ warned once
_warned: set = set()


def warn_once(path, message: str) -> None:
    """Log ``message`` as a warning the first time this process meets this problem with this state of
    ``path`` (``status`` and ``render`` look at every job several times; one damaged file is one warning)."""
    try:
        st = os.stat(path)
        state = (st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):
        state = None
    token = (str(path), state, message)
    if token not in _warned:
        _warned.add(token)
        log.warning("%s", message)


def read_json(path, what: str, problem: Optional[Callable[[Any], Optional[str]]] = None, missing_ok: bool = True):
    """The JSON value in ``path``, or None when the file is missing (silently, with ``missing_ok``) or
    damaged: unreadable, not UTF-8, not JSON, or of the wrong shape (``problem(value)`` returns why, or
    None when the value is fine). Damage is warned about once, naming ``what`` and the file; the caller
    treats the entry as missing (it is recomputed or rebuilt). Never raises for what is in the file."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        if not missing_ok:
            warn_once(path, f"{what}: {path.name} is missing; treated as missing")
        return None
    except IsADirectoryError:
        warn_once(path, f"{what}: {path.name} is not a file; treated as missing")
        return None
    except (OSError, ValueError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON" if isinstance(
            exc, (ValueError, RecursionError)) else (exc.strerror or type(exc).__name__)
        warn_once(path, f"{what}: {path.name} is unreadable ({reason}); treated as missing")
        return None
    why = problem(value) if problem is not None else None
    if why:
        warn_once(path, f"{what}: {path.name} is malformed ({why}); treated as missing")
        return None
    return value


def is_int(value) -> bool:
    """A JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------ sealed records
#: the field of a sealed JSON record that holds the SHA-256 of the rest of the record
SEAL = "sha256"


def _seal_of(record: dict) -> str:
    """SHA-256 of the record without its seal, as sorted compact JSON (a parsed JSON document dumps to the
    same text it was dumped from, so writer and reader agree)."""
    rest = {k: v for k, v in record.items() if k != SEAL}
    return sha256(json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def sealed_json(record: dict, default=None) -> bytes:
    """``record`` as JSON text with a :data:`SEAL` field: the checksum of its own content, so that a reader
    (:func:`seal_problem`) tells any change to the file - damage of any shape - from the record atlas
    wrote. For records too rich to check field by field (metric results)."""
    plain = json.loads(json.dumps(record, sort_keys=True, default=default))
    plain[SEAL] = _seal_of(plain)
    return json.dumps(plain, indent=1, sort_keys=True).encode()


def seal_problem(value) -> Optional[str]:
    """Why ``value`` is not a sealed record as :func:`sealed_json` wrote it (None if it is)."""
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    if not isinstance(value.get(SEAL), str):
        return "no checksum"
    try:
        ok = value[SEAL] == _seal_of(value)
    except (TypeError, ValueError):
        ok = False
    return None if ok else "checksum mismatch"
