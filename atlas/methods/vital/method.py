"""VITAL - feature visualisation by distribution alignment and relevant information flow (Görgün, Schiele,
Fischer 2025; seeds/vital-supplementary.txt, reference/02_vital.md).

There is no activation term: a pixel image is optimised so that the per-channel *distribution* of its
features matches that of N reference images, at every matched block, with the sort-matching loss (Alg. 1,
:mod:`atlas.optim.sortmatch`), plus TV and l2 priors. What the references are and which features are
matched depends on the target:

===========  ======================================  ==========================  ==================
target       references (§1.3)                       features                    blocks / priors
===========  ======================================  ==========================  ==================
class        N random images of the class (a draw    A                           all, per-arch
             per seed)                                                           weights (§1.1)
class +      same                                    A x R (LRP from the         all; TV = l2 =
relevance                                            class logit, §2.2)          1e-5 (§1.1)
neuron       the source images of the top-N patches  A x R (LRP from the         blocks before the
             of the channel (64 px, stride 51,       positive part of the        layer, block1 x0.1;
             unique sources; reference code)         channel's activation)       TV = l2 = 3e-6
cluster k    the same for k-means cluster k of the   as neuron                   as neuron
             neuron's top patches (Fig. 22; the
             atlas's one clustering)
concept      the source images of the class's        A x R (LRP from the         blocks before the
             CRAFT patches with the largest          direction at the position   concept layer, as
             coefficients U (§2.3)                   of highest cosine sim.)     neuron
===========  ======================================  ==========================  ==================

Optimisation (§1.1, reference code): pixels in the model's normalised space, randn init, clipped to the
valid range each step; Adam lr 1.0, betas (0.5, 0.9), linear warm-up (100 steps) then cosine decay; jitter
by roll of up to 30 px; 2000 steps; batch 1 (targets batched together are independent: every loss term
is per target). The synthetic image's relevance is recomputed every ``relevance_every`` steps on the
jittered image and used detached, as in the reference code. Transparency: |dL/dx| averaged over the run
(§3.3), stored as ``alpha.png``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from ...data.mosaic import mosaic
from ...optim import OptimizerSpec, TargetRNG, optimize
from ...optim import transforms as T
from ...optim.objectives import total_variation
from ...optim.param import PixelParam
from ...optim.sortmatch import plain_features, sort_matching_objective
from ...relevance import relevance_unsupported, rules_for
from ...errors import AtlasError
from ...models.handle import channel_means
from ...targets import Target
from ..base import Method, RunContext
from ..results import finish
from .features import RelevanceProbe
from .settings import VitalConfig, pixel_scale
from .setups import SETUPS

#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@misc{gorgun2025vital,
  title         = {VITAL: More Understandable Feature Visualization through Distribution Alignment and
                   Relevant Information Flow},
  author        = {Gorgun, Ada and Schiele, Bernt and Fischer, Jonas},
  year          = {2025},
  eprint        = {2503.22399},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}"""


