"""VITAL's settings and the constants behind its defaults (supplementary §1.1, reference code)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ...config.validate import rule
from .references import REFERENCES_FROM

#: The pixel standard deviation of ImageNet normalisation, in which the reference code's lr and init live.
IMAGENET_STD = (0.229, 0.224, 0.225)


def pixel_scale(model) -> float:
    """Factor that maps the reference code's ImageNet-normalised units (lr 1.0, randn init) to the model's
    normalised space with the same step and noise in pixels: 1.0 for torchvision models, ~0.45 for
    EfficientNet-Lite (mean = std = 0.5)."""
    return float(sum(IMAGENET_STD) / sum(model.std))


#: §1.1: intermediate neurons alpha_TV = alpha_l2 = 3e-6; class neurons with LRP 1e-5.
NEURON_PRIOR, CLASS_RELEVANCE_PRIOR = 3e-6, 1e-5


@dataclass(frozen=True)
class VitalConfig:
    """VITAL settings; defaults are the paper's (§1.1) and the reference code's (reference/02_vital.md).

    references: N (None: the configured ``data.references``, 50 in the paper). allow_fewer: proceed when a
    class/neuron has fewer than N references (otherwise an error). block_weights: override the per-block
    weights (one per matched block). tv, l2: prior weights (None: per target kind, see
    :mod:`atlas.methods.vital.method`). relevance: the LRP variant for class neurons (§2.2).
    relevance_every: recompute the synthetic image's relevance every k steps (1: every step, as the
    reference code). patch, stride: patch grid for neuron references (§1.1: 64, CRAFT's stride 51).
    references_from: what is matched for neuron, cluster and concept targets - ``images``, the full source
    images of the chosen top patches (reference code), or ``patches``, the patches upsampled to the input
    size (:mod:`atlas.methods.vital.references`). Polysemantic clusters are the atlas's one clustering
    (``[targets.neuron_settings] polysemantic`` and ``clusters``, VITAL §1.1: 1000 patches).
    warmup: linear warm-up steps (reference: 100). neuron_steps: steps for neuron, cluster and
    concept targets (None: ``steps``), whose steps each cost an extra LRP pass. lr, init_std: Adam's
    learning rate and the std of the randn initialisation in ImageNet-normalised pixel units, as in the
    reference code (rescaled by :func:`pixel_scale` for models normalised otherwise).
    """

    steps: int = 2000
    neuron_steps: Optional[int] = None
    lr: float = 1.0
    init_std: float = 1.0
    betas: Tuple[float, float] = (0.5, 0.9)
    warmup: int = 100
    jitter: int = 30
    references: Optional[int] = None
    allow_fewer: bool = False
    block_weights: Optional[Tuple[float, ...]] = None
    neuron_block1_weight: float = 0.1
    tv: Optional[float] = None
    l2: Optional[float] = None
    relevance: bool = False
    relevance_every: int = 1
    patch: int = 64
    stride: int = 51
    references_from: str = rule("images", choices=REFERENCES_FROM)

    def __post_init__(self):
        if self.steps < 1 or (self.neuron_steps or 1) < 1 or self.relevance_every < 1 or self.jitter < 0 \
                or self.warmup < 0:
            raise ValueError("steps and relevance_every must be >= 1, jitter and warmup >= 0")
        if self.references is not None and self.references < 1:
            raise ValueError(f"references must be a positive integer, got {self.references}")


def reference_count(ctx, cfg: VitalConfig) -> int:
    """N, the number of reference images per target: the setting, else the run's ``data.references``."""
    return cfg.references or ctx.data.references
