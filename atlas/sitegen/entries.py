"""The data objects of the site (what templates format): figures, class and model entries, sections,
pages and the state of the gather phase. Fields are only ever added, never renamed: extensions (concept,
neuron, metrics pages) read them."""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from ..targets import Target
from . import paths

if TYPE_CHECKING:
    from ..pipeline.planner import Plan
    from ..pipeline.store import Store

def render_workers(workers: Optional[int] = None) -> int:
    """Processes a render uses: ``workers``, else ``$ATLAS_RENDER_WORKERS``, else the CPU count; at most 8."""
    if workers is None:
        workers = int(os.environ.get("ATLAS_RENDER_WORKERS", os.cpu_count() or 1))
    return max(1, min(workers, 8))


@contextmanager
def paused_gc(freeze: bool = False) -> Iterator[None]:
    """Python's cycle collector paused within the block (``freeze``: the objects made so far are also moved
    out of its reach, so that forked writers, which collect their own garbage, never scan or touch them). A
    site's gather and write build and walk ~10^6 long-lived objects (a lens site) that make no garbage
    cycles to speak of; each full collection scanned them all again (~8 % of a render's CPU)."""
    enabled = gc.isenabled()
    if freeze:
        gc.freeze()
    else:
        gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        elif enabled:
            gc.enable()


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
    degenerate: str = ""  # why the image checks call it degenerate, when [site] degenerate = "mark" shows it
    meta: Dict[str, Any] = field(default_factory=dict)
    png: str = ""
    alpha: str = ""
    masked: str = ""  # no longer a file: the browser draws the masked view from ``view`` and ``alpha``
    thumb: str = ""
    page: str = ""
    title: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)
    model_page: str = ""
    class_page: Optional[str] = None
    view: str = ""  # WebP of the image as class and compare pages show it
    config_hash: str = ""  # hash of the method settings that made it
    label: str = ""  # the target in words, e.g. "Egyptian cat (285)"
    size: tuple = ()  # (height, width) of the stored image
    version: str = ""  # the version shown: the job key (done figures only)
    version_page: str = ""  # the versioned page of that version (never changes)
    earlier: List[Any] = field(default_factory=list)  # earlier published versions (published.Version)
    precision: str = ""  # "fp32" or "bf16": part of the job's identity


@dataclass
class Section:
    """An extra block on a page (concept cards, metrics, accentuations, ...): ``template`` formats
    ``data``; sections are shown in ``order``; ``name`` (default: from the title) names its anchor
    ``#sec-<name>`` and its CSS hook ``.section-<name>``."""

    title: str
    template: str
    data: Any = None
    order: int = 50
    name: str = ""

    @property
    def anchor(self) -> str:
        return paths.method_slug(self.name or self.title).lower()


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
    references: List[Dict[str, str]] = field(default_factory=list)  # real images: {"src", "alt"}
    done_methods: List[str] = field(default_factory=list)  # methods with a finished first-seed image
    missing_methods: List[str] = field(default_factory=list)  # slugs of the configured methods without one
    other_models: List[tuple] = field(default_factory=list)  # (model name, class page) on other models
    prev_name: str = ""
    next_name: str = ""


@dataclass
class ModelEntry:
    name: str
    slug: str
    page: str
    classes: List[ClassEntry]
    methods: List[str]
    counts: Dict[str, int] = field(default_factory=dict)  # figures done / failed / pending
    notes: List[str] = field(default_factory=list)  # what the plan left out for this model, and why
    facts: List[tuple] = field(default_factory=list)  # (what, value): the model card as people read it


@dataclass
class Page:
    path: str
    template: str
    context: Dict[str, Any]
    nav_title: Optional[str] = None  # shown in the site's top navigation when set
    version: Optional[str] = None  # set on a versioned page: it is written once and never changed
    plain: Optional[str] = None  # the plain permalink of a versioned page


@dataclass
class VersionInfo:
    """What a page with versions shows about them: ``current`` (this render's version, None if there is
    nothing to publish yet), ``earlier`` (published versions, newest first, each with ``differences`` from
    the current settings: ``[(key, older, current)]``) and ``settings`` (what made the current version)."""

    plain: str
    current: Optional[Any] = None
    earlier: List[Any] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SiteData:
    title: str
    pages: List[Page]
    assets: Dict[str, Callable[[], bytes]]
    manifest: Dict[str, Any]
    trees: Any = None  # trees.Trees: where each file goes and how pages link to it
    page_files: Dict[str, Callable[[], bytes]] = field(default_factory=dict)  # small data files of the pages
    published: Any = None  # published.Published after this render
    immutable: set = field(default_factory=set)  # paths written once and never changed (versioned files)


