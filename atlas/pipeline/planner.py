"""The plan: every job a configuration asks for, checked before anything runs.

Planning loads no model weights and reads no images, so ``atlas plan --preset paper`` works anywhere.
Unknown models, methods, classes and settings are reported here, once, as one-line errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

from ..config import AtlasConfig
from ..errors import AtlasError, unknown_choice
from ..methods import METHODS
from ..registry import Registry
from ..models import check_model_name
from ..models.classes import imagenet_classes
from ..targets import Target
from .jobs import Job


@dataclass
class Skip:
    model: str
    method: str
    target: Target
    reason: str


@dataclass
class Plan:
    config: AtlasConfig
    jobs: List[Job]
    skipped: List[Skip] = field(default_factory=list)
    classes: Dict[str, List[int]] = field(default_factory=dict)
    #: (model, target source, reason) for sources that do not apply to a model (e.g. no concept layer)
    source_skips: List[Tuple[str, str, str]] = field(default_factory=list)

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


@TARGET_SOURCES.register("class")
def class_targets(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    return [Target.of_class(c) for c in classes] if cfg.targets.classes else []


class SourceSkipped(Exception):
    """Raised by a target source that does not apply to a model (its one-line reason): the plan records it
    and goes on, as a multi-model preset asks for e.g. concepts only where a model has a concept layer."""


@TARGET_SOURCES.register("neuron")
def listed_neurons(cfg: AtlasConfig, model: str, classes: List[int]) -> List[Target]:
    """The neurons listed in ``[targets] neurons``, checked against the model's architecture (no weights
    needed): an unknown layer or a channel out of range is a one-line error before anything runs. With
    several models, a layer that only some of them have is skipped (with the reason) for the others."""
    from ..models.zoo import layer_width

    out = []
    for layer, channel in cfg.targets.neurons:
        try:
            width = layer_width(model, layer)
        except AtlasError as exc:
            if len(cfg.models) > 1 and str(exc).startswith("unknown layer"):
                raise SourceSkipped(f"{model} has no layer {layer!r}") from None
            raise
        if not 0 <= channel < width:
            raise AtlasError(f"neuron {channel} out of range for layer {layer} of {model}: "
                             f"valid channels are 0-{width - 1}")
        out.append(Target.of_neuron(layer, channel))
    return out


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


def make_plan(cfg: AtlasConfig) -> Plan:
    """Validate ``cfg`` and list its jobs (model-major, then method, seed, target)."""
    from ..extensions import load_extensions

    load_extensions()
    for m in cfg.models:
        check_model_name(m)
    methods = [METHODS.get(name) for name in cfg.methods]
    configs = {m.name: m.config(cfg.method_settings(m.name)) for m in methods}
    for name, _ in cfg.settings:
        if name not in METHODS:
            raise unknown_choice("method in [settings]:", name, METHODS.names())
    classes = resolve_classes(cfg)
    kind_methods = dict(cfg.targets.kind_methods)
    for listed in kind_methods.values():
        for name in listed:
            METHODS.get(name)  # unknown names are errors
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
                    if t.cluster is not None and t.fit is None and not getattr(method, "clusters", False):
                        continue  # VITAL's own polysemantic clusters: only methods with per-cluster references
                    reason = method.unsupported(model, t)
                    if reason:
                        skipped.append(Skip(model, method.name, t, reason))
                        continue
                    jobs.append(Job(model=model, method=method.name, target=t, seed=seed,
                                    config=configs[method.name], version=method.version,
                                    data=data_key(cfg) if method.uses_data else ()))
    return Plan(config=cfg, jobs=jobs, skipped=skipped, classes={m: classes for m in cfg.models},
                source_skips=source_skips)
