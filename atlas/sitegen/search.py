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


def neuron_index(build) -> Dict[str, Any]:
    """The neurons with finished images, for the compare page: ``[[slug, label], ...]`` and, per
    ``"<model>|<method>|<seed>"``, the slugs that are done (one model's neurons are another checkpoint's
    of the same architecture), with the path of each one's view image (versioned: ``views``)."""
    labels: Dict[str, str] = {}
    done: Dict[str, List[str]] = {}
    views: Dict[str, Dict[str, str]] = {}
    for (model, method, target, seed), f in build.figures.items():
        if target.kind != "neuron" or f.status != "done":
            continue
        slug = target.slug()
        labels.setdefault(slug, f"{target.layer} #{target.channel}"
                          + (f" cluster {target.cluster}" if target.cluster is not None else ""))
        key = f"{paths.model_slug(model)}|{paths.method_slug(method)}|{seed}"
        done.setdefault(key, []).append(slug)
        views.setdefault(key, {})[slug] = f.view
    return {"list": [[k, labels[k]] for k in sorted(labels)], "done": {k: sorted(v) for k, v in done.items()},
            "views": views, "patterns": paths.target_patterns()}


def label_owners(build) -> Dict[str, str]:
    """Model slug -> the slug of the first model with the same labels (models with one label set share
    their class entries; a lab's own model has its own)."""
    first: Dict[str, str] = {}
    out = {}
    for me in build.models:
        info = build.plan.models.get(me.name)
        labels = getattr(info, "labels_id", "") if info is not None else ""
        out[me.slug] = first.setdefault(labels, me.slug)
    return out


def search_index(build) -> Dict[str, Any]:
    """The index as plain data (see the module docstring). Class entries are ``[id, name, synonyms, wnid]``
    for the first model's labels, and ``[id, name, synonyms, wnid, model]`` for another label set, named by
    the slug of the first model that has it (each model's ``labels`` in ``models``)."""
    owners = label_owners(build)
    main = build.models[0].slug if build.models else ""
    classes = {}
    for me in build.models:
        owner = owners[me.slug]
        for e in me.classes:
            if (owner, e.id) not in classes:
                extra = [s for s in e.synonyms if s != e.name]
                classes[(owner, e.id)] = [e.id, e.name, "; ".join(extra), e.wnid] + ([owner] if owner != main else [])
    return {
        "version": VERSION,
        "title": build.config.title,
        "models": [{"name": me.name, "slug": me.slug, "page": me.page, "labels": owners[me.slug]}
                   for me in build.models],
        "methods": [{"name": m["name"], "slug": paths.method_slug(m["name"]), "title": m["title"],
                     "page": m["page"]} for m in build.methods],
        "seeds": list(build.config.seeds),
        "classes": [classes[c] for c in sorted(classes, key=lambda k: (k[0] != main, k[0], k[1]))],
        "patterns": paths.class_patterns(),
        "missing": missing_images(build),
        "neurons": neuron_index(build),
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
