"""VITAL - feature visualisation by distribution alignment and relevant information flow (Görgün, Schiele,
Fischer 2025; seeds/vital-supplementary.txt, reference/02_vital.md).

There is no activation term: a pixel image is optimised so that the per-channel *distribution* of its
features matches that of N reference images, at every matched block, with the sort-matching loss (Alg. 1,
:mod:`atlas.optim.sortmatch`), plus TV and l2 priors. What the references are and which features are
matched depends on the target:

===========  ======================================  ==========================  ==================
target       references (§1.3)                       features                    blocks / priors
===========  ======================================  ==========================  ==================
class        N random images of the class            A                           all, per-arch
                                                                                 weights (§1.1)
class +      same                                    A x R (LRP from the         all; TV = l2 =
relevance                                            class logit, §2.2)          1e-5 (§1.1)
neuron       top-N patches of the channel            A x R (LRP from the         blocks before the
             (64 px, stride 51, unique sources)      channel's activation)       layer, block1 x0.1;
                                                                                 TV = l2 = 3e-6
cluster k    top-N patches of k-means cluster k of   as neuron                   as neuron
             the neuron's top patches (Fig. 22)
concept      top-N patches of the class's images     A x R (LRP from the         blocks before the
             along the direction (CRAFT, §2.3)       direction at the position   concept layer, as
                                                     of highest cosine sim.)     neuron
===========  ======================================  ==========================  ==================

Optimisation (§1.1, reference code): pixels in the model's normalised space, randn init, clipped to the
valid range each step; Adam lr 1.0, betas (0.5, 0.9), linear warm-up (100 steps) then cosine decay; jitter
by roll of up to 30 px; 2000 steps; batch 1 (targets batched together are independent: every loss term
is per target). The synthetic image's relevance is recomputed every ``relevance_every`` steps on the
jittered image and used detached, as in the reference code. Transparency: |dL/dx| averaged over the run
(§3.3), stored as ``alpha.png``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim import transforms as T
from ..optim.param import PixelParam
from ..optim.sortmatch import MatchedBlock, plain_features, sort_matching_objective
from ..relevance import channel_start, class_start, direction_start, relevance_unsupported
from ..relevance.lrp import Start
from ..targets import Target
from . import vital_refs as refs
from .base import Method, RunContext, register
from .common import check_neuron, finish
from .vital_parts import RelevanceProbe, blocks_before, class_blocks, priors, reference_mosaic, target_scores

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
    weights (one per matched block). tv, l2: prior weights (None: per target kind, see module docstring).
    relevance: the LRP variant for class neurons (§2.2). relevance_every: recompute the synthetic image's
    relevance every k steps (1: every step, as the reference code). patch, stride: patch grid for neuron
    references (§1.1: 64, CRAFT's stride 51). clusters: k for polysemantic neuron targets (0: none);
    cluster_patches: top patches clustered (§1.1: 1000). warmup: linear warm-up steps (reference: 100).
    neuron_steps: steps for neuron, cluster and concept targets (None: ``steps``), whose steps each cost
    an extra LRP pass. lr, init_std: Adam's learning rate and the std of the randn initialisation in
    ImageNet-normalised pixel units, as in the reference code (rescaled by :func:`pixel_scale` for models
    normalised otherwise).
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
    clusters: int = 0
    cluster_patches: int = 1000

    def __post_init__(self):
        if self.steps < 1 or (self.neuron_steps or 1) < 1 or self.relevance_every < 1 or self.jitter < 0 \
                or self.warmup < 0:
            raise ValueError("steps and relevance_every must be >= 1, jitter and warmup >= 0")
        if self.references is not None and self.references < 1:
            raise ValueError(f"references must be a positive integer, got {self.references}")


@dataclass
class Setup:
    """What one batch of targets matches: blocks, per-target reference statistics, the relevance start of
    the synthetic images (None: plain activations), the prior weight and bookkeeping."""

    blocks: List[MatchedBlock]
    quantiles: Dict[str, torch.Tensor]
    weights: Optional[Dict[str, torch.Tensor]]
    start: Optional[Start]
    prior: float
    references: List[torch.Tensor]


def _n(ctx, cfg: VitalConfig) -> int:
    return cfg.references or ctx.data.references


def class_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target]) -> Setup:
    """Class neurons (§1.1), optionally with relevance (§2.2)."""
    model, n = ctx.model, _n(ctx, cfg)
    blocks = class_blocks(model, cfg)
    images = [refs.class_references(ctx, t.class_id, n, cfg.allow_fewer) for t in targets]
    if cfg.relevance:
        stats = [refs.relevance_reference_stats(model, x, blocks, class_start([t.class_id], unit=True))
                 for x, t in zip(images, targets)]
        start = class_start([t.class_id for t in targets], unit=True)
        prior = CLASS_RELEVANCE_PRIOR
        return Setup(blocks, refs.stack_stats([q for q, _ in stats]), refs.stack_stats([w for _, w in stats]),
                     start, prior, images)
    quantiles = refs.stack_stats([refs.plain_reference_stats(model, x, blocks) for x in images])
    return Setup(blocks, quantiles, None, None, model.card.vital_class_prior, images)


def neuron_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target]) -> Setup:
    """Intermediate neurons (§1.1, §1.3, §2.1) and polysemantic clusters (Fig. 22)."""
    model, n = ctx.model, _n(ctx, cfg)
    layer = targets[0].layer
    for t in targets:
        check_neuron(ctx, t)
    blocks = blocks_before(model, layer, cfg)
    images, stats = [], []
    for t in targets:
        x = refs.neuron_references(ctx, t, n, cfg)
        images.append(x)
        stats.append(refs.relevance_reference_stats(model, x, blocks, channel_start(layer, [t.channel])))
    start = channel_start(layer, [t.channel for t in targets])
    return Setup(blocks, refs.stack_stats([q for q, _ in stats]), refs.stack_stats([w for _, w in stats]), start,
                 NEURON_PRIOR, images)


def concept_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target]) -> Setup:
    """Concept directions (§2.3): relevance starts from the direction at its best-matching position."""
    model, n = ctx.model, _n(ctx, cfg)
    pairs = [ctx.concept_direction(t) for t in targets]
    layer = pairs[0][0]
    if any(lay != layer for lay, _ in pairs):
        raise ValueError("a batch of concept targets must share one layer")
    model.module_at(layer)
    vectors = torch.stack([torch.as_tensor(v, dtype=torch.float32).flatten() for _, v in pairs])
    blocks = blocks_before(model, layer, cfg)
    images = refs.concept_references(ctx, targets, layer, vectors, n, cfg)
    stats = [refs.relevance_reference_stats(model, x, blocks, direction_start(layer, v[None]))
             for x, v in zip(images, vectors)]
    return Setup(blocks, refs.stack_stats([q for q, _ in stats]), refs.stack_stats([w for _, w in stats]),
                 direction_start(layer, vectors), NEURON_PRIOR, images)


SETUPS = {"class": class_setup, "neuron": neuron_setup, "concept": concept_setup}


class Vital(Method):
    name = "vital"
    title = "VITAL"
    version = "1"
    Config = VitalConfig
    kinds = ("class", "neuron", "concept")
    uses_data = True
    batchable = True
    clusters = True  # visualises polysemantic clusters of neurons (Target.cluster)
    paper = "gorgun2025vital"
    summary = ("Matches the distribution of the image's features to those of real reference images at every "
               "block with a sort-matching loss; intermediate neurons and concepts match activations weighted "
               "by their LRP relevance. Pixel parameterisation, jitter, transparency from accumulated gradients.")

    def unsupported(self, model: str, target: Target) -> Optional[str]:
        reason = super().unsupported(model, target)
        if reason is None and target.kind in ("neuron", "concept"):
            reason = relevance_unsupported(model)
        return reason

    def run(self, ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target], seeds: Sequence[int]):
        kinds = {t.kind for t in targets}
        if len(kinds) != 1:
            raise ValueError(f"a batch must hold targets of one kind, got {sorted(kinds)}")
        kind = kinds.pop()
        if kind == "class" and cfg.relevance or kind != "class":
            from ..relevance import rules_for

            rules_for(ctx.model)  # a clear error for transformers before any work
        setup = SETUPS[kind](ctx, cfg, targets)
        model = ctx.model
        tv = cfg.tv if cfg.tv is not None else setup.prior
        l2 = cfg.l2 if cfg.l2 is not None else setup.prior
        rng = TargetRNG(seeds, ctx.device)
        scale = pixel_scale(model)
        param = PixelParam(rng, model.input_size, cfg.init_std * scale, mean=model.mean, std=model.std)
        features, transforms = plain_features, T.jitter(cfg.jitter)
        if setup.start is not None:
            probe = RelevanceProbe(model, setup.start, setup.blocks, cfg.relevance_every)
            features, transforms = probe.features, T.compose(transforms, probe)
        objective = sort_matching_objective(setup.blocks, setup.quantiles, setup.weights, features)
        if tv or l2:
            objective = objective + priors(model, tv, l2)
        steps = cfg.steps if kind == "class" or cfg.neuron_steps is None else cfg.neuron_steps
        result = optimize(
            model, param, objective, steps, rng,
            optimizer=OptimizerSpec("adam", lr=cfg.lr * scale, betas=tuple(cfg.betas), schedule="cosine",
                                    warmup=min(cfg.warmup, steps - 1)),
            transforms=transforms, on_step=ctx.on_step,
        )
        info = {"blocks": [[b.key, b.weight] for b in setup.blocks], "tv": tv, "l2": l2, "pixel_scale": scale,
                "relevance": setup.start is not None}
        out = finish(ctx, targets, result, info)
        extra = target_scores(ctx, targets, result)
        for vis, images, scores in zip(out, setup.references, extra):
            vis.scores.update(scores)
            vis.info["references"] = int(images.shape[0])
            vis.extras["references"] = reference_mosaic(images)
        return out


register(Vital())
