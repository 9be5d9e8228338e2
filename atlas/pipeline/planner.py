"""The plan: every job a configuration asks for, checked before anything runs.

Planning loads no model weights and reads no images, so ``atlas plan --preset paper`` works anywhere.
Unknown models, methods, classes and settings are reported here, once, as one-line errors.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import AtlasConfig, stable_hash
from ..data.pools import norm_name, pool_classes, unmatched_folders
from ..errors import AtlasError, SourceSkipped, unknown_choice
from ..methods.base import METHODS, REFERENCE_SIZE, display_title
from ..registry import Registry
from ..models import check_model_name, known_card
from ..models.classes import imagenet_classes, imagenet_synonyms
from ..models.user import define_models, model_identity
from ..targets import Target
from .datakey import pool_identity
from .jobs import Job
from .sharding import bind_batches


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
    #: "" for ImageNet's labels; else a hash of the model's own (class ids mean other classes then)
    labels_id: str = ""
    #: the card's facts as (what, value) lines for people (architecture, weights, input, layers, LRP)
    facts: Tuple[Tuple[str, str], ...] = ()


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
    #: the data folder whose contents are unknown here (not at hand, never recorded by a run in this
    #: store): the keys of jobs that use it cannot be the ones a run computes; None when known or unused
    unknown_data: Optional[str] = None

    def by_key(self) -> Dict[str, Job]:
        return {j.key: j for j in self.jobs}


def resolve_classes(cfg: AtlasConfig, model: Optional[str] = None) -> List[int]:
    """The configured classes of ``model`` (default: the first model) as its output indices: ids, ranges
    ``"0-99"``, class names of its labels or their ids (ImageNet wnids); unknown ones are errors."""
    info = model_info(model or cfg.models[0])
    names, wnids = info.class_names, info.wnids
    if cfg.classes is None:
        return list(range(len(names)))
    out: List[int] = []
    seen: set = set()
    lowered: Dict[str, List[int]] = {}  # names in any case, "_" or "-" for spaces (as folders spell them)
    for i, n in enumerate(names):
        lowered.setdefault(norm_name(n), []).append(i)
    of = f" of model {model}" if model and len(cfg.models) > 1 else ""
    for c in cfg.classes:
        text = c.strip() if isinstance(c, str) else c
        span = _range(text)
        if span is not None:
            lo, hi = span
            if not 0 <= lo <= hi < len(names):
                raise AtlasError(f"class range {c!r}{of} is out of bounds; valid ids are 0-{len(names) - 1}")
            ids = list(range(lo, hi + 1))
        elif isinstance(text, int) or text.isdigit():
            cid = int(text)
            if not 0 <= cid < len(names):
                raise AtlasError(f"unknown class {cid}{of}; valid ids are 0-{len(names) - 1}")
            ids = [cid]
        elif text in wnids and wnids.count(text) == 1:
            ids = [wnids.index(text)]
        elif norm_name(text) in lowered:
            hits = lowered[norm_name(text)]
            if len(hits) > 1:
                raise AtlasError(f"class name {c!r}{of} is ambiguous (ids {hits}); give the class id instead")
            ids = hits
        else:
            raise unknown_choice(f"class{of}", c, names)
        for i in ids:
            if i not in seen:  # a set: 1000 classes listed one by one are not a quadratic scan
                seen.add(i)
                out.append(i)
    return out


def _range(c) -> Optional[Tuple[int, int]]:
    """``(lo, hi)`` of a class range ``"lo-hi"`` (inclusive), or None."""
    if not isinstance(c, str):
        return None
    lo, sep, hi = c.partition("-")
    if sep and lo.strip().isdigit() and hi.strip().isdigit():
        return int(lo), int(hi)
    return None


def data_key(cfg: AtlasConfig) -> Tuple[Tuple[str, object], ...]:
    """The data part of the keys of jobs that use real images (see :mod:`atlas.pipeline.datakey`): the
    pool's normalised location and, for a folder, the fingerprint of its contents."""
    location, fingerprint = pool_identity(cfg.data.pool, cfg.store)
    key: Tuple[Tuple[str, object], ...] = (("pool", location),)
    if location != "bundled":
        key += (("pool_fingerprint", fingerprint),)
    return key + (("references", cfg.data.references), ("spectrum_images", cfg.data.spectrum_images))


def distinct(cfg: AtlasConfig) -> AtlasConfig:
    """``cfg`` with repeated models, methods and seeds listed once (``seeds = [0, 0]`` is one figure)."""
    return dataclasses.replace(cfg, models=tuple(dict.fromkeys(cfg.models)),
                               methods=tuple(dict.fromkeys(cfg.methods)), seeds=tuple(dict.fromkeys(cfg.seeds)))


