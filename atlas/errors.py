"""User-facing errors, and the one line every failure becomes.

Every problem caused by what the user asked for (an unknown model, method, class, layer, device or port;
a missing or unreadable data folder; settings the method cannot run or the machine cannot hold; weights
that are not available offline) is raised as :class:`AtlasError`. The command line prints every failure
as one line ``atlas: error: ...`` that names the bad value or file and the fix (:func:`failure_line`) and
exits with one of :data:`EXIT_CODES`; nothing is written before an input error is raised. A traceback is
printed only with ``atlas --debug`` or ``ATLAS_DEBUG=1``.
"""
from __future__ import annotations

import difflib
import errno
import os
from typing import Iterable, Tuple

#: The exit statuses of ``atlas``, documented in README ("Commands") and RELIABILITY.md.
EXIT_CODES = {
    0: "done",
    1: "the work could not be finished: a full or read-only disk, not enough memory, an internal error, "
       "or problems found by atlas check",
    2: "bad input: an option, a configuration value, a file or a device atlas cannot use (nothing written)",
    130: "interrupted (Ctrl-C); finished work is kept",
}
#: Set to 1 (or any non-empty value but 0) to see the traceback of every failure, as ``atlas --debug``.
DEBUG_ENV = "ATLAS_DEBUG"
_DEBUG_HINT = "run again with --debug (or ATLAS_DEBUG=1) to see the traceback"


def debug_requested() -> bool:
    """Whether ``ATLAS_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


class AtlasError(Exception):
    """An error the user can fix; ``str(err)`` is a single line naming the value and what is accepted."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def unknown_choice(kind: str, value: object, choices: Iterable[str]) -> AtlasError:
    """Return an error for ``value`` not among ``choices``, naming the closest matches or all choices."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif len(choices) <= 20:
        hint = "choose from: " + ", ".join(choices)
    else:
        hint = f"choose from {len(choices)} names, e.g. " + ", ".join(choices[:8]) + ", ..."
    return AtlasError(f"unknown {kind} {value!r}; {hint}")


class Unsupported(AtlasError):
    """A method cannot visualise a target on the loaded model (e.g. DeepInversion on a model without
    BatchNorm). The runner records the job as failed with this one-line reason and goes on."""


class SourceSkipped(Exception):
    """Raised by a target source that does not apply to a model (its one-line reason): the plan records it
    and goes on, as a multi-model preset asks for e.g. concepts only where a model has a concept layer."""


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


#: What the user can do about an operating-system error, by errno.
_OS_FIXES = {
    errno.ENOSPC: "free some disk space and run again (finished work is kept)",
    errno.EDQUOT: "free some disk space and run again (finished work is kept)",
    errno.EROFS: "make it writable or choose another folder",
    errno.EACCES: "check its permissions or choose another folder",
    errno.EPERM: "check its permissions or choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder where a file was expected: choose another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.EMFILE: "raise the open-file limit (ulimit -n) or run fewer processes at once",
    errno.ENOMEM: "lower batch_size, image_size or crops, or free memory",
}


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                           or "not enough memory" in text))


def failure_line(exc: BaseException) -> Tuple[str, int]:
    """The one line (without the ``atlas: error:`` prefix) and the exit status for a failure.

    :class:`AtlasError`: its message and status. An ``OSError``: the file and what to do about it.
    Running out of memory: what to lower. Anything else is a bug in atlas: its type and message, and how
    to see the traceback. Never more than one line.
    """
    if isinstance(exc, AtlasError):
        return _one_line(exc, 1000), exc.exit_code
    if _is_out_of_memory(exc):
        return (f"out of memory ({_one_line(exc, 120)}); lower batch_size, image_size or crops, or use a device "
                f"with more memory (atlas plan shows the estimate); {_DEBUG_HINT}"), 1
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else ""
        what = exc.strerror or _one_line(exc, 120) or type(exc).__name__
        fix = _OS_FIXES.get(exc.errno, _DEBUG_HINT)
        where = f" {str(name)!r}" if name != "" else ""
        return f"cannot use{where}: {what}; {fix}", 1
    return (f"internal error ({type(exc).__name__}: {_one_line(exc, 200)}); {_DEBUG_HINT}, and please "
            f"report it"), 1
