"""Class-page section: the methods the plan skipped for this class, each with its one-line reason (e.g.
DeepInversion on a model without BatchNorm, as VITAL's Table 1 leaves those cells empty); the same index
gives the neuron pages theirs."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .. import paths
from ...targets import Target
from ..context import ClassEntry, ModelEntry, Section, SiteBuild


def skipped_index(build: SiteBuild) -> Dict[Tuple[str, Target], List[dict]]:
    """{(model, target): [{method, title, reason, page}]} for the targets the plan skipped (one entry per
    method and reason, whatever the seeds): the class pages' section and the neuron pages read it; built
    once per site build."""
    cached = getattr(build, "_skipped_index", None)
    if cached is not None:
        return cached
    index: Dict[Tuple[str, Target], List[dict]] = {}
    seen = set()
    for s in build.plan.skipped:
        if (s.model, s.target, s.method, s.reason) in seen:
            continue
        seen.add((s.model, s.target, s.method, s.reason))
        index.setdefault((s.model, s.target), []).append({
            "method": s.method, "title": build.title(s.method), "reason": s.reason,
            "page": paths.method_page(s.method),
        })
    build._skipped_index = index  # a cache on this build's state object only
    return index


def skipped_section(build: SiteBuild, model: ModelEntry, entry: ClassEntry) -> Optional[Section]:
    items = skipped_index(build).get((model.name, Target.of_class(entry.id)))
    if not items:
        return None
    return Section(title="Methods not run for this class", template="_skipped.html", data=items, order=90)
