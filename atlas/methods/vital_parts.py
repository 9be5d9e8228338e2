"""VITAL's building blocks: the priors, the relevance probe of the synthetic image, and the matched blocks
per target kind (supplementary §1.1)."""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from ..errors import AtlasError
from ..models.handle import as_channels
from ..optim.objectives import Evaluation, Objective
from ..optim.sortmatch import MatchedBlock
from ..relevance import relevance
from ..relevance.lrp import Start
from . import vital_refs as refs


def priors(model, tv: float, l2: float) -> Objective:
    """-(tv * TV_l2 + l2 * ||x||_2) on the image in the model's normalised space (DeepInversion's priors
    as VITAL's reference code uses them: TV_l2 = sum of the L2 norms of the four finite differences)."""
    mean = torch.tensor(model.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.std).view(1, 3, 1, 1)

    def fn(ev: Evaluation) -> torch.Tensor:
        x = (ev.image - mean.to(ev.image.device)) / std.to(ev.image.device)
        diffs = (x[..., :, :-1] - x[..., :, 1:], x[..., :-1, :] - x[..., 1:, :],
                 x[..., 1:, :-1] - x[..., :-1, 1:], x[..., :-1, :-1] - x[..., 1:, 1:])
        tv_l2 = sum(d.flatten(1).norm(dim=1) for d in diffs)
        return -(tv * tv_l2 + l2 * x.flatten(1).norm(dim=1))

    return Objective(fn, (), f"-({tv:g} TV + {l2:g} l2)")


class RelevanceProbe:
    """A transform that computes the relevance of the (jittered) synthetic images before the forward pass
    and keeps R_norm for :meth:`features` (A x R_norm, R detached), every ``every`` steps."""

    def __init__(self, model, start: Start, blocks: Sequence[MatchedBlock], every: int = 1):
        self.model, self.start, self.blocks, self.every = model, start, list(blocks), every
        self.calls = 0
        self.rn: Dict[str, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, rng) -> torch.Tensor:
        if self.calls % self.every == 0:
            rel = relevance(self.model, x.detach(), self.start, [b.key for b in self.blocks], batch_size=x.shape[0])
            self.rn = {b.key: refs.normalised_relevance(rel.layers[b.key], b.layout)[0] for b in self.blocks}
        self.calls += 1
        return x

    def features(self, key: str, acts: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        layout = next(b.layout for b in self.blocks if b.key == key)
        return as_channels(acts, layout) * self.rn[key].to(acts.device, acts.dtype)


def class_blocks(model, cfg) -> List[MatchedBlock]:
    """The model's matched blocks with their class-neuron weights (or ``cfg.block_weights``)."""
    blocks = [MatchedBlock(b.path, b.weight, b.layout) for b in model.blocks]
    return _override(blocks, cfg)


def blocks_before(model, layer: str, cfg) -> List[MatchedBlock]:
    """Matched blocks computed before ``layer`` (relevance flows only there); the first weighted
    ``neuron_block1_weight`` (§1.1: block1 0.1), the others 1. A layer before every block matches itself."""
    order = refs.execution_order(model, [b.path for b in model.blocks] + [layer])
    before = order[:order.index(layer)] if layer in order else []
    chosen = [b for b in model.blocks if b.path in before and b.path != layer]
    if not chosen:
        return _override([MatchedBlock(layer, 1.0)], cfg)
    out = [MatchedBlock(b.path, cfg.neuron_block1_weight if i == 0 else 1.0, b.layout) for i, b in enumerate(chosen)]
    return _override(out, cfg)


def _override(blocks: List[MatchedBlock], cfg) -> List[MatchedBlock]:
    if cfg.block_weights is None:
        return blocks
    if len(cfg.block_weights) != len(blocks):
        raise AtlasError(f"vital setting block_weights has {len(cfg.block_weights)} values; the matched blocks are "
                         f"{', '.join(b.key for b in blocks)} ({len(blocks)})")
    return [MatchedBlock(b.key, float(w), b.layout) for b, w in zip(blocks, cfg.block_weights)]


def reference_mosaic(images: torch.Tensor, cols: int = 5, tile: int = 64, limit: int = 20):
    """(H, W, 3) float array: a grid of the first ``limit`` reference images (stored as ``references.png``)."""
    import numpy as np
    import torch.nn.functional as F

    x = images[:limit].float().cpu()
    n = x.shape[0]
    rows = max(1, -(-n // cols))
    small = F.interpolate(x, size=(tile, tile), mode="bilinear", align_corners=False, antialias=True)
    canvas = torch.ones(3, rows * tile, min(n, cols) * tile)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = small[i]
    return canvas.clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)


@torch.no_grad()
def target_scores(ctx, targets, result) -> List[Dict[str, float]]:
    """The target's own response before and after (not optimised by VITAL, recorded to show the effect):
    a neuron's mean activation, a concept's dot product with the layer's mean activation."""
    kind = targets[0].kind
    if kind not in ("neuron", "concept"):
        return [{} for _ in targets]
    model = ctx.model
    layer = targets[0].layer if kind == "neuron" else ctx.concept_direction(targets[0])[0]
    out = []
    for name, images in (("start", result.initial), ("end", result.images)):
        a = model.activations(images.to(model.device), [layer])[layer]
        a = a.flatten(2).mean(-1) if a.dim() > 2 else a
        if kind == "neuron":
            vals = [float(a[i, t.channel]) for i, t in enumerate(targets)]
        else:
            vals = [float(a[i] @ torch.as_tensor(ctx.concept_direction(t)[1], dtype=a.dtype, device=a.device).flatten())
                    for i, t in enumerate(targets)]
        out.append((f"{'activation' if kind == 'neuron' else 'direction'}_{name}", vals))
    return [{key: vals[i] for key, vals in out} for i in range(len(targets))]