class Vital(Method):
    name = "vital"
    title = "VITAL"
    version = "5"  # 5: neuron and concept relevance through atlas.relevance.direct (zennit's, within rounding)
    Config = VitalConfig
    kinds = ("class", "neuron", "concept")
    uses_data = True
    pixel_settings = ("jitter", "patch", "stride")
    batchable = True
    paper = "gorgun2025vital"
    bibtex = PAPER_BIBTEX
    summary = ("Matches the distribution of the image's features to those of real reference images at every "
               "block with a sort-matching loss; intermediate neurons and concepts match activations weighted "
               "by their LRP relevance. Pixel parameterisation, jitter, transparency from accumulated gradients.")

    def images_needed(self, cfg: VitalConfig, data, kind: str) -> int:
        """N references (§1.3): real images of the class for class neurons, patches of N different pool
        images for the others; one with ``allow_fewer``."""
        return 1 if cfg.allow_fewer else (cfg.references or data.references)

    def setting_problem(self, cfg: VitalConfig, card) -> Optional[str]:
        """Neuron and concept references are patches of the pool's images at the model's input size."""
        if cfg.patch > card.input_size:
            return (f"setting 'patch' of method {self.name} must be at most the input side of {card.name} "
                    f"({card.input_size} px), got {cfg.patch}")
        return None

    def config(self, overrides=None):
        """As :meth:`Method.config`, with a one-line pointer for the settings that moved out of VITAL."""
        moved = sorted({"clusters", "cluster_patches"} & set(overrides or {}))
        if moved:
            raise AtlasError(f"the vital setting {moved[0]!r} is gone: polysemantic neurons are split once, for "
                             f"every method and page - list them in [targets.neuron_settings] polysemantic, with "
                             f"'clusters' and 'cluster_patches' there")
        return super().config(overrides)

    def passes_per_target(self, cfg: VitalConfig, kind: str = "class") -> float:
        """Class targets: ``steps`` passes; neuron and concept targets: ``neuron_steps`` steps of a pass and
        an LRP pass each (both stop at or below the target's layer: the estimate scales them by its depth)."""
        if kind == "class":
            return float(cfg.steps)
        return 2.0 * float(cfg.neuron_steps or cfg.steps)

    def unsupported_reason(self, model: str, target: Target) -> Optional[str]:
        reason = super().unsupported_reason(model, target)
        if reason is None and target.kind in ("neuron", "concept"):
            reason = relevance_unsupported(model)
        return reason

    def run(self, ctx: RunContext, cfg: VitalConfig, targets: Sequence[Target], seeds: Sequence[int]):
        kinds = {t.kind for t in targets}
        if len(kinds) != 1:
            raise ValueError(f"a batch must hold targets of one kind, got {sorted(kinds)}")
        kind = kinds.pop()
        if kind == "class" and cfg.relevance or kind != "class":
            rules_for(ctx.model)  # a clear error for transformers before any work
        setup = SETUPS[kind](ctx, cfg, targets, seeds)
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
            objective = objective + total_variation(tv, pixel_l2=l2, model=model)
        steps = cfg.steps if kind == "class" or cfg.neuron_steps is None else cfg.neuron_steps
        try:
            result = optimize(
                model, param, objective, steps, rng,
                optimizer=OptimizerSpec("adam", lr=cfg.lr * scale, betas=tuple(cfg.betas), schedule="cosine",
                                        warmup=min(cfg.warmup, steps - 1)),
                transforms=transforms, on_step=ctx.on_step,
            )
        finally:
            if setup.start is not None:
                probe.close()
        info = {"blocks": [[b.key, b.weight] for b in setup.blocks], "tv": tv, "l2": l2, "pixel_scale": scale,
                "relevance": setup.start is not None, "reference_images": setup.described}
        out = finish(ctx, targets, result, info)
        extra = target_scores(ctx, targets, result)
        for vis, images, scores in zip(out, setup.references, extra):
            vis.scores.update(scores)
            vis.info["references"] = int(images.shape[0])
            vis.extras["references"] = reference_mosaic(images)
        return out


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
        a = channel_means(a)
        if kind == "neuron":
            vals = [float(a[i, t.channel]) for i, t in enumerate(targets)]
        else:
            vals = [float(a[i] @ torch.as_tensor(ctx.concept_direction(t)[1], dtype=a.dtype, device=a.device).flatten())
                    for i, t in enumerate(targets)]
        out.append((f"{'activation' if kind == 'neuron' else 'direction'}_{name}", vals))
    return [{key: vals[i] for key, vals in out} for i in range(len(targets))]


def reference_mosaic(images: torch.Tensor, cols: int = 5, tile: int = 64, limit: int = 20):
    """(H, W, 3) float array: a grid of the first ``limit`` reference images (stored as ``references.png``)."""
    x = images[:limit]
    return mosaic(x, cols=max(1, min(cols, x.shape[0])), tile=tile)

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (Vital(),)