#: Target sources: ``source(cfg, model, classes) -> [Target]``. Each kind of target (classes, concepts,
#: neurons, real images) registers its own source; the plan is the union, in registration order (a target
#: that two sources ask for is planned once, for the first). A source may also say which methods visualise
#: its targets and with which settings: an ``options(cfg, model) -> SourceOptions`` attribute.
TARGET_SOURCES: Registry[Callable[[AtlasConfig, str, List[int]], List[Target]]] = Registry("target source")


@dataclass(frozen=True)
class SourceOptions:
    """How a source's targets are visualised, where it differs from the rest of the plan.

    methods:  only those of these methods that the configuration runs visualise them (None: the configured
              methods, filtered by ``[targets] kind_methods`` as usual).
    settings: ``{method: {key: value}}`` overrides of the method's settings for these targets only (on top
              of ``[settings.<method>]``; part of their jobs' keys, shown on their figure pages).
    """

    methods: Optional[Tuple[str, ...]] = None
    settings: Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...] = ()


def _source_options(source, cfg: AtlasConfig, model: str) -> Optional[SourceOptions]:
    options = getattr(source, "options", None)
    return options(cfg, model) if options is not None else None


def targets_for(cfg: AtlasConfig, model: str, classes: List[int],
                skips: Optional[List[Tuple[str, str, str]]] = None,
                options: Optional[Dict[Target, SourceOptions]] = None) -> List[Target]:
    """Every target the configuration asks for on ``model`` (all registered sources, each target once).
    ``options`` (optional) receives the :class:`SourceOptions` of targets whose source has some."""
    out: Dict[Target, None] = {}
    for name, source in TARGET_SOURCES.in_order():
        try:
            got = source(cfg, model, classes)
        except SourceSkipped as exc:
            if skips is not None:
                skips.append((model, name, str(exc)))
            continue
        opts = _source_options(source, cfg, model) if options is not None else None
        for t in got:
            if t not in out:
                out[t] = None
                if opts is not None:
                    options[t] = opts
    return list(out)


def method_info(name: str, config) -> MethodInfo:
    m = METHODS.get(name)
    return MethodInfo(name=name, title=display_title(name), summary=m.summary, paper=m.paper,
                      bibtex=m.bibtex, version=m.version, kinds=tuple(m.kinds),
                      settings=dataclasses.asdict(config))


#: Images per class in the pool, per (pool, model): listed once per plan (:func:`classes_with_images`).
_CLASS_IMAGES: Dict[Tuple[str, str], Optional[Dict[int, int]]] = {}


def classes_with_images(cfg: AtlasConfig, model: str) -> Optional[Dict[int, int]]:
    """``{class id: images (counted up to 256)}`` of the classes of ``model`` that have images in the
    configured pool (folders are listed, no image is read), or None when the pool cannot be listed yet (a
    folder that is not there when planning)."""
    key = (cfg.data.pool, model)
    if key not in _CLASS_IMAGES:
        info = model_info(model)
        _CLASS_IMAGES[key] = pool_classes(cfg.data.pool, info.wnids, info.class_names, cap=256)
    return _CLASS_IMAGES[key]


def no_images_reason(cfg: AtlasConfig, model: str, class_id: int) -> Optional[str]:
    """Why a method that needs real images of class ``class_id`` cannot run on it, or None."""
    have = classes_with_images(cfg, model)
    if have is None or class_id in have:
        return None
    name = model_info(model).class_names[class_id]
    where = "the bundled photos" if cfg.data.pool == "bundled" else f"the data folder {cfg.data.pool}"
    return f"no images of class {name} ({class_id}) in {where}"


def too_few_images(cfg: AtlasConfig, method, config, model: str, target: Target) -> Optional[str]:
    """Why the pool has too few real images for ``method`` to visualise ``target`` (its class's images for a
    class target, the pool's for the others), or None. The bundled photos top a class up with crops."""
    need = method.images_needed(config, cfg.data, target.kind)
    have = classes_with_images(cfg, model) if need else None
    if have is None:
        return None
    fix = f"set [settings.{method.name}] allow_fewer = true to use the images there are"
    if target.kind == "class":
        n = have.get(target.class_id, 0)
        if n == 0:
            return f"{no_images_reason(cfg, model, target.class_id)}: {method.name} matches real images of the class"
        if n < need and cfg.data.pool != "bundled":
            name = model_info(model).class_names[target.class_id]
            return (f"class {name} ({target.class_id}) has {n} image(s) in the data folder, fewer than the {need} "
                    f"references {method.name} matches; {fix}")
        return None
    n = sum(have.values())
    if n < need and cfg.data.pool != "bundled":
        return f"the data folder has {n} image(s) of {model}'s classes, fewer than the {need} references {method.name} matches; {fix}"
    return None