@dataclass
class SiteBuild:
    """The state of the gather phase, handed to every section and page source.

    ``figures`` maps (model, method, target, seed) to :class:`Figure`; sources add pages with
    ``pages.append`` (or :meth:`publish_page` for a page with versions), assets with :meth:`add_asset` (a
    producer returning bytes, called when writing) and links made at gather time with :meth:`href`;
    ``search`` takes extra search entries and ``manifest_extra`` extra manifest data.
    """

    plan: "Plan"
    store: "Store"
    trees: Any = None  # trees.Trees of the site being built
    published: Any = None  # published.Published: what earlier renders of this site published
    figures: Dict[tuple, Figure] = field(default_factory=dict)
    assets: Dict[str, Callable[[], bytes]] = field(default_factory=dict)
    pages: List[Page] = field(default_factory=list)
    models: List["ModelEntry"] = field(default_factory=list)
    methods: List[Dict[str, Any]] = field(default_factory=list)
    search: List[Dict[str, Any]] = field(default_factory=list)
    manifest_extra: Dict[str, Any] = field(default_factory=dict)
    page_files: Dict[str, Callable[[], bytes]] = field(default_factory=dict)
    versions: Dict[str, VersionInfo] = field(default_factory=dict)  # plain page -> its versions
    immutable: set = field(default_factory=set)

    @property
    def config(self):
        return self.plan.config

    def title(self, method: str) -> str:
        """The method's title for people (recorded in the plan)."""
        return self.plan.methods[method].title

    def class_names(self, model: str) -> tuple:
        """The class names of ``model``, indexed by class id."""
        return self.plan.models[model].class_names

    def add_asset(self, path: str, producer: Callable[[], bytes], version: Optional[str] = None) -> str:
        """Add a file of the assets tree; returns the path to link to. An image or download is *versioned*:
        its path gets ``version`` (a hex hash of what made it; default: the key of the store folder the
        producer reads, else the hash of its bytes) unless it names it already, so that it never changes once
        published. Other files (JSON) keep ``path`` and may change."""
        from .assets import is_image, version_of

        if version is not None or is_image(path):
            version = version or version_of(producer)
            if f".{version}" not in path:
                path = paths.versioned(path, version)
            self.immutable.add(path)
        self.assets[path] = producer
        if self.trees is not None:
            self.trees.asset_paths.add(path)
        return path

    def add_page_file(self, path: str, producer: Callable[[], bytes]) -> str:
        """Add a small data file that belongs with the pages (read by their scripts; may change)."""
        self.page_files[path] = producer
        if self.trees is not None:
            self.trees.page_paths.add(path)
        return path

    def publish_page(self, page: Page, made_by: Dict[str, Any], version: Optional[str] = None) -> Page:
        """Add ``page`` (its plain permalink, showing the newest version) and a versioned copy of it whose
        path holds ``version`` (default: the hash of ``made_by``, everything that made the page's content).
        The versioned copy is written once and never changed; the plain page lists the earlier versions
        with what differs in ``made_by`` (see :class:`VersionInfo`, in ``page.context["versions"]``)."""
        from ..config import stable_hash
        from .published import flat_settings

        settings = flat_settings(made_by)
        version = version or stable_hash(settings, length=16)
        info = self.versions.setdefault(page.path, VersionInfo(page.path))
        info.settings = settings
        info.current = version
        self.pages.append(page)
        copy = Page(paths.versioned(page.path, version), page.template, page.context, version=version,
                    plain=page.path)
        self.pages.append(copy)
        self.immutable.add(copy.path)
        return page

    def href(self, from_page: str, to: str) -> str:
        """The link from ``from_page`` to the site path ``to``, as a template's ``url()`` makes it (for markup
        made at gather time, e.g. SVG charts)."""
        if self.trees is None:
            return paths.relative(from_page, to)
        return self.trees.href(from_page, to)

    def figures_for(self, model: str, target: Target) -> List[tuple]:
        """[(method, title, [Figure per seed])] for one target, in the configured method order."""
        out = []
        for m in self.config.methods:
            figs = [f for s in self.config.seeds if (f := self.figures.get((model, m, target, s)))]
            if figs:
                out.append((m, self.title(m), figs))
        return out

    def class_entry(self, model: str, class_id: int) -> Optional[ClassEntry]:
        """The class entry of ``class_id`` on ``model`` (None if the atlas does not show it)."""
        for me in self.models:
            if me.name == model:
                return next((e for e in me.classes if e.id == class_id), None)
        return None
