"""Settings of the concept (CRAFT) and neuron stages, and the default layers per model.

A configuration carries overrides of these defaults in ``[targets.concept_settings]`` and
``[targets.neuron_settings]`` (``TargetsConfig.concept_settings`` / ``neuron_settings``); every default is
documented here, with the paper section it comes from.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Tuple

from ..errors import AtlasError, unknown_choice


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

    images: int = 500
    patch: int = 64
    stride: int = 51
    nb_design: int = 32
    alpha_w: float = 0.0
    max_iter: int = 200
    top_patches: int = 10
    map_percentile: float = 90.0
    map_images: int = 4
    min_wins: int = 10
    error_curve: bool = True
    visualise: int = 0
    seed: int = 0

    def __post_init__(self):
        for name in ("images", "patch", "stride", "nb_design", "max_iter", "top_patches", "map_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.map_percentile < 100:
            raise ValueError(f"map_percentile must be in (0, 100), got {self.map_percentile}")
        if self.visualise < 0 or self.min_wins < 0 or self.alpha_w < 0:
            raise ValueError("visualise, min_wins and alpha_w must be non-negative")

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
    relevance:        how "top-k most relevant channels per class" are scored (:data:`RELEVANCE`): ``lrp``
                      (zennit LRP, VITAL's relevance and DESIGN.md's "top-k most relevant channels (LRP)")
                      by default; ``act_x_grad`` (activation x gradient) is ~2x cheaper and works for
                      vision transformers, which zennit has no LRP rules for.
    relevance_images: class images the relevance is averaged over.
    polysemantic:     neurons ``((layer, channel), ...)`` split into ``clusters`` groups by k-means on the
                      features of their ``cluster_patches`` top patches (VITAL §1.1: 1000; Fig. 22).
    seed:             seed of the fixed random sample of neurons.
    """

    examples: int = 50
    mosaic: int = 20
    max_images: int = 0
    relevance: str = "lrp"
    relevance_images: int = 50
    polysemantic: Tuple[Tuple[str, int], ...] = ()
    clusters: int = 2
    cluster_patches: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in ("examples", "mosaic", "relevance_images", "cluster_patches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.clusters < 2:
            raise ValueError(f"clusters must be at least 2, got {self.clusters}")
        if self.max_images < 0:
            raise ValueError(f"max_images must be non-negative, got {self.max_images}")
        ok = all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
                 and isinstance(p[1], int) and p[1] >= 0 for p in self.polysemantic)
        if not ok:
            raise ValueError(f'polysemantic must list ["layer", channel] pairs, got {self.polysemantic!r}')
        object.__setattr__(self, "polysemantic", tuple((str(a), int(b)) for a, b in self.polysemantic))


def _build(cls, kind: str, overrides: Tuple[Tuple[str, Any], ...] | Mapping[str, Any]):
    overrides = dict(overrides)
    names = {f.name for f in fields(cls)}
    for key in overrides:
        if key not in names:
            raise unknown_choice(f"key in [targets.{kind}]:", key, names)
    try:
        return cls(**overrides)
    except (TypeError, ValueError) as exc:
        raise AtlasError(f"bad [targets.{kind}]: {exc}") from None


def craft_config(cfg) -> CraftConfig:
    """The CRAFT settings of an :class:`~atlas.config.AtlasConfig` (defaults + overrides, checked)."""
    return _build(CraftConfig, "concept_settings", getattr(cfg.targets, "concept_settings", ()))


def neuron_config(cfg) -> NeuronConfig:
    """The neuron settings of an :class:`~atlas.config.AtlasConfig` (defaults + overrides, checked)."""
    return _build(NeuronConfig, "neuron_settings", getattr(cfg.targets, "neuron_settings", ()))


# ------------------------------------------------------------------------------------------- layers
def default_layers(model: str) -> Tuple[Optional[str], Optional[str]]:
    """(concept layer, neuron layer) of a zoo model, known without loading it.

    Concepts (CRAFT needs non-negative activations): ResNet50's ``layer4`` output (post-ReLU; CRAFT's
    choice); EfficientNet-Lite's ``bn2``, the 1280-channel head after BatchNorm + ReLU6 - non-negative, the
    last feature map, and its spatial mean *is* the classifier's input (the analogue of ResNet50's layer4).
    Neurons: the last of VITAL's matched blocks (ResNet50: ``layer4`` - VITAL Fig. 22 names channels up to
    #1524, beyond layer3's 1024; EfficientNet-Lite: ``blocks.6``).
    """
    from ..models.cards import known_card

    card = known_card(model)
    return (card.concept_layer, card.neuron_layer) if card is not None else (None, None)


def has_concept_layer(cfg, model: str) -> bool:
    """Whether concepts apply to ``model``: a layer is configured or the model has a default one."""
    return bool(cfg.targets.concept_layer or default_layers(model)[0])


def concept_layer(cfg, model: str) -> str:
    layer = cfg.targets.concept_layer or default_layers(model)[0]
    if not layer:
        raise AtlasError(f"model {model} has no default concept layer; set [targets] concept_layer to a "
                         f"layer with non-negative activations")
    return layer


def neuron_layer(cfg, model: str) -> str:
    layer = cfg.targets.neuron_layer or default_layers(model)[1]
    if not layer:
        raise AtlasError(f"model {model} has no default neuron layer; set [targets] neuron_layer")
    return layer