def card_facts(card) -> Tuple[Tuple[str, str], ...]:
    """What a model page states about a model: its card's facts, and what could not be derived."""
    if card is None:
        return ()
    channels = "1 channel (grey)" if card.in_chans == 1 else f"{card.in_chans} channels"
    norm = ", ".join(f"{m:g}/{s:g}" for m, s in zip(card.mean, card.std))
    return (
        ("architecture", card.builder or card.family), ("weights", card.weights or "-"),
        ("input", f"{card.input_size} px, {channels}, mean/std {norm}"), ("classes", str(card.num_classes)),
        ("VITAL blocks", ", ".join(f"{b.path}" + (f" (x{b.weight:g})" if b.weight != 1 else "") for b in card.blocks)
         or "none"),
        ("concept layer", card.concept_layer or "not known (set [targets] concept_layer)"),
        ("neuron layer", card.neuron_layer or "not known (set [targets] neuron_layer)"),
        ("LRP rules", card.lrp_rules or f"none: {card.lrp_unavailable}"),
        ("GFLOPs (MACs)", f"{card.gflops:.2f}" if card.gflops else "not known"),
    )


def model_info(name: str) -> ModelInfo:
    """The class names of ``name`` from its card (ImageNet's, with their synonyms, for ImageNet models)."""
    card = known_card(name)
    facts = card_facts(card)
    if card is None or (card.class_names is None and card.num_classes == 1000):
        names, wnids = imagenet_classes()
        return ModelInfo(name=name, class_names=names, wnids=wnids, synonyms=imagenet_synonyms(), facts=facts)
    names, wnids = card.labels()
    if (names, wnids) == imagenet_classes():
        return ModelInfo(name=name, class_names=names, wnids=wnids, synonyms=imagenet_synonyms(), facts=facts)
    return ModelInfo(name=name, class_names=names, wnids=wnids, synonyms=tuple((n,) for n in names),
                     labels_id=stable_hash([list(names), list(wnids)], length=12), facts=facts)


def method_config(cfg: AtlasConfig, method, model: str, over: Optional[dict] = None):
    """The settings ``method`` runs with on ``model``: the configured ones (with a target source's ``over``),
    and - for a model whose input is not 224 px - the method's pixel settings (``Method.pixel_settings``:
    image sides, jitter, patch sizes, given for a 224-px input) scaled to the model's input size, unless
    the configuration sets them."""
    given = {**cfg.method_settings(method.name), **(over or {})}
    base = method.config(given)
    card = known_card(model)
    if card is None or card.input_size == REFERENCE_SIZE or not method.pixel_settings:
        return base
    scale = card.input_size / REFERENCE_SIZE
    changes = {}
    for key in method.pixel_settings:
        value = getattr(base, key, None)
        if key in given or not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            continue
        scaled = max(1, round(value * scale))
        changes[key] = scaled + scaled % 2 if key == "image_size" else scaled  # even: half-resolution stages
    return method.config({**given, **changes}) if changes else base


def _check_models(cfg: AtlasConfig) -> None:
    """The configuration's own models (``[model.<name>]``) defined, every model name known, the pool's
    class folders named after some model's classes: one-line errors before anything runs."""
    _CLASS_IMAGES.clear()
    define_models(cfg.model, cfg.data.pool)
    for name, spec in cfg.model:
        if spec.lrp not in (None, "none"):
            from ..relevance import ARCHITECTURES

            if spec.lrp not in ARCHITECTURES:
                raise unknown_choice(f"LRP rules in [model.{name}]:", spec.lrp, [*ARCHITECTURES.names(), "none"])
    for m in cfg.models:
        check_model_name(m)
    infos = [model_info(m) for m in cfg.models]
    stray = unmatched_folders(cfg.data.pool, [(i.wnids, i.class_names) for i in infos])
    if stray:
        owners = ", ".join(cfg.models)
        shown = ", ".join(repr(n) for n in stray[:8]) + (f" and {len(stray) - 8} more" if len(stray) > 8 else "")
        raise AtlasError(f"{len(stray)} class folder(s) of data folder {cfg.data.pool!r} match no class of "
                         f"{owners}: {shown}; name each folder after a label (or its id), remove it, or fix "
                         f"the labels")


def left_out_reasons(cfg: AtlasConfig) -> Dict[Tuple[str, Optional[str]], str]:
    """``[left_out]`` as {(method, kind or None): reason}: a key ``vital`` leaves out the method, a key
    ``vital.neuron`` only its targets of that kind (e.g. the demo's VITAL neurons, noise at its budget). An
    unknown method, or a kind the method does not visualise, is a one-line error."""
    from ..targets import KINDS

    out: Dict[Tuple[str, Optional[str]], str] = {}
    for name, kind, reason in cfg.left_out_entries():
        if name not in METHODS:
            raise unknown_choice("method in [left_out]:", name, METHODS.names())
        if kind and kind not in METHODS.get(name).kinds:
            kinds = [k for k in KINDS if k in METHODS.get(name).kinds]
            raise unknown_choice(f"target kind of {name} in [left_out] ('{name}.{kind}'):", kind, kinds)
        out[(name, kind)] = reason
    return out


