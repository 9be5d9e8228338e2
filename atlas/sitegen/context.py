"""Phase 1 of the site build: gather every page's data from the plan and the store (no model is loaded,
nothing is written). A page is a data object; templates only format it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List, Optional

from .. import __version__
from ..bibtex import ATLAS_BIBTEX, bibtex
from ..config import stable_hash
from ..methods import METHODS
from ..models.classes import imagenet_classes, imagenet_synonyms
from ..pipeline.planner import Plan
from ..pipeline.store import Store
from ..registry import Registry
from ..targets import Target
from . import assets, paths


@dataclass
class Figure:
    """One visualisation as the site shows it (or the reason it is missing)."""

    key: str
    model: str
    method: str
    method_title: str
    target: Target
    seed: int
    status: str  # "done", "failed" or "pending"
    reason: str = ""
    meta: Dict[str, Any] = field(default_factory=dict)
    png: str = ""
    alpha: str = ""
    masked: str = ""
    thumb: str = ""
    page: str = ""
    title: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)
    model_page: str = ""
    class_page: Optional[str] = None


@dataclass
class Section:
    """An extra block on a page (concept cards, metrics, accentuations, ...): ``template`` formats
    ``data``; sections are shown in ``order``."""

    title: str
    template: str
    data: Any = None
    order: int = 50


@dataclass
class ClassEntry:
    id: int
    name: str
    synonyms: List[str]
    wnid: str
    page: str
    methods: List[tuple] = field(default_factory=list)  # (method name, title, [Figure per seed])
    thumb: str = ""
    prev: Optional[str] = None
    next: Optional[str] = None
    sections: List[Section] = field(default_factory=list)


@dataclass
class ModelEntry:
    name: str
    slug: str
    page: str
    classes: List[ClassEntry]
    methods: List[str]


@dataclass
class Page:
    path: str
    template: str
    context: Dict[str, Any]
    nav_title: Optional[str] = None  # shown in the site's top navigation when set


@dataclass
class SiteData:
    title: str
    pages: List[Page]
    assets: Dict[str, Callable[[], bytes]]
    manifest: Dict[str, Any]


@dataclass
class SiteBuild:
    """The state of the gather phase, handed to every section and page source.

    ``figures`` maps (model, method, target, seed) to :class:`Figure`; sources add pages with
    ``pages.append`` and assets with :meth:`add_asset` (a producer returning bytes, called when writing).
    """

    plan: Plan
    store: Store
    names: tuple
    wnids: tuple
    figures: Dict[tuple, Figure] = field(default_factory=dict)
    assets: Dict[str, Callable[[], bytes]] = field(default_factory=dict)
    pages: List[Page] = field(default_factory=list)
    models: List["ModelEntry"] = field(default_factory=list)
    methods: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def config(self):
        return self.plan.config

    def add_asset(self, path: str, producer: Callable[[], bytes]) -> str:
        self.assets[path] = producer
        return path

    def figures_for(self, model: str, target: Target) -> List[tuple]:
        """[(method, title, [Figure per seed])] for one target, in the configured method order."""
        out = []
        for m in self.config.methods:
            figs = [f for s in self.config.seeds if (f := self.figures.get((model, m, target, s)))]
            if figs:
                out.append((m, METHODS.get(m).title or m, figs))
        return out


#: Class-page sections: ``section(build, model_entry, class_entry) -> Section | None``.
CLASS_SECTIONS: Registry[Callable[[SiteBuild, "ModelEntry", ClassEntry], Optional[Section]]] = Registry("class section")
#: Page sources: ``source(build) -> None`` appends pages (concept, neuron, metrics, t-SNE pages, ...).
PAGE_SOURCES: Registry[Callable[[SiteBuild], None]] = Registry("page source")


def method_info(name: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    m = METHODS.get(name)
    return {"name": name, "title": m.title or name, "summary": m.summary, "paper": m.paper,
            "bibtex": bibtex(m.paper), "settings": settings, "page": paths.method_page(name),
            "version": m.version}


def _figure(store: Store, job, class_names) -> Figure:
    method = METHODS.get(job.method)
    t = job.target
    stem = paths.figure_stem(job.model, job.method, t, job.seed)
    label = f"{class_names[t.class_id]} ({t.class_id})" if t.class_id is not None else t.slug()
    if t.kind == "concept":
        label += f" · concept {t.concept + 1}"
    fig = Figure(
        key=job.key, model=job.model, method=job.method, method_title=method.title or job.method, target=t,
        seed=job.seed, status="pending", page=paths.figure_page(job.model, job.method, t, job.seed),
        title=f"{method.title or job.method} · {label} · seed {job.seed}",
        settings=dataclasses.asdict(job.config),
        model_page=paths.model_page(job.model),
        class_page=paths.class_page(job.model, t.class_id) if t.class_id is not None else None,
    )
    meta = store.meta(job.key)
    if meta is not None:
        fig.status, fig.meta = "done", meta
        fig.png, fig.alpha, fig.masked, fig.thumb = (
            f"{stem}.png", f"{stem}-alpha.png", f"{stem}-masked.png", f"{stem}-thumb.webp")
    else:
        failure = store.failure(job.key)
        if failure is not None:
            fig.status = "failed"
            step = failure.get("step")
            fig.reason = failure.get("reason", "failed") + (f" (step {step})" if step is not None else "")
    return fig


def gather(plan: Plan, store: Store) -> SiteData:
    """All pages and assets of the site for ``plan``, reading only the store."""
    from ..extensions import load_extensions

    load_extensions()
    cfg = plan.config
    names, wnids = imagenet_classes()
    config_hash = stable_hash(cfg)
    b = SiteBuild(plan=plan, store=store, names=names, wnids=wnids)
    b.methods = [method_info(m, dataclasses.asdict(METHODS.get(m).config(cfg.method_settings(m))))
                 for m in cfg.methods]
    manifest_figs = []
    for job in plan.jobs:
        fig = _figure(store, job, names)
        b.figures[(job.model, job.method, job.target, job.seed)] = fig
        if fig.status == "done":
            d = store.job_dir(job.key)
            stem = fig.png[:-4]
            b.add_asset(fig.png, partial(assets.file_bytes, d / "image.png"))
            b.add_asset(fig.alpha, partial(assets.file_bytes, d / "alpha.png"))
            b.add_asset(fig.masked, partial(assets.masked_png, d / "image.png", d / "alpha.png"))
            b.add_asset(fig.thumb, partial(assets.thumb_webp, d / "image.png"))
            for extra in fig.meta.get("files", {}):
                if extra not in ("image.png", "alpha.png"):
                    b.add_asset(f"{stem}-{extra}", partial(assets.file_bytes, d / extra))
        manifest_figs.append({
            "key": fig.key, "model": fig.model, "method": fig.method, "target": fig.target.to_dict(),
            "seed": fig.seed, "status": fig.status, "page": fig.page, "png": fig.png or None,
            "config_hash": job.config_hash, "settings": fig.settings,
            "scores": fig.meta.get("scores", {}), "reason": fig.reason or None,
        })
        b.pages.append(Page(fig.page, "figure.html", {"figure": fig}))

    for model in cfg.models:
        entries = []
        for cid in plan.classes.get(model, []):
            entry = ClassEntry(id=cid, name=names[cid], synonyms=list(imagenet_synonyms(cid)), wnid=wnids[cid],
                               page=paths.class_page(model, cid))
            entry.methods = b.figures_for(model, Target.of_class(cid))
            entry.thumb = next((f.thumb for _, _, figs in entry.methods for f in figs if f.status == "done"), "")
            entries.append(entry)
        for i, e in enumerate(entries):
            e.prev = entries[i - 1].page if i > 0 else None
            e.next = entries[i + 1].page if i + 1 < len(entries) else None
        b.models.append(ModelEntry(name=model, slug=paths.model_slug(model), page=paths.model_page(model),
                                   classes=entries, methods=list(cfg.methods)))

    for me in b.models:
        for e in me.classes:
            for _, section in CLASS_SECTIONS.in_order():
                got = section(b, me, e)
                if got is not None:
                    e.sections.append(got)
            e.sections.sort(key=lambda sec: sec.order)
    for _, source in PAGE_SOURCES.in_order():
        source(b)
    for me in b.models:
        b.pages.append(Page(me.page, "model.html", {"model": me}))
        for e in me.classes:
            b.pages.append(Page(e.page, "class.html", {"model": me, "entry": e}))

    counts = {s: sum(1 for f in b.figures.values() if f.status == s) for s in ("done", "failed", "pending")}
    nav = [(p.nav_title, p.path) for p in b.pages if p.nav_title]
    common = {"methods": b.methods, "models": b.models, "counts": counts, "config": cfg, "nav": nav,
              "config_hash": config_hash, "version": __version__,
              "atlas_bibtex": ATLAS_BIBTEX % {"version": __version__, "config": config_hash}}
    b.pages.append(Page("index.html", "index.html", {}))
    b.pages.append(Page("about.html", "about.html", {}))
    for m in b.methods:
        b.pages.append(Page(m["page"], "method.html", {"method": m}))
    for p in b.pages:
        p.context = {**common, **p.context}
    manifest = {"title": cfg.title, "atlas_version": __version__, "config_hash": config_hash,
                "preset": cfg.name, "models": list(cfg.models), "methods": list(cfg.methods),
                "seeds": list(cfg.seeds), "figures": manifest_figs}
    return SiteData(title=cfg.title, pages=b.pages, assets=b.assets, manifest=manifest)
