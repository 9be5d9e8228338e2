"""The data objects of the site (what templates format): figures, class and model entries, sections,
pages and the state of the gather phase. Fields are only ever added, never renamed: extensions (concept,
neuron, metrics pages) read them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from ..targets import Target
from . import paths

if TYPE_CHECKING:
    from ..pipeline.planner import Plan
    from ..pipeline.store import Store

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
    view: str = ""  # WebP of the image as class and compare pages show it
    config_hash: str = ""  # hash of the method settings that made it
    label: str = ""  # the target in words, e.g. "Egyptian cat (285)"
    size: tuple = ()  # (height, width) of the stored image
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
    ``pages.append`` and assets with :meth:`add_asset` (a producer returning bytes, called when writing);
    ``search`` takes extra search entries and ``manifest_extra`` extra manifest data.
    """

    plan: "Plan"
    store: "Store"
    figures: Dict[tuple, Figure] = field(default_factory=dict)
    assets: Dict[str, Callable[[], bytes]] = field(default_factory=dict)
    pages: List[Page] = field(default_factory=list)
    models: List["ModelEntry"] = field(default_factory=list)
    methods: List[Dict[str, Any]] = field(default_factory=list)
    search: List[Dict[str, Any]] = field(default_factory=list)
    manifest_extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def config(self):
        return self.plan.config

    def title(self, method: str) -> str:
        """The method's title for people (recorded in the plan)."""
        return self.plan.methods[method].title

    def class_names(self, model: str) -> tuple:
        """The class names of ``model``, indexed by class id."""
        return self.plan.models[model].class_names

    def add_asset(self, path: str, producer: Callable[[], bytes]) -> str:
        self.assets[path] = producer
        return path

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
