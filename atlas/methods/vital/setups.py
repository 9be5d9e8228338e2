"""What one batch of VITAL targets matches, per target kind (supplementary §1.1, §1.3, §2.1-2.3): the blocks,
the reference statistics per target, where the synthetic image's relevance starts and the prior weight."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from ...optim.sortmatch import MatchedBlock
from ...relevance import channel_start, class_start, direction_start
from ...relevance.lrp import Start
from ...targets import Target
from ..base import RunContext
from ..target_objectives import check_neuron
from . import features, references
from .blocks import blocks_before, class_blocks
from .settings import CLASS_RELEVANCE_PRIOR, NEURON_PRIOR, VitalConfig, reference_count


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
    described: str = ""  # which references were matched, for the figure page


def _stacked(stats: Sequence[tuple]) -> tuple:
    """[(quantiles, weights)] per target -> (stacked quantiles, stacked weights)."""
    return features.stack_stats([q for q, _ in stats]), features.stack_stats([w for _, w in stats])


def class_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target], seeds: Sequence[int]) -> Setup:
    """Class neurons (§1.1), optionally with relevance (§2.2); each target's references are the draw of its
    own random stream (``seeds``)."""
    model, n = ctx.model, reference_count(ctx, cfg)
    blocks = class_blocks(model, cfg)
    images = [references.class_references(ctx, t.class_id, n, cfg.allow_fewer, s) for t, s in zip(targets, seeds)]
    described = "random images of the class (this seed's draw)"
    if cfg.relevance:
        stats = [features.relevance_reference_stats(model, x, blocks, class_start([t.class_id], unit=True))
                 for x, t in zip(images, targets)]
        start = class_start([t.class_id for t in targets], unit=True)
        prior = CLASS_RELEVANCE_PRIOR
        return Setup(blocks, *_stacked(stats), start, prior, images, described)
    quantiles = features.stack_stats([features.plain_reference_stats(model, x, blocks) for x in images])
    return Setup(blocks, quantiles, None, None, model.card.vital_class_prior, images, described)


def neuron_start(layer: str, channels: Sequence[int]):
    """Where a neuron's relevance starts: the positive part of the channel's activation at every position.
    The reference code starts from the activation of a layer that ends in a ReLU (ResNet ``layer4_2``), so
    it is never negative there; on a layer with a signed output (EfficientNet-Lite's blocks end in a linear
    projection) the raw activation would seed *negative* relevance wherever the channel is negative - a
    quarter of the positions of the full source images of a neuron's top patches, and most of the noise the
    synthetic image starts from - and matching those features lowered the neuron (tests/test_vital.py)."""
    return channel_start(layer, channels, positive=True)


def neuron_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target], seeds: Sequence[int]) -> Setup:
    """Intermediate neurons (§1.1, §1.3, §2.1) and polysemantic clusters (Fig. 22)."""
    model, n = ctx.model, reference_count(ctx, cfg)
    layer = targets[0].layer
    for t in targets:
        check_neuron(ctx, t)
    blocks = blocks_before(model, layer, cfg)
    images, stats = [], []
    for t in targets:
        x = references.neuron_references(ctx, t, n, cfg)
        images.append(x)
        stats.append(features.relevance_reference_stats(model, x, blocks, neuron_start(layer, [t.channel])))
    start = neuron_start(layer, [t.channel for t in targets])
    chosen = "top patches of the neuron's cluster" if targets[0].cluster is not None else "neuron's top patches"
    return Setup(blocks, *_stacked(stats), start, NEURON_PRIOR, images, references.describe(cfg, chosen))


def concept_setup(ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target], seeds: Sequence[int]) -> Setup:
    """Concept directions (§2.3): relevance starts from the direction at its best-matching position."""
    model, n = ctx.model, reference_count(ctx, cfg)
    pairs = [ctx.concept_direction(t) for t in targets]
    layer = pairs[0][0]
    if any(lay != layer for lay, _ in pairs):
        raise ValueError("a batch of concept targets must share one layer")
    model.module_at(layer)
    vectors = torch.stack([torch.as_tensor(v, dtype=torch.float32).flatten() for _, v in pairs])
    blocks = blocks_before(model, layer, cfg)
    images = references.concept_references(ctx, targets, n, cfg)
    stats = [features.relevance_reference_stats(model, x, blocks, direction_start(layer, v[None]))
             for x, v in zip(images, vectors)]
    described = references.describe(cfg, "concept's CRAFT patches with the largest coefficients")
    return Setup(blocks, *_stacked(stats), direction_start(layer, vectors), NEURON_PRIOR, images, described)


SETUPS = {"class": class_setup, "neuron": neuron_setup, "concept": concept_setup}
