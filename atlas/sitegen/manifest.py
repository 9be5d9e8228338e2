"""``manifest.json``: the whole atlas for programs - every figure with its files, permalink, settings and
scores; every model's classes with their pages; the methods with their settings and papers.

All paths are relative to the site root. Keys are only ever added (``manifest_version`` says which set
a reader gets); extensions put their own data under ``SiteBuild.manifest_extra`` (one key each).
"""
from __future__ import annotations

from typing import Any, Dict

from .. import __version__
from . import paths

MANIFEST_VERSION = 2


def figure_record(fig, job) -> Dict[str, Any]:
    return {
        "key": fig.key, "model": fig.model, "method": fig.method, "target": fig.target.to_dict(),
        "seed": fig.seed, "status": fig.status, "page": fig.page, "png": fig.png or None,
        "alpha": fig.alpha or None, "masked": fig.masked or None, "thumb": fig.thumb or None,
        "config_hash": fig.config_hash, "settings": fig.settings,
        "scores": fig.meta.get("scores", {}), "reason": fig.reason or None,
        "created": fig.meta.get("created"), "seconds": fig.meta.get("seconds"),
    }


def manifest(build, figures, config_hash: str) -> Dict[str, Any]:
    cfg = build.config
    return {
        "manifest_version": MANIFEST_VERSION,
        "title": cfg.title, "atlas_version": __version__, "config_hash": config_hash, "preset": cfg.name,
        "models": list(cfg.models), "methods": list(cfg.methods), "seeds": list(cfg.seeds),
        "search_index": paths.SEARCH_JSON,
        "method_info": [{k: m[k] for k in ("name", "title", "summary", "paper", "bibtex", "settings", "page",
                                           "version")} for m in build.methods],
        "classes": {me.name: [{"id": e.id, "name": e.name, "wnid": e.wnid, "synonyms": e.synonyms,
                               "page": e.page, "references": [r["src"] for r in e.references]}
                              for e in me.classes] for me in build.models},
        "model_cards": {me.name: dict(me.facts) for me in build.models},
        "pages": sorted({p.path for p in build.pages if p.template not in ("figure.html", "class.html")}),
        "figures": figures,
        **{k: v for k, v in build.manifest_extra.items()},
    }
