"""Keep freed memory in the process: glibc's allocator otherwise hands every large block back to the system.

A step of an optimisation loop allocates and frees the same large blocks again and again (activations and
their gradients, a few MB each at a batch of 4 crops of 224 px). glibc serves a block above its mmap
threshold with a fresh ``mmap`` and unmaps it when it is freed, and trims the top of its heap once more
than its trim threshold is free there; both thresholds adapt to the sizes it sees, but not far enough for
these loops. Every such block is then faulted in page by page, zero-filled by the kernel, at every step:
EfficientNet-Lite0's forward+backward at batch 4 on one thread took ~12 000-14 000 minor page faults per
pass (50-55 MB) and ran 8-15 % slower than with the thresholds raised (0-250 faults), and the NumPy radix
sort of VITAL's stem features spent half its time in page faults (``bench/README.md``, "Freed memory kept").

:func:`keep_freed_memory` raises both thresholds for the process it runs in (``mallopt``; blocks up to
:data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of free heap stays mapped). The
process's resident memory then stays near its peak instead of falling between steps, and the peak rises a little
(``bench/ratios.py --methods maco,vital``: 1 313 MiB against 1 196 MiB, +10 %: freed blocks the heap keeps
are not always reused by the next, differently sized ones).
Atlas's command line and its worker processes call it at start; a caller who set glibc's own variables
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``) or ``ATLAS_KEEP_FREED_MEMORY=0``
keeps their choice, and elsewhere than glibc (macOS, musl, Windows) nothing changes.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: Blocks up to this size come from the heap instead of their own mapping (glibc's default starts at
#: 128 KiB and adapts up to 32 MiB; Lite0's largest activation at batch 4 is 19 MiB).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept mapped before glibc trims it (default: twice the mmap threshold).
TRIM_THRESHOLD = 512 * 1024 * 1024

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if they were set."""
    if os.environ.get("ATLAS_KEEP_FREED_MEMORY", "1") == "0" or any(v in os.environ for v in _USER_SETTINGS):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):  # no mallopt there
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not done:
        log.debug("mallopt refused the allocator thresholds; glibc's defaults stay")
    return done
