"""Import every module that registers something (target sources, site sections and pages, stages).

Methods register themselves in ``atlas.methods``; the rest is imported here, lazily, by the planner and the
site builder (``load_extensions()``), so that registration never creates an import cycle. A new feature adds
one line to ``MODULES``.
"""
from __future__ import annotations

import importlib

def _vital_cluster_targets() -> None:
    """VITAL's polysemantic-cluster targets: the method's target source, installed into the planner here."""
    from .methods.vital.targets import polysemantic_clusters
    from .pipeline.planner import TARGET_SOURCES

    TARGET_SOURCES.add("neuron_clusters", polysemantic_clusters)


#: Module names to import, or functions to call, in this order (the order of the planner's target sources).
MODULES: tuple = (
    "atlas.sitegen.metrics_pages",
    "atlas.sitegen.skipped",
    "atlas.concepts.sources",
    "atlas.concepts.examples",
    "atlas.concepts.site",
    _vital_cluster_targets,
    "atlas.seeded.plan",
    "atlas.seeded.site",
)

_loaded = False


def load_extensions() -> None:
    global _loaded
    if _loaded:
        return
    for entry in MODULES:
        entry() if callable(entry) else importlib.import_module(entry)
    _loaded = True
