"""The plan: every job a configuration asks for, checked before anything runs.

Planning loads no model weights and reads no images, so ``atlas plan --preset paper`` works anywhere.
Unknown models, methods, classes and settings are reported here, once, as one-line errors.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import AtlasConfig
from ..errors import AtlasError, SourceSkipped, unknown_choice
from ..methods.base import METHODS, display_title
from ..registry import Registry
from ..models import check_model_name, known_card
from ..models.classes import imagenet_classes, imagenet_synonyms
from ..targets import Target
from .jobs import Job


@dataclass
class Skip:
    model: str
    method: str
    target: Target
    reason: str


@dataclass(frozen=True)
class MethodInfo:
    """What pages and the manifest show of a method, read from its registry entry when planning (the site
    renderer never imports a method)."""

    name: str
    title: str  # for people; unique among the registered methods (see methods.base.display_title)
    summary: str
    paper: str  # citation key
    bibtex: str
    version: str
    kinds: Tuple[str, ...]
    settings: Dict[str, Any]  # the method's effective Config, as plain data


@dataclass(frozen=True)
class ModelInfo:
    """What pages show of a model: its class names, WordNet ids and further names (for search)."""

    name: str
    class_names: Tuple[str, ...]
    wnids: Tuple[str, ...]
    synonyms: Tuple[Tuple[str, ...], ...]


@dataclass
class Plan:
    config: AtlasConfig
    jobs: List[Job]
    skipped: List[Skip] = field(default_factory=list)
    classes: Dict[str, List[int]] = field(default_factory=dict)
    #: (model, target source, reason) for sources that do not apply to a model (e.g. no concept layer)
    source_skips: List[Tuple[str, str, str]] = field(default_factory=list)
    methods: Dict[str, MethodInfo] = field(default_factory=dict)
    models: Dict[str, ModelInfo] = field(default_factory=dict)

    def by_key(self) -> Dict[str, Job]:
        return {j.key: j for j in self.jobs}


def resolve_classes(cfg: AtlasConfig) -> List[int]:
    """The configured classes as ImageNet ids (names and wnids resolved; unknown ones are errors)."""
    names, wnids = imagenet_classes()
    if cfg.classes is None:
        return list(range(len(names)))
    out = []
    lowered = {}
    for i, n in enumerate(names):
        lowered.setdefault(n.lower(), []).append(i)
    for c in cfg.classes:
        if isinstance(c, int) or (isinstance(c, str) and c.strip().isdigit()):
            cid = int(c)
            if not 0 <= cid < len(names):
                raise AtlasError(f"unknown class {cid}; valid ids are 0-{len(names) - 1}")
        elif c in wnids:
            cid = wnids.index(c)
        elif c.lower() in lowered:
            hits = lowered[c.lower()]
            if len(hits) > 1:
                raise AtlasError(f"class name {c!r} is ambiguous (ids {hits}); give the class id instead")
            cid = hits[0]
        else:
            raise unknown_choice("class", c, names)
        if cid not in out:
            out.append(cid)
    return out


def data_key(cfg: AtlasConfig) -> Tuple[Tuple[str, object], ...]:
    return (("pool", cfg.data.pool), ("references", cfg.data.references),
            ("spectrum_images", cfg.data.spectrum_images))


#: Target sources: ``source(cfg, model, classes) -> [Target]``. Each kind of target (classes, concepts,
#: neurons, real images) registers its own source; the plan is the union, in registration order.
TARGET_SOURCES: Registry[Callable[[AtlasConfig, str, List[int]], List[Target]]] = Registry("target source")


def targets_for(cfg: AtlasConfig, model: str, classes: List[int],
                skips: Optional[List[Tuple[str, str, str]]] = None) -> List[Target]:
    """Every target the configuration asks for on ``model`` (all registered sources)."""
    out: List[Target] = []
    for name, source in TARGET_SOURCES.in_order():
        try:
            out.extend(source(cfg, model, classes))
        except SourceSkipped as exc:
            if skips is not None:
                skips.append((model, name, str(exc)))
    return out


def method_info(name: str, config) -> MethodInfo:
    m = METHODS.get(name)
    return MethodInfo(name=name, title=display_title(name), summary=m.summary, paper=m.paper,
                      bibtex=m.bibtex, version=m.version, kinds=tuple(m.kinds),
                      settings=dataclasses.asdict(config))


def model_info(name: str) -> ModelInfo:
    """The class names of ``name`` from its card (ImageNet's, with their synonyms, for ImageNet models)."""
    card = known_card(name)
    if card is None or (card.class_names is None and card.num_classes == 1000):
        names, wnids = imagenet_classes()
        return ModelInfo(name=name, class_names=names, wnids=wnids, synonyms=imagenet_synonyms())
    names, wnids = card.labels()
    return ModelInfo(name=name, class_names=names, wnids=wnids, synonyms=tuple((n,) for n in names))


def make_plan(cfg: AtlasConfig) -> Plan:
    """Validate ``cfg`` and list its jobs (model-major, then method, seed, target)."""
    if not len(METHODS):
        raise AtlasError("no method is registered: call atlas.app.install() once before planning")
    for m in cfg.models:
        check_model_name(m)
    methods = [METHODS.get(name) for name in cfg.methods]
    configs = {m.name: m.config(cfg.method_settings(m.name)) for m in methods}
    for name, size in cfg.batch_sizes:
        METHODS.get(name)  # unknown names are errors
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise AtlasError(f"config key 'batch_sizes.{name}' must be a positive integer, got {size!r}")
    batch = {m.name: m.batch_size(configs[m.name], cfg.batch_size_of(m.name)) for m in methods}
    for name, _ in cfg.settings:
        if name not in METHODS:
            raise unknown_choice("method in [settings]:", name, METHODS.names())
    classes = resolve_classes(cfg)
    kind_methods = dict(cfg.targets.kind_methods)
    for listed in kind_methods.values():
        for name in listed:
            METHODS.get(name)  # unknown names are errors
    from .compute import plan_precision

    precision = plan_precision(cfg)
    jobs: List[Job] = []
    skipped: List[Skip] = []
    source_skips: List[Tuple[str, str, str]] = []
    for model in cfg.models:
        targets = targets_for(cfg, model, classes, source_skips)
        for method in methods:
            for seed in cfg.seeds:
                for t in targets:
                    if t.kind not in method.kinds:
                        continue  # e.g. neurons for a class-only method: not planned, not an omission
                    if t.kind in kind_methods and method.name not in kind_methods[t.kind]:
                        continue  # [targets] kind_methods leaves this kind to other methods
                    reason = method.unsupported_reason(model, t)
                    if reason:
                        skipped.append(Skip(model, method.name, t, reason))
                        continue
                    jobs.append(Job(model=model, method=method.name, target=t, seed=seed,
                                    config=configs[method.name], version=method.version,
                                    data=data_key(cfg) if method.uses_data else (), precision=precision,
                                    batch=batch[method.name]))
    return Plan(config=cfg, jobs=jobs, skipped=skipped, classes={m: classes for m in cfg.models},
                source_skips=source_skips, methods={m.name: method_info(m.name, configs[m.name]) for m in methods},
                models={m: model_info(m) for m in cfg.models})