def make_plan(cfg: AtlasConfig) -> Plan:
    """Validate ``cfg`` and list its jobs (model-major, then method, seed, target), each bound to the
    batch it will be optimised in (:func:`atlas.pipeline.sharding.bind_batches`)."""
    if not len(METHODS):
        raise AtlasError("no method is registered: call atlas.app.install() once before planning")
    cfg = distinct(cfg)
    _check_models(cfg)
    methods = [METHODS.get(name) for name in cfg.methods]
    configs = {m.name: m.config(cfg.method_settings(m.name)) for m in methods}
    for model in cfg.models:  # settings some model cannot run (a patch larger than its input)
        card = known_card(model)
        for m in methods:
            problem = card is not None and m.setting_problem(method_config(cfg, m, model), card)
            if problem:
                raise AtlasError(problem)
    for name, size in cfg.batch_sizes:
        METHODS.get(name)  # unknown names are errors
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise AtlasError(f"config key 'batch_sizes.{name}' must be a positive integer, got {size!r}")
    extra_configs: Dict[tuple, Any] = {}

    def config_for(method, model: str, opts: Optional[SourceOptions]):
        over = dict(opts.settings).get(method.name) if opts is not None else None
        key = (method.name, model, over)
        if key not in extra_configs:
            extra_configs[key] = method_config(cfg, method, model, dict(over or ()))
        return extra_configs[key]

    for name, _ in cfg.settings:
        if name not in METHODS:
            raise unknown_choice("method in [settings]:", name, METHODS.names())
    classes = {m: resolve_classes(cfg, m) for m in cfg.models}
    left_out = left_out_reasons(cfg)
    kind_methods = dict(cfg.targets.kind_methods)
    for listed in kind_methods.values():
        for name in listed:
            METHODS.get(name)  # unknown names are errors
    from .compute import plan_precision

    precision = plan_precision(cfg)
    planned_size = {m.name: cfg.batch_size_of(m.name) for m in methods}
    jobs: List[Job] = []
    skipped: List[Skip] = []
    source_skips: List[Tuple[str, str, str]] = []
    data = data_key(cfg) if any(m.uses_data for m in methods) else ()
    for model in cfg.models:
        options: Dict[Target, SourceOptions] = {}
        targets = targets_for(cfg, model, classes[model], source_skips, options)
        identity = model_identity(model)
        for method in methods:
            for seed in cfg.seeds:
                for t in targets:
                    opts = options.get(t)
                    if t.kind not in method.kinds:
                        continue  # e.g. neurons for a class-only method: not planned, not an omission
                    if opts is not None and opts.methods is not None:
                        if method.name not in opts.methods:
                            continue  # the source names the methods of its targets
                    elif t.kind in kind_methods and method.name not in kind_methods[t.kind]:
                        continue  # [targets] kind_methods leaves this kind to other methods
                    if t.facet is not None and not getattr(method, "facets", False):
                        continue  # negative and diverse pictures: only methods whose objective has them
                    why = left_out.get((method.name, t.kind)) or left_out.get((method.name, None))
                    if why:  # [left_out]: not run in this atlas, the pages say why
                        skipped.append(Skip(model, method.name, t, f"left out of this atlas: {why}"))
                        continue
                    conf = config_for(method, model, opts)
                    reason = method.unsupported_reason(model, t) or too_few_images(cfg, method, conf, model, t)
                    if reason:
                        skipped.append(Skip(model, method.name, t, reason))
                        continue
                    jobs.append(Job(model=model, method=method.name, target=t, seed=seed,
                                    config=conf, version=method.version,
                                    data=data if method.uses_data else (), precision=precision,
                                    batch=method.batch_size(conf, planned_size[method.name]),
                                    model_id=identity))
    seen: set = set()
    # a target listed twice is one job: a job's fields (all but its configuration) and its configuration's
    # hash are what its key hashes, compared without hashing every job before it is bound to its batch
    jobs = [j for j in jobs if not ((j, j.config_hash) in seen or seen.add((j, j.config_hash)))]
    unknown = dict(data).get("pool") if ("pool_fingerprint", None) in data and any(j.data for j in jobs) else None
    return Plan(config=cfg, jobs=bind_batches(jobs, cfg.batch_size), skipped=skipped,
                classes=classes, source_skips=source_skips,
                methods={m.name: method_info(m.name, configs[m.name]) for m in methods},
                models={m: model_info(m) for m in cfg.models}, unknown_data=unknown)
