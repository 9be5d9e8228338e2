"""Settings of the concept (CRAFT) and neuron stages.

A configuration carries overrides of these defaults in ``[targets.concept_settings]`` and
``[targets.neuron_settings]`` (``TargetsConfig.concept_settings`` / ``neuron_settings``); every default is
documented here, with the paper section it comes from. The overrides are checked when a stage reads them
(:func:`craft_config`, :func:`neuron_config`), so that a bad one is an error even when no concept is asked
for. Which layers these stages read by default is model knowledge (:mod:`atlas.concepts.layers`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from .validate import Place, build, rule


@dataclass(frozen=True)
class CraftConfig:
    """CRAFT per class (reference/05_craft.md; Fel et al., CVPR 2023).

    images:         images per class whose patches are factorised (CRAFT README: >= 500).
    patch, stride:  patch side and stride at the model's input size (CRAFT: 64 and int(0.8 * 64) = 51).
    nb_design:      Halton design points for the Sobol indices (CRAFT ``estimate_importance``: 32);
                    nb_design * (K + 2) masked evaluations per image.
    alpha_w:        NMF regularisation of W (CRAFT repo: scikit-learn defaults, 0; xplique: 1e-2).
    max_iter:       NMF iterations (scikit-learn default 200).
    top_patches:    patches in a concept's mosaic (CRAFT / Lens: 10).
    map_percentile: concept maps are thresholded at this percentile over the class (CRAFT: 90).
    map_images:     real images shown with a concept's map on the site.
    min_wins:       a concept is *important* when it is the most important concept for at least this many
                    images (Lens: 10).
    error_curve:    also fit K' = 1 and ceil(K/2) to report how the reconstruction error falls with K.
    visualise:      how many of the most important concepts per class get visualisations (0: all K;
                    MACO Fig. 6b shows the top 2). Not part of the fit.
    seed:           NMF initialisation seed and image-sample seed.
    """

    images: int = rule(500, ge=1)
    patch: int = rule(64, ge=1)
    stride: int = rule(51, ge=1)
    nb_design: int = rule(32, ge=1)
    alpha_w: float = 0.0
    max_iter: int = rule(200, ge=1)
    top_patches: int = rule(10, ge=1)
    map_percentile: float = rule(90.0, gt=0, lt=100)
    map_images: int = rule(4, ge=1)
    min_wins: int = 10
    error_curve: bool = True
    visualise: int = 0
    seed: int = 0

    def fit_fields(self) -> dict:
        """The settings that determine the concept bank (everything but ``visualise``)."""
        d = dataclasses.asdict(self)
        d.pop("visualise")
        return d


@dataclass(frozen=True)
class NeuronConfig:
    """Neuron selection, dataset examples and polysemantic clusters (VITAL supplementary §1.1, §1.3).

    examples:         top-N patches per neuron, unique source images (VITAL N = 50; the CoSy AUC/MAD
                      control set is the top-50 real images, §2.1).
    mosaic:           how many of them the site's dataset-example mosaic shows.
    max_images:       pool images mined for examples (0: all; a deterministic sample otherwise).
    relevance:        how "top-k most relevant channels per class" are scored (``RELEVANCE`` in
                      :mod:`atlas.concepts.neurons`): ``lrp`` (zennit LRP, VITAL's relevance and DESIGN.md's
                      "top-k most relevant channels (LRP)") by default; ``act_x_grad`` (activation x
                      gradient) is ~2x cheaper and works for vision transformers, which zennit has no LRP
                      rules for.
    relevance_images: class images the relevance is averaged over.
    polysemantic:     neurons ``((layer, channel), ...)`` split into ``clusters`` groups by k-means on the
                      features of their ``cluster_patches`` top patches (VITAL §1.1: 1000; Fig. 22).
    seed:             seed of the fixed random sample of neurons.
    """

    examples: int = rule(50, ge=1)
    mosaic: int = rule(20, ge=1)
    max_images: int = 0
    relevance: str = "lrp"
    relevance_images: int = rule(50, ge=1)
    polysemantic: Tuple[Tuple[str, int], ...] = rule((), ge=0, what='a list of ["layer", channel] pairs')
    clusters: int = rule(2, ge=2)
    cluster_patches: int = rule(1000, ge=1)
    seed: int = 0


_SETTINGS = "a table of [targets.layer_settings.settings.<method>] tables"


@dataclass(frozen=True)
class LayerConfig:
    """Whole layers (``[targets] layers``): every channel visualised, as OpenAI Microscope and the Distill
    feature-visualization appendix show them (``[targets.layer_settings]``).

    methods:          which of the configured methods visualise the layers' channels (MACO by default;
                      any method that visualises neurons). Negative and diverse pictures need an activation objective
                      (MACO, Fourier); other methods draw only the maximising image.
    diversity:        n diverse images per channel, optimised together with lucid's diversity objective
                      (their Gram matrices at the layer pushed apart; lucid's example: a batch of 4); 0: none.
    diversity_weight: weight of that term against the channel's mean activation (lucid's example: 1e2 on
                      InceptionV1's pre-ReLU activations; here the cosine similarities are summed over the
                      set and divided by its size, so the term is at most ``diversity_weight``). 10: on
                      EfficientNet-Lite0 (MACO, 24 steps, sets of 3) it brings the Gram cosine of a set from
                      0.998 to 0.77 at ``blocks.0`` and from 0.97 to 0.6-0.8 at ``blocks.3`` for ~30 % less
                      activation; 1 changes nothing visible.
    negative:         also visualise each channel minimised (lucid's negative visualisation).
    settings:         ``{method: {key: value}}``: method settings for the layers' targets only, on top of
                      ``[settings.<method>]`` (e.g. fewer steps for thousands of channels).
    """

    methods: Tuple[str, ...] = rule(("maco",), min_length=1, what="a non-empty list of method names")
    diversity: int = rule(4, ge=0)
    diversity_weight: float = rule(10.0, ge=0)
    negative: bool = True
    settings: Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...] = rule((), table=True, what=_SETTINGS)

    def method_settings(self, method: str) -> dict:
        return dict(dict(self.settings).get(method, ()))


def layer_config(cfg) -> LayerConfig:
    """The whole-layer settings of an :class:`~atlas.config.AtlasConfig` (the defaults for ``None``)."""
    return cfg.targets.layer_settings if cfg is not None else LayerConfig()


def craft_config(cfg, input_size: Optional[int] = None) -> CraftConfig:
    """The CRAFT settings of an :class:`~atlas.config.AtlasConfig` (defaults + overrides, checked); for a
    model whose input is ``input_size`` px (not 224), ``patch`` and ``stride`` - 64 and 51 at 224 px - are
    scaled to it unless the configuration sets them."""
    overrides = dict(getattr(cfg.targets, "concept_settings", ()))
    out = build(CraftConfig, overrides, Place("targets.concept_settings"))
    if input_size and input_size != 224:
        scaled = {k: max(1, round(getattr(out, k) * input_size / 224)) for k in ("patch", "stride") if k not in overrides}
        out = dataclasses.replace(out, **scaled)
    return out


def neuron_config(cfg) -> NeuronConfig:
    """The neuron settings of an :class:`~atlas.config.AtlasConfig` (defaults + overrides, checked)."""
    overrides = dict(getattr(cfg.targets, "neuron_settings", ()))
    return build(NeuronConfig, overrides, Place("targets.neuron_settings"))
