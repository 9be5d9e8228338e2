"""Writing files safely: whole files and whole folders appear at once or not at all, and a full or
read-only disk is a one-line error.

Every writer first writes a temp file or folder named after its host and process (``.<name>.<host>-<pid>.tmp``,
``.tmp-<key>-<host>-<pid>-<n>/``), syncs it, and renames it into place. A writer killed at any moment
leaves at most that temp entry, which :meth:`atlas.pipeline.store.Store.clean_temp` removes once its
process is gone (:func:`writer_alive`).
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict

from ..errors import AtlasError

_HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
_counter = 0  # numbers this process's temp folders


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


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and wait until it is on disk (a rename after it never exposes a hole)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: A rename into place that fails because another writer's folder got there first (EEXIST, or ENOTEMPTY
#: where renaming onto a non-empty folder says so): that writer's result stands.
_LOST_RACE = {errno.EEXIST, errno.ENOTEMPTY}


def atomic_folder(base: Path, key: str, files: Dict[str, bytes], intact: Callable[[], bool]) -> Path:
    """Write ``files`` (relative name -> bytes) as the folder ``base/key``, atomically; return its path.

    The files go to ``base/.tmp-<key>-<host>-<pid>-<n>/`` (each synced), which is then renamed to
    ``base/key``: a reader sees the whole folder or none of it, and a writer killed at any moment leaves
    only a temp folder (removed by :meth:`Store.clean_temp`). If ``base/key`` exists already and
    ``intact()`` (a concurrent writer finished the same work), it is kept; a corrupt one is moved aside and
    replaced. Nothing is left behind when writing fails (a full or read-only disk re-raises).
    """
    global _counter
    _counter += 1
    tag = f"{key}-{_HOST}-{os.getpid()}-{_counter}"
    final, tmp = base / key, base / f".tmp-{tag}"
    tmp.mkdir(parents=True)
    try:
        for name, data in files.items():
            if (tmp / name).parent != tmp:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            _write_synced(tmp / name, data)
        if final.exists():
            if intact():
                shutil.rmtree(tmp)
                return final
            trash = base / f".trash-{tag}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
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
    return name.startswith((".tmp-", ".trash-")) or name.endswith(".tmp")


def writer_alive(name: str) -> bool:
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
