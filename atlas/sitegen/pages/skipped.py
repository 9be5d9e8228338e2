"""Class-page section: the methods the plan skipped for this class, each with its one-line reason (e.g.
DeepInversion on a model without BatchNorm, as VITAL's Table 1 leaves those cells empty)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .. import paths
from ..context import ClassEntry, ModelEntry, Section, SiteBuild


def skipped_index(build: SiteBuild) -> Dict[Tuple[str, int], List[dict]]:
    """{(model, class id): [{method, title, reason, page}]} for the class targets the plan skipped (one entry
    per method and reason, whatever the seeds); built once per site build."""
    cached = getattr(build, "_skipped_index", None)
    if cached is not None:
        return cached
    index: Dict[Tuple[str, int], List[dict]] = {}
    seen = set()
    for s in build.plan.skipped:
        if s.target.kind != "class" or (s.model, s.target.class_id, s.method, s.reason) in seen:
            continue
        seen.add((s.model, s.target.class_id, s.method, s.reason))
        index.setdefault((s.model, s.target.class_id), []).append({
            "method": s.method, "title": build.title(s.method), "reason": s.reason,
            "page": paths.method_page(s.method),
        })
    build._skipped_index = index  # a cache on this build's state object only
    return index


def skipped_section(build: SiteBuild, model: ModelEntry, entry: ClassEntry) -> Optional[Section]:
    items = skipped_index(build).get((model.name, entry.id))
    if not items:
        return None
    return Section(title="Methods not run for this class", template="_skipped.html", data=items, order=90)
