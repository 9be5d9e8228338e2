"""Progress bars: one per stage, with counts and ETA (tqdm), or silent.

``atlas -q`` silences every bar (:func:`set_enabled`), whoever opens it: runner, stages, methods.

Every stage's wall seconds are also appended to :data:`TIMINGS` (``(description, seconds, depth)``, depth 0
for a stage not inside another), bar or no bar: ``bench/demo.py`` reads them to split a build's time.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, List, Tuple

#: ``(description, seconds, depth)`` of every stage that ended in this process, in the order they ended.
TIMINGS: List[Tuple[str, float, int]] = []
_depth = [0]


_ENABLED = True


def set_enabled(enabled: bool) -> None:
    """Allow (True) or silence (False) every progress bar of this process."""
    global _ENABLED
    _ENABLED = bool(enabled)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass


@contextmanager
def stage(desc: str, total: int, unit: str = "job", enabled: bool = True, own_eta: bool = False) -> Iterator:
    """A progress bar for one stage; yields an object with ``update(n)`` and ``set_postfix_str``. With
    ``own_eta`` the bar shows no remaining time of its own (tqdm's, from the count's rate): the caller
    writes one into the postfix, e.g. from estimated costs when the costliest items come first."""
    start, depth = time.perf_counter(), _depth[0]
    _depth[0] += 1
    try:
        if not enabled or not _ENABLED or total <= 0:
            yield _Silent()
            return
        from tqdm import tqdm

        eta = "" if own_eta else "<{remaining}"
        bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                   bar_format="{desc}: {n_fmt}/{total_fmt} {unit}s |{bar}| {elapsed}" + eta + "{postfix}")
        try:
            yield bar
        finally:
            bar.close()
    finally:
        _depth[0] = depth
        if total > 0:
            TIMINGS.append((desc, time.perf_counter() - start, depth))
