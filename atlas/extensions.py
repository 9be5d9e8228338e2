"""Import every module that registers something (target sources, site sections and pages, stages).

Methods register themselves in ``atlas.methods``; the rest is imported here, lazily, by the planner and the
site builder (``load_extensions()``), so that registration never creates an import cycle. A new feature adds
one line to ``MODULES``.
"""
from __future__ import annotations

import importlib

MODULES: tuple = (
    "atlas.sitegen.metrics_pages",
    "atlas.sitegen.skipped",
    "atlas.concepts.sources",
    "atlas.concepts.examples",
    "atlas.concepts.site",
    "atlas.methods.vital_targets",
    "atlas.seeded.plan",
    "atlas.seeded.site",
)

_loaded = False


def load_extensions() -> None:
    global _loaded
    if _loaded:
        return
    for name in MODULES:
        importlib.import_module(name)
    _loaded = True
