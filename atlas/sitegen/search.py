"""The search index: one small JSON document that the browser searches (no server).

It lists every class (id, name, further synonyms, WordNet id), the models, methods and seeds, the URL
patterns of class targets (from :mod:`.paths`) and which class images are *not* built, so that search,
the random-class button, the method filter and the compare page can be driven from it. Extensions add
their own entries (concepts, neurons, ...) to ``SiteBuild.search`` as ``{"label", "page", "kind"}``.

It is written twice: ``search.json`` for programs, and ``search-index.js`` (the same JSON assigned to
``window.ATLAS_INDEX``) for pages - browsers refuse ``fetch()`` of ``file://`` URLs, but a script tag works
from a local folder too. Image URLs need each figure's version (its job key): ``figure-versions.js`` holds
them, loaded only by the pages that build image URLs.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

from . import paths

VERSION = 1


def missing_images(build) -> Dict[str, List[int]]:
    """``{"<model>|<method>|<seed>": [class ids without a finished image]}`` (only non-empty lists)."""
    out: Dict[str, List[int]] = {}
    cfg = build.config
    for me in build.models:
        for m in cfg.methods:
            for s in cfg.seeds:
                ids = []
                for e in me.classes:
                    f = build.figures.get((me.name, m, _class_target(e.id), s))
                    if f is None or f.status != "done":
                        ids.append(e.id)
                if ids:
                    out[f"{me.slug}|{paths.method_slug(m)}|{s}"] = ids
    return out


def _class_target(class_id: int):
    from ..targets import Target

    return Target.of_class(class_id)


def search_index(build) -> Dict[str, Any]:
    """The index as plain data (see the module docstring)."""
    classes = {}
    for me in build.models:
        for e in me.classes:
            if e.id not in classes:
                extra = [s for s in e.synonyms if s != e.name]
                classes[e.id] = [e.id, e.name, "; ".join(extra), e.wnid]
    return {
        "version": VERSION,
        "title": build.config.title,
        "models": [{"name": me.name, "slug": me.slug, "page": me.page} for me in build.models],
        "methods": [{"name": m["name"], "slug": paths.method_slug(m["name"]), "title": m["title"],
                     "page": m["page"]} for m in build.methods],
        "seeds": list(build.config.seeds),
        "classes": [classes[c] for c in sorted(classes)],
        "patterns": paths.class_patterns(),
        "missing": missing_images(build),
        "pages": list(build.search),
    }


def figure_versions(build) -> Dict[str, List[str]]:
    """``{"<model>|<method>|<seed>": [job key of each class's image, "" where none]}`` in the index's class
    order: the ``{version}`` of the class patterns (images of a figure are named by its job key)."""
    order = sorted({e.id for me in build.models for e in me.classes})
    out: Dict[str, List[str]] = {}
    cfg = build.config
    for me in build.models:
        for m in cfg.methods:
            for s in cfg.seeds:
                keys = []
                for cid in order:
                    f = build.figures.get((me.name, m, _class_target(cid), s))
                    keys.append(f.version if f is not None and f.status == "done" else "")
                if any(keys):
                    out[f"{me.slug}|{paths.method_slug(m)}|{s}"] = keys
    return out


def figure_versions_script(build) -> bytes:
    """``window.ATLAS_VERSIONS = {...};`` (loaded by the pages that build image URLs: the method filter and
    the compare page; not by every page, as the index is)."""
    text = json.dumps(figure_versions(build), separators=(",", ":"), sort_keys=True)
    return f"window.ATLAS_VERSIONS={text};\n".encode("utf-8")


def index_json(index: Dict[str, Any]) -> bytes:
    return json.dumps(index, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def index_script(index: Dict[str, Any]) -> bytes:
    """``window.ATLAS_INDEX = {...};`` with ``<`` escaped, so no label can close a script element."""
    text = json.dumps(index, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"window.ATLAS_INDEX={text};\n".encode("utf-8")
