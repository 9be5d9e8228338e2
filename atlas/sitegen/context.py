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
  (``build.add_asset``; images get a versioned path, see :mod:`.assets`) and manifest data
  (``build.manifest_extra[name] = ...``). A page with versions (concept and neuron pages) is added with
  ``build.publish_page(page, made_by)``: its plain permalink shows the newest version and lists the earlier
  ones; its versioned copy never changes. Links made at gather time go through ``build.href`` (the assets
  may live on another host, :mod:`.trees`).
"""
from __future__ import annotations

import dataclasses

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from pathlib import Path

from .. import __version__
from ..bibtex import ATLAS_BIBTEX
from ..config import pool_location, stable_hash
from ..registry import Registry
from ..targets import Target
from . import assets, paths
from .cite import figure_bibtex
from .entries import ClassEntry, Figure, ModelEntry, Page, Section, SiteBuild, SiteData, VersionInfo, paused_gc
from .figures import add_figure, figure, read_metas
from .published import differences, read_published
from .trees import Trees, site_config

if TYPE_CHECKING:
    from ..pipeline.planner import MethodInfo, Plan
    from ..pipeline.store import Store
from .manifest import figure_record, manifest, manifest_bytes
from .search import figure_versions_script, index_json, index_script, search_index
from .sitemap import sitemap_files

__all__ = ["CLASS_SECTIONS", "PAGE_SOURCES", "ClassEntry", "Figure", "ModelEntry", "Page", "Section", "SiteBuild",
           "SiteData", "VersionInfo", "gather", "method_info"]

#: Class-page sections: ``section(build, model_entry, class_entry) -> Section | None``.
CLASS_SECTIONS: Registry[Callable[[SiteBuild, "ModelEntry", ClassEntry], Optional[Section]]] = Registry("class section")
#: Page sources: ``source(build) -> None`` appends pages (concept, neuron, metrics, t-SNE pages, ...).
PAGE_SOURCES: Registry[Callable[[SiteBuild], None]] = Registry("page source")


def method_info(info: "MethodInfo") -> Dict[str, Any]:
    """A method as pages show it (from the plan's record of it; no method is imported)."""
    return {"name": info.name, "title": info.title, "summary": info.summary, "paper": info.paper,
            "bibtex": info.bibtex, "settings": info.settings, "page": paths.method_page(info.name),
            "version": info.version, "slug": paths.method_slug(info.name), "kinds": list(info.kinds)}


def _model_notes(b: SiteBuild, model: str) -> List[str]:
    """What the plan left out for ``model`` and why, in one line each: target sources that do not apply
    (no concept layer, no images of its classes, ...) and methods skipped for targets other than classes
    (class pages list those), grouped by method and reason."""
    notes = [f"{source} targets: {reason}" for m, source, reason in b.plan.source_skips if m == model]
    groups: Dict[tuple, int] = {}
    for s in b.plan.skipped:
        if s.model == model and s.target.kind != "class":
            groups[(s.method, s.target.kind, s.reason)] = groups.get((s.method, s.target.kind, s.reason), 0) + 1
    notes += [f"{b.title(m)}, {n} {kind} target{'s' if n > 1 else ''}: {reason}" for (m, kind, reason), n in groups.items()]
    return notes


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
        for i, src in enumerate(class_reference_files(b.config, b.store, cid, info.labels_id)):  # versioned by the stage key
            rel = b.add_asset(paths.reference_image(cid, i, info.labels_id), partial(assets.file_bytes, src))
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


def site_config_hash(cfg) -> str:
    """The configuration hash a site shows and cites: everything that makes its figures, not where they
    are kept or computed (``store``, ``site``, ``cluster``, ``download`` are left out) and the data
    folders by their normalised location (``--data mixed`` and ``--data ./mixed/`` are one configuration)."""
    data = dataclasses.replace(cfg.data, pool=pool_location(cfg.data.pool), eval_pool=pool_location(cfg.data.eval_pool))
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name not in ("store", "site", "cluster", "download")}
    return stable_hash(dict(fields, data=data))


def _finish_versions(b: SiteBuild) -> None:
    """Every page with versions learns its earlier versions (newest first, with what differs from the
    current settings); the record of published versions gains this render's versions."""
    for plain, info in b.versions.items():
        earlier = [v for v in b.published.of(plain) if v.version != info.current]
        info.earlier = [{"version": v.version, "page": v.page, "published": v.published,
                         "differences": differences(v.settings, info.settings)} for v in reversed(earlier)]
        if info.current is not None:
            b.published.add(plain, info.current, info.settings)
    for page in b.pages:
        if page.version is not None:
            v = next(v for v in b.published.of(page.plain) if v.version == page.version)
            page.context = {**page.context, "this_version": {"version": v.version, "plain": page.plain,
                                                             "published": v.published}}
        elif page.path in b.versions:
            page.context = {**page.context, "versions": b.versions[page.path]}
    for fig in b.figures.values():
        fig.earlier = b.versions[fig.page].earlier if fig.page in b.versions else []


