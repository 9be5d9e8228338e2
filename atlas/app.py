"""The composition root: the one place that wires atlas's features into the core's registries.

The core (planner, runner, method context, site generator) declares its extension points as registries and
never imports a feature. Each feature below is a vertical slice - its computation low in the house (e.g.
:mod:`atlas.concepts`), its pages high (:mod:`atlas.sitegen.pages`) - and contributes to the registries
only here. The command line, ``build.py``, the benchmarks and the tests call :func:`install` once.

Order matters where a registry's order is visible: target sources are planned in registration order,
class-page sections of equal ``order`` and page sources appear in it.

==========================  ==============================================================================
registry                    what a contribution is
==========================  ==============================================================================
``METHODS``                 a :class:`~atlas.methods.base.Method`: every ``VARIANTS`` of :mod:`atlas.methods`
``PRESETS``                 ``preset() -> AtlasConfig``; the paper presets run every registered method
``TARGET_SOURCES``          ``source(cfg, model, classes) -> [Target]`` (raise ``SourceSkipped`` to skip)
``RUN_STAGES``              ``stage(runner, model)``, run before a model's jobs (cached in the store)
``RESOURCES``               ``factory(run_context)``: a shared object a method asks for by name
``CLASS_SECTIONS``          ``section(build, model_entry, class_entry) -> Section | None``
``PAGE_SOURCES``            ``source(build)``: appends pages (and search entries, assets)
==========================  ==============================================================================
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import partial
from typing import Callable, Tuple

from .config import presets
from .config.presets import PRESETS
from .methods.base import METHODS, RESOURCES
from .pipeline.planner import TARGET_SOURCES
from .pipeline.runner import RUN_STAGES
from .sitegen.context import CLASS_SECTIONS, PAGE_SOURCES


#: The order methods are registered in (the paper presets' column order); any other module of
#: :mod:`atlas.methods` with ``VARIANTS`` follows, alphabetically.
METHOD_ORDER = ("maco", "fourier", "deepinversion", "plugin_inversion", "vital", "accentuation", "attribution_vis")


def _methods() -> None:
    """Every ``VARIANTS`` entry of every module (or package) of :mod:`atlas.methods`."""
    import atlas.methods as package

    found = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    for name in [m for m in METHOD_ORDER if m in found] + [m for m in found if m not in METHOD_ORDER]:
        module = importlib.import_module(f"{package.__name__}.{name}")
        for method in getattr(module, "VARIANTS", ()):
            METHODS.add(method.name, method)


def _presets() -> None:
    """``demo``, and ``paper`` and ``lens`` with every registered method at its paper's settings."""
    methods = tuple(METHODS.in_order_names())
    settings = {name: dict(METHODS.get(name).paper_settings) for name in methods if METHODS.get(name).paper_settings}
    PRESETS.add("demo", presets.demo_preset)
    PRESETS.add("paper", partial(presets.paper_preset, methods, settings))
    PRESETS.add("lens", partial(presets.lens_preset, methods, settings))


def _core_targets() -> None:
    """Classes, listed neurons and the real images of the image-seeded methods."""
    from .pipeline import sources

    TARGET_SOURCES.add("class", sources.class_targets)
    TARGET_SOURCES.add("neuron", sources.listed_neurons)


def _metrics_pages() -> None:
    """The metrics page per model, the t-SNE page and the metrics section of class pages."""
    from .sitegen.pages import metrics

    PAGE_SOURCES.add("metrics", metrics.metrics_pages)
    PAGE_SOURCES.add("tsne", metrics.tsne_page)
    CLASS_SECTIONS.add("metrics", metrics.class_metrics)


def _skipped_methods() -> None:
    """The methods a plan skipped for a class, with their reasons, on its page."""
    from .sitegen.pages import skipped

    CLASS_SECTIONS.add("skipped", skipped.skipped_section)


def _concepts_and_neurons() -> None:
    """CRAFT concepts per class and selected neurons: targets, cached stages, resources and pages."""
    from .concepts import bank, clusters, examples, pool_scan, sources
    from .sitegen.pages import concepts

    TARGET_SOURCES.add("concept", sources.concept_targets)
    TARGET_SOURCES.add("neuron_selection", sources.selected_neurons)
    RESOURCES.add("concepts", bank.ConceptProvider)
    RESOURCES.add("neuron_clusters", clusters.ClusterProvider)
    RUN_STAGES.add("craft", bank.craft_stage)
    RUN_STAGES.add("pool_scan", pool_scan.pool_scan_stage)  # one sweep for the two stages that read patches
    RUN_STAGES.add("neuron_examples", examples.neuron_stage)
    CLASS_SECTIONS.add("concepts", concepts.concept_section)
    PAGE_SOURCES.add("concepts", concepts.concept_pages)
    PAGE_SOURCES.add("neurons", concepts.neuron_pages)


def _labels_and_map() -> None:
    """Neurons and concepts named by what they respond to (their dataset examples' classes, CLIP where
    its weights are cached) and the map of every concept."""
    from .concepts import clip_labels, concept_examples
    from .sitegen.pages import concept_map

    RUN_STAGES.add("concept_examples", concept_examples.concept_examples_stage)
    RUN_STAGES.add("clip_labels", clip_labels.clip_stage)
    PAGE_SOURCES.add("concept_map", concept_map.concept_map_pages)


def _whole_layers() -> None:
    """Every channel of ``[targets] layers``: maximised, minimised and diverse; layer pages."""
    from .concepts import sweep
    from .sitegen.pages import layers

    TARGET_SOURCES.add("layer", sweep.layer_targets)
    PAGE_SOURCES.add("layers", layers.layer_pages)


def _image_explanations() -> None:
    """Real images explained by the image-seeded methods: their targets and class-page sections."""
    from .pipeline import sources
    from .sitegen.pages import image_explanations

    TARGET_SOURCES.add("image", sources.image_targets)
    CLASS_SECTIONS.add("image-seeded", image_explanations.seeded_section)
    CLASS_SECTIONS.add("path-similarity", image_explanations.path_section)


#: The features, in installation order.
FEATURES: Tuple[Tuple[str, Callable[[], None]], ...] = (
    ("methods", _methods),
    ("presets", _presets),
    ("core targets", _core_targets),
    ("metrics pages", _metrics_pages),
    ("skipped methods", _skipped_methods),
    ("concepts and neurons", _concepts_and_neurons),
    ("whole layers", _whole_layers),
    ("labels and the concept map", _labels_and_map),
    ("image explanations", _image_explanations),
)


def install() -> None:
    """Install every feature into the registries (once; a second call changes nothing)."""
    if "class" in TARGET_SOURCES:
        return
    for _, feature in FEATURES:
        feature()
