"""Phase 1 of the site build: gather every page's data from the plan and the store (no model is loaded,
nothing is written). A page is a data object; templates only format it.

Extension points (other features plug in here without touching the core pages):

* :data:`CLASS_SECTIONS` - ``section(build, model_entry, class_entry) -> Section | None``: a block on a
  class page (concept cards, cluster chart, metrics, accentuations, ...). ``Section.template`` is a
  template file of the extension that formats ``section.data``; it sees ``section``, ``entry``, ``model``,
  ``url`` and the common context. Sections appear in ``order`` and are listed in the page's "jump to"
  links under ``Section.title`` (anchor ``#sec-<name>``). CSS hooks for their content are documented at
  the end of ``templates/static/style.css`` (panel grids, importance bars, mosaics, charts, tables).
* :data:`PAGE_SOURCES` - ``source(build) -> None``: appends :class:`Page` objects to ``build.pages``
  (concept, neuron, metrics, t-SNE pages); ``nav_title`` puts a page in the top navigation. Sources may
  also add search entries (``build.search.append({"label", "page", "kind"})``), assets
  (``build.add_asset``) and manifest data (``build.manifest_extra[name] = ...``).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from .. import __version__
from ..bibtex import ATLAS_BIBTEX
from ..config import stable_hash
from ..registry import Registry
from ..targets import Target
from . import assets, paths
from .cite import figure_bibtex
from .entries import ClassEntry, Figure, ModelEntry, Page, Section, SiteBuild, SiteData

if TYPE_CHECKING:
    from ..pipeline.planner import MethodInfo, Plan
    from ..pipeline.store import Store
from .manifest import figure_record, manifest
from .search import index_json, index_script, search_index

__all__ = ["CLASS_SECTIONS", "PAGE_SOURCES", "ClassEntry", "Figure", "ModelEntry", "Page", "Section", "SiteBuild",
           "SiteData", "gather", "method_info"]

#: Class-page sections: ``section(build, model_entry, class_entry) -> Section | None``.
CLASS_SECTIONS: Registry[Callable[[SiteBuild, "ModelEntry", ClassEntry], Optional[Section]]] = Registry("class section")
#: Page sources: ``source(build) -> None`` appends pages (concept, neuron, metrics, t-SNE pages, ...).
PAGE_SOURCES: Registry[Callable[[SiteBuild], None]] = Registry("page source")


def method_info(info: "MethodInfo") -> Dict[str, Any]:
    """A method as pages show it (from the plan's record of it; no method is imported)."""
    return {"name": info.name, "title": info.title, "summary": info.summary, "paper": info.paper,
            "bibtex": info.bibtex, "settings": info.settings, "page": paths.method_page(info.name),
            "version": info.version, "slug": paths.method_slug(info.name), "kinds": list(info.kinds)}


def _config_info(job, cache: Dict[Any, Any]) -> tuple:
    """(settings dict, settings hash) of a job's method config, computed once per config object."""
    got = cache.get(id(job.config))
    if got is None or got[0] is not job.config:
        settings = dataclasses.asdict(job.config)
        got = cache[id(job.config)] = (job.config, settings, stable_hash(settings, length=12))
    return got[1], got[2]


def _figure(store: "Store", job, class_names, title: str, configs: Dict[Any, Any]) -> Figure:
    t = job.target
    stem = paths.figure_stem(job.model, job.method, t, job.seed)
    label = f"{class_names[t.class_id]} ({t.class_id})" if t.class_id is not None else t.slug()
    if t.kind == "concept":
        label += f" · concept {t.concept + 1}"
    fig = Figure(
        key=job.key, model=job.model, method=job.method, method_title=title, target=t,
        seed=job.seed, status="pending", page=paths.figure_page(job.model, job.method, t, job.seed),
        title=f"{title} · {label} · seed {job.seed}",
        model_page=paths.model_page(job.model),
        class_page=paths.class_page(job.model, t.class_id) if t.class_id is not None else None,
        label=label, precision=getattr(job, "precision", ""),
    )
    fig.settings, fig.config_hash = _config_info(job, configs)
    meta = store.meta(job.key, verify=True)  # a corrupt job shows as pending, never as a broken image
    if meta is not None:
        fig.status, fig.meta = "done", meta
        f = paths.FIGURE_FILES
        fig.png, fig.alpha, fig.masked, fig.thumb, fig.view = (
            stem + f["png"], stem + f["alpha"], stem + f["masked"], stem + f["thumb"], stem + f["view"])
        fig.size = tuple(meta.get("size", ()))
    else:
        failure = store.failure(job.key)
        if failure is not None:
            fig.status = "failed"
            step = failure.get("step")
            fig.reason = failure.get("reason", "failed") + (f" (step {step})" if step is not None else "")
    return fig


def _figure_assets(b: SiteBuild, fig: Figure) -> None:
    d = b.store.job_dir(fig.key)
    b.add_asset(fig.png, partial(assets.file_bytes, d / "image.png"))
    b.add_asset(fig.alpha, partial(assets.file_bytes, d / "alpha.png"))
    b.add_asset(fig.masked, partial(assets.masked_png, d / "image.png", d / "alpha.png"))
    b.add_asset(fig.thumb, partial(assets.thumb_webp, d / "image.png"))
    b.add_asset(fig.view, partial(assets.view_webp, d / "image.png"))
    stem = fig.png[:-4]
    for extra in fig.meta.get("files", {}):
        if extra not in ("image.png", "alpha.png"):
            b.add_asset(f"{stem}-{extra}", partial(assets.file_bytes, d / extra))


def _class_entries(b: SiteBuild, model: str) -> List[ClassEntry]:
    from ..pipeline.references import class_reference_files

    entries = []
    first_seed = b.config.seeds[0]
    info = b.plan.models[model]
    for cid in b.plan.classes.get(model, []):
        name = info.class_names[cid]
        entry = ClassEntry(id=cid, name=name, synonyms=list(info.synonyms[cid]), wnid=info.wnids[cid],
                           page=paths.class_page(model, cid))
        entry.methods = b.figures_for(model, Target.of_class(cid))
        entry.thumb = next((f.thumb for _, _, figs in entry.methods for f in figs if f.status == "done"), "")
        entry.done_methods = [m for m, _, figs in entry.methods
                              if any(f.status == "done" and f.seed == first_seed for f in figs)]
        entry.missing_methods = [paths.method_slug(m) for m in b.config.methods if m not in entry.done_methods]
        for i, src in enumerate(class_reference_files(b.config, b.store, cid)):
            rel = b.add_asset(paths.reference_image(cid, i), partial(assets.file_bytes, src))
            entry.references.append({"src": rel, "alt": f"Real image {i + 1} of class {name} ({cid})"})
        entries.append(entry)
    for i, e in enumerate(entries):
        if i > 0:
            e.prev, e.prev_name = entries[i - 1].page, f"{entries[i - 1].name} ({entries[i - 1].id})"
        if i + 1 < len(entries):
            e.next, e.next_name = entries[i + 1].page, f"{entries[i + 1].name} ({entries[i + 1].id})"
    return entries


def _status_counts(figs) -> Dict[str, int]:
    counts = {"done": 0, "failed": 0, "pending": 0}
    for f in figs:
        counts[f.status] += 1
    return counts


def gather(plan: "Plan", store: "Store") -> SiteData:
    """All pages and assets of the site for ``plan``, reading only the plan and the store."""
    cfg = plan.config
    config_hash = stable_hash(cfg)
    b = SiteBuild(plan=plan, store=store)
    b.methods = [method_info(plan.methods[m]) for m in cfg.methods]
    manifest_figs, configs = [], {}
    for job in plan.jobs:
        fig = _figure(store, job, b.class_names(job.model), b.title(job.method), configs)
        b.figures[(job.model, job.method, job.target, job.seed)] = fig
        if fig.status == "done":
            _figure_assets(b, fig)
        manifest_figs.append(figure_record(fig, job))
        b.pages.append(Page(fig.page, "figure.html", {"figure": fig}))

    for model in cfg.models:
        entries = _class_entries(b, model)
        b.models.append(ModelEntry(name=model, slug=paths.model_slug(model), page=paths.model_page(model),
                                   classes=entries, methods=list(cfg.methods),
                                   counts=_status_counts(f for f in b.figures.values() if f.model == model)))
    pages_by_class: Dict[int, List[tuple]] = {}
    for me in b.models:
        for e in me.classes:
            pages_by_class.setdefault(e.id, []).append((me.name, e.page))
    for me in b.models:
        for e in me.classes:
            e.other_models = [(n, p) for n, p in pages_by_class[e.id] if n != me.name]

    for me in b.models:
        for e in me.classes:
            for _, section in CLASS_SECTIONS.in_order():
                got = section(b, me, e)
                if got is not None:
                    e.sections.append(got)
            e.sections.sort(key=lambda sec: sec.order)
    for _, source in PAGE_SOURCES.in_order():
        source(b)
    for page in b.pages:  # related figures: other methods (same seed) and other seeds of the same target
        if page.template == "figure.html" and "figure" in page.context:
            fig = page.context["figure"]
            related = b.figures_for(fig.model, fig.target)
            page.context.setdefault("other_methods", [(title, f) for name, title, figs in related if name != fig.method
                                                      for f in figs if f.seed == fig.seed])
            page.context.setdefault("other_seeds", [f for name, _, figs in related if name == fig.method
                                                    for f in figs if f.seed != fig.seed])
    for me in b.models:
        b.pages.append(Page(me.page, "model.html", {"model": me}))
        for e in me.classes:
            b.pages.append(Page(e.page, "class.html", {"model": me, "entry": e}))

    nav = [(p.nav_title, p.path) for p in b.pages if p.nav_title]
    common = {"methods": b.methods, "models": b.models, "counts": _status_counts(b.figures.values()),
              "config": cfg, "nav": nav, "config_hash": config_hash, "version": __version__,
              "atlas_bibtex": ATLAS_BIBTEX % {"version": __version__, "config": config_hash},
              "class_names": b.class_names(cfg.models[0]), "patterns": paths.class_patterns(), "figure_bibtex": partial(figure_bibtex, version=__version__)}
    b.pages.append(Page("index.html", "index.html", {}))
    b.pages.append(Page("about.html", "about.html", {}))
    b.pages.append(Page(paths.COMPARE_PAGE, "compare.html", {}))
    for m in b.methods:
        b.pages.append(Page(m["page"], "method.html", {"method": m}))
    for p in b.pages:
        p.context = {**common, **p.context}
    index = search_index(b)
    b.add_asset(paths.SEARCH_JSON, partial(index_json, index))
    b.add_asset(paths.SEARCH_JS, partial(index_script, index))
    return SiteData(title=cfg.title, pages=b.pages, assets=b.assets,
                    manifest=manifest(b, manifest_figs, config_hash))