def gather(plan: "Plan", store: "Store", site=None) -> SiteData:
    """All pages and assets of the site for ``plan``, reading only the plan, the store and what earlier
    renders of the site published (``site``: a :class:`~atlas.config.SiteConfig` or the pages' folder;
    default: the plan's ``[site]``). Store folders that an earlier render checksummed and that have not
    changed since are not checksummed again (:class:`atlas.pipeline.store.Stamps`)."""
    with store.stamped(), paused_gc():
        return _gather(plan, store, site)


def _gather(plan: "Plan", store: "Store", site=None) -> SiteData:
    cfg = plan.config
    config_hash = site_config_hash(cfg)
    where = site_config(site, cfg.site)
    b = SiteBuild(plan=plan, store=store, trees=Trees.of(where), published=read_published(Path(where.folder)))
    b.published.trees = b.trees.describe()
    left_out = cfg.left_out_entries()
    b.methods = [dict(method_info(plan.methods[m]),
                      left_out=next((why for name, kind, why in left_out if name == m and kind is None), ""),
                      left_kinds=[(kind, why) for name, kind, why in left_out if name == m and kind is not None])
                 for m in cfg.methods]
    configs, figure_jobs = {}, []
    metas = read_metas(store, [job.key for job in plan.jobs])  # checked; by several processes on a large plan
    for job in plan.jobs:
        fig = figure(store, job, b.class_names(job.model), b.title(job.method), configs,
                     mark=where.degenerate == "mark", meta=metas[job.key])
        b.figures[(job.model, job.method, job.target, job.seed)] = fig
        add_figure(b, fig, job)
        figure_jobs.append((fig, job))

    for model in cfg.models:
        entries = _class_entries(b, model)
        b.models.append(ModelEntry(name=model, slug=paths.model_slug(model), page=paths.model_page(model),
                                   classes=entries, methods=list(cfg.methods),
                                   counts=_status_counts(f for f in b.figures.values() if f.model == model),
                                   notes=_model_notes(b, model),
                                   facts=list(getattr(b.plan.models.get(model), "facts", ()))))
    pages_by_class: Dict[tuple, List[tuple]] = {}  # (label set, class id): a class id of other labels is another class
    labels = {m: getattr(b.plan.models.get(m), "labels_id", "") for m in cfg.models}
    for me in b.models:
        for e in me.classes:
            pages_by_class.setdefault((labels[me.name], e.id), []).append((me.name, e.page))
    for me in b.models:
        for e in me.classes:
            e.other_models = [(n, p) for n, p in pages_by_class[(labels[me.name], e.id)] if n != me.name]

    for me in b.models:
        for e in me.classes:
            for _, section in CLASS_SECTIONS.in_order():
                got = section(b, me, e)
                if got is not None:
                    e.sections.append(got)
            e.sections.sort(key=lambda sec: sec.order)
    for _, source in PAGE_SOURCES.in_order():
        source(b)
    related: Dict[int, tuple] = {}
    for page in b.pages:  # related figures: other methods (same seed) and other seeds of the same target
        if page.template == "figure.html" and "figure" in page.context:
            fig = page.context["figure"]
            if id(fig) not in related:
                near = b.figures_for(fig.model, fig.target)
                related[id(fig)] = ([(title, f) for name, title, figs in near if name != fig.method
                                     for f in figs if f.seed == fig.seed],
                                    [f for name, _, figs in near if name == fig.method for f in figs if f.seed != fig.seed])
            page.context.setdefault("other_methods", related[id(fig)][0])
            page.context.setdefault("other_seeds", related[id(fig)][1])
    for me in b.models:
        b.pages.append(Page(me.page, "model.html", {"model": me}))
        for e in me.classes:
            b.pages.append(Page(e.page, "class.html", {"model": me, "entry": e}))
    _finish_versions(b)

    nav = [(p.nav_title, p.path) for p in b.pages if p.nav_title]
    common = {"methods": b.methods, "shown_methods": [m for m in b.methods if not m["left_out"]],
              "models": b.models, "counts": _status_counts(b.figures.values()),
              "config": cfg, "nav": nav, "config_hash": config_hash, "version": __version__,
              "atlas_bibtex": ATLAS_BIBTEX % {"version": __version__, "config": config_hash},
              "class_names": b.class_names(cfg.models[0]), "patterns": paths.class_patterns(),
              "figure_bibtex": partial(figure_bibtex, version=__version__)}
    b.pages.append(Page("index.html", "index.html", {}))
    b.pages.append(Page("about.html", "about.html", {}))
    b.pages.append(Page(paths.COMPARE_PAGE, "compare.html", {}))
    for m in b.methods:
        b.pages.append(Page(m["page"], "method.html", {"method": m}))
    for p in b.pages:
        p.context = {**common, **p.context}
    index = search_index(b)
    b.add_page_file(paths.SEARCH_JSON, partial(index_json, index))
    b.add_page_file(paths.SEARCH_JS, partial(index_script, index))
    b.add_page_file(paths.FIGURE_VERSIONS_JS, partial(figure_versions_script, b))
    for path, producer in sitemap_files(b).items():
        b.add_page_file(path, producer)
    data = manifest(b, [figure_record(b, fig, job) for fig, job in figure_jobs], config_hash)
    b.add_asset(paths.MANIFEST, partial(manifest_bytes, data))
    return SiteData(title=cfg.title, pages=b.pages, assets=b.assets, manifest=data, trees=b.trees,
                    page_files=b.page_files, published=b.published, immutable=b.immutable)
