"""``manifest.json``: the whole atlas for programs - every figure with every version it has been published
in (URLs, job key, settings hash and settings), its scores; every model's classes with their pages; the
methods with their settings and papers.

Paths are relative to the root of the tree that holds them; ``urls`` give each version's files as links:
absolute where the site knows its addresses (``pages_url``, ``assets_url``), else relative to the site root.
Keys are only ever added (``manifest_version`` says which set a reader gets); extensions put their own data
under ``SiteBuild.manifest_extra`` (one key each). It is written to the assets tree (it is large).
"""
from __future__ import annotations

import json
from typing import Any, Dict

from .. import __version__
from . import paths

MANIFEST_VERSION = 3


def _link(build, path: str) -> str:
    """``path`` as a program should fetch it: absolute if the site knows the address of its tree."""
    trees = build.trees
    base = trees.assets_url if trees.external and trees.tree(path) == "assets" else trees.site_url
    return (base or "") + path


def figure_record(build, fig, job) -> Dict[str, Any]:
    """One figure: its current state and every version published (newest first)."""
    versions = []
    if fig.status == "done":
        files = {"page": fig.version_page, "png": fig.png, "alpha": fig.alpha, "thumb": fig.thumb,
                 "view": fig.view}
        versions.append({"key": fig.key, "current": True, "published": _published(build, fig),
                         "config_hash": fig.config_hash, "settings": fig.settings,
                         "method_version": job.version, "data": dict(job.data),
                         "urls": {k: _link(build, v) for k, v in files.items()}})
    for v in fig.earlier:
        versions.append({"key": v["version"], "current": False, "published": v["published"],
                         "differences": [list(d) for d in v["differences"]],
                         "urls": {"page": _link(build, v["page"])}})
    return {
        "key": fig.key, "model": fig.model, "method": fig.method, "target": fig.target.to_dict(),
        "seed": fig.seed, "status": fig.status, "page": fig.page, "png": fig.png or None,
        "alpha": fig.alpha or None, "masked": None, "thumb": fig.thumb or None, "view": fig.view or None,
        "version_page": fig.version_page or None,
        "config_hash": fig.config_hash, "settings": fig.settings,
        "scores": fig.meta.get("scores", {}), "reason": fig.reason or None,
        "created": fig.meta.get("created"), "seconds": fig.meta.get("seconds"), "versions": versions,
    }


def _published(build, fig) -> str:
    for v in build.published.of(fig.page):
        if v.version == fig.version:
            return v.published
    return ""


def manifest(build, figures, config_hash: str) -> Dict[str, Any]:
    cfg = build.config
    trees = build.trees
    figure_pages = {f.page for f in build.figures.values()}
    return {
        "manifest_version": MANIFEST_VERSION,
        "title": cfg.title, "atlas_version": __version__, "config_hash": config_hash, "preset": cfg.name,
        "pages_url": trees.site_url, "assets_url": trees.assets_url,
        "models": list(cfg.models), "methods": list(cfg.methods), "seeds": list(cfg.seeds),
        "search_index": paths.SEARCH_JSON,
        "method_info": [{k: m[k] for k in ("name", "title", "summary", "paper", "bibtex", "settings", "page",
                                           "version")} for m in build.methods],
        "classes": {me.name: [{"id": e.id, "name": e.name, "wnid": e.wnid, "synonyms": e.synonyms,
                               "page": e.page, "references": [r["src"] for r in e.references]}
                              for e in me.classes] for me in build.models},
        "model_cards": {me.name: dict(me.facts) for me in build.models},
        "pages": sorted({p.path for p in build.pages if p.template not in ("figure.html", "class.html")
                         and p.version is None}),
        "versioned_pages": {plain: [v.page for v in build.published.of(plain)]  # concept, neuron pages
                            for plain in sorted(build.versions) if plain not in figure_pages
                            and build.published.of(plain)},
        "figures": figures,
        **{k: v for k, v in build.manifest_extra.items()},
    }


def manifest_bytes(data: Dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode()
