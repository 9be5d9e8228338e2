"""Whole layers (``[targets] layers``): every channel of a layer, as OpenAI Microscope and the Distill
feature-visualization appendix show them - the channel maximised, ``diversity`` diverse images optimised
together (lucid's diversity objective) and the channel minimised (the negative visualisation), by the
methods and settings of ``[targets.layer_settings]`` (:class:`atlas.config.stages.LayerConfig`).

The targets are neuron targets, so the neuron stage gives every channel its dataset examples (top and
bottom patches, one sweep over the pool per layer) and the site a neuron page; the layer page shows the
whole layer as one grid (:mod:`atlas.sitegen.pages.layers`).
"""
from __future__ import annotations

from typing import List, Sequence

from ..config import AtlasConfig, LayerConfig, layer_config, stable_hash
from ..errors import AtlasError, SourceSkipped
from ..pipeline.planner import SourceOptions
from ..targets import Target

VERSION = "1"


def diversity_fit(lcfg: LayerConfig) -> str:
    """The ``fit_hash`` of diverse targets: the set's size and the diversity weight (both change every image
    of the set, so both are in its jobs' keys)."""
    return stable_hash({"diversity": lcfg.diversity, "weight": lcfg.diversity_weight, "v": VERSION}, length=12)


def channel_targets(layer: str, width: int, lcfg: LayerConfig) -> List[Target]:
    """Every channel of ``layer`` maximised, then minimised (``negative``), then each channel's diversity
    set (consecutive, so that a set is never split between batches)."""
    out = [Target.of_neuron(layer, ch) for ch in range(width)]
    if lcfg.negative:
        out += [Target("neuron", layer=layer, channel=ch, facet="negative") for ch in range(width)]
    if lcfg.diversity:
        fit = diversity_fit(lcfg)
        out += [Target("neuron", layer=layer, channel=ch, facet=f"diverse-{j}", fit_hash=fit)
                for ch in range(width) for j in range(lcfg.diversity)]
    return out


def layer_widths(cfg: AtlasConfig, model: str) -> List[tuple]:
    """``[(layer, channels)]`` of the configured layers that ``model`` has (from its architecture, no
    weights). An unknown layer is a one-line error naming the closest ones; with several models, a layer
    that only some of them have is skipped for the others."""
    from ..models.zoo import layer_width

    out = []
    for layer in cfg.targets.layers:
        try:
            out.append((layer, layer_width(model, layer)))
        except AtlasError as exc:
            if len(cfg.models) > 1 and str(exc).startswith("unknown layer"):
                continue
            if str(exc).startswith("unknown layer"):  # e.g. the demo preset's blocks.0 on another model
                raise AtlasError(f"[targets] layers: {exc}; set layers = [...] to layers of this model, or [] "
                                 f"for none") from None
            raise
    return out


class LayerSource:
    """The planner's target source for whole layers (registered by the composition root)."""

    def __call__(self, cfg: AtlasConfig, model: str, classes: Sequence[int]) -> List[Target]:
        if not cfg.targets.layers:
            return []
        lcfg = layer_config(cfg)
        _check_methods(lcfg)
        if not set(lcfg.methods) & set(cfg.methods):
            raise SourceSkipped(f"none of the layers' methods ({', '.join(lcfg.methods)}) is among the configured "
                                f"methods ({', '.join(cfg.methods)})")
        widths = layer_widths(cfg, model)
        if not widths:
            raise SourceSkipped(f"{model} has none of the layers {', '.join(cfg.targets.layers)}")
        return [t for layer, width in widths for t in channel_targets(layer, width, lcfg)]

    def options(self, cfg: AtlasConfig, model: str) -> SourceOptions:
        """The layers' methods and their settings for these targets (``[targets.layer_settings]``)."""
        lcfg = layer_config(cfg)
        return SourceOptions(methods=tuple(lcfg.methods), settings=lcfg.settings)


def _check_methods(lcfg: LayerConfig) -> None:
    from ..methods.base import METHODS

    for name in lcfg.methods:
        if "neuron" not in METHODS.get(name).kinds:
            raise AtlasError(f"method {name} in [targets.layer_settings] methods does not visualise neurons; "
                             f"choose methods that do (e.g. maco, fourier, vital)")
    for name, _ in lcfg.settings:
        if name not in lcfg.methods:
            raise AtlasError(f"[targets.layer_settings.settings.{name}]: {name} is not one of the layers' "
                             f"methods ({', '.join(lcfg.methods)})")
        METHODS.get(name).config(dict(dict(lcfg.settings)[name]))  # bad settings: one line, before anything runs


#: The registered source (one object: the planner reads its ``options``).
layer_targets = LayerSource()


def in_model_order(model: str, layers: Sequence[str]) -> List[str]:
    """``layers`` in the order the model's modules are declared (from its architecture on the meta device,
    no weights; for a model atlas cannot build that way, as given) - the order of the layer pages'
    navigation."""
    from ..models.arch import meta_module
    from ..models.cards import known_card

    card = known_card(model)
    module = meta_module(card.builder) if card is not None and card.builder else None
    if module is None:
        return list(layers)
    index = {name: i for i, (name, _) in enumerate(module.named_modules())}
    return sorted(layers, key=lambda lay: (index.get(lay, len(index)), list(layers).index(lay)))
