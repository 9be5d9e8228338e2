"""Progress bars: one per stage, with counts and ETA (tqdm), or silent.

``atlas -q`` silences every bar (:func:`set_enabled`), whoever opens it: runner, stages, methods.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


_ENABLED = True


def set_enabled(enabled: bool) -> None:
    """Allow (True) or silence (False) every progress bar of this process."""
    global _ENABLED
    _ENABLED = bool(enabled)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def stage(desc: str, total: int, unit: str = "job", enabled: bool = True) -> Iterator:
    """A progress bar for one stage; yields an object with ``update(n)`` and ``set_postfix_str``."""
    if not enabled or not _ENABLED or total <= 0:
        yield _Silent()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {n_fmt}/{total_fmt} {unit}s |{bar}| {elapsed}<{remaining}{postfix}")
    try:
        yield bar
    finally:
        bar.close()
