"""Plug-In Inversion (Ghiasi et al., ICML 2022), as VITAL compares it (supplementary §1.1 and Table 1).

No explicit regulariser: the cross-entropy of the target class is minimised through an ensemble of
augmentations, and the image grows from a small centred canvas to full resolution.

Every step, each target's canvas is repeated ``views`` times (ensembling), and every copy gets its own
ColorShift (x - mu) / sigma (mu ~ U(-1, 1), sigma = exp(U(-1, 1)) per channel, redrawn every step), its own
per-channel noise offset (decaying linearly to 0 over the run) and its own jitter (a roll), then is zoomed
(bilinear) to the model's input size. The run has ``stages`` stages; stage i optimises a canvas of side
``image_size * i / stages``: by default (``grow="center"``) the previous stage's image stays at its centre
and the new border starts as noise (centring); with ``grow="zoom"`` the previous image is upsampled to the
new side instead. Either way the model sees the canvas zoomed to full size (progressive resolution).
Pixels live in [0, 1] (start U[0, 1), or zeros) and are clipped after each step; Adam with a cosine
schedule to 0, restarted with each stage.

Where each setting comes from:

* PII paper (as summarised in the issue and reference/03_deepinversion_pii.md): ColorShift, ensembling,
  jitter, decaying noise, centring + zoom with progressive resolution, cross-entropy only, Adam, cosine.
* The authors' later code with the PII building blocks (hamidkazemi22/vit-visualization, reference/03):
  ColorShift amplitudes 1.0 and 1.0, redrawn every step, per copy; U[0, 1) start; clip to [0, 1]; Adam
  lr 0.1, betas (0.5, 0.99), cosine annealing to 0; jitter 32 px; per-channel noise std 0.5 decaying
  linearly; an ensemble of 8 copies; a new optimiser per resolution (their CLIPInversion); new canvas
  pixels U[0, 1) or zeros, the previous image pasted at the centre (their ``new_init``).
* VITAL Table 1 ("bs" of PII, from the published implementation): ResNet50 21, DenseNet121 24,
  ConvNeXt-base 16, ViT-L/16 2, ViT-L/32 5 - read here as the ensemble size per model (``views = 0``);
  other models use 8.
* Chosen here (the PII paper's exact schedule could not be checked against its code): 2000 steps in
  4 equal stages (canvas sides 56, 112, 168, 224 px at 224), the jitter limit scaled with the canvas side,
  the noise decaying over the whole run, no flips.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..models import ModelCard, card_for
from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim import transforms as T
from ..optim.augment import CanvasParam, DecayingChannelNoise, color_shift, grow_canvas, zoom_canvas
from ..optim.inversion import cross_entropy
from ..optim.stages import chain
from ..targets import Target
from .base import Method, RunContext
from .results import finish

#: The ensemble size for a model whose card gives none (``ModelCard.pii_views``: VITAL Table 1).
DEFAULT_VIEWS = 8
#: How new canvas pixels start (the authors' ``new_init``: uniform noise or zeros).
INITS = {"uniform": 1.0, "zeros": 0.0}


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@inproceedings{ghiasi2022plug,
  title     = {Plug-In Inversion: Model-Agnostic Inversion for Vision with Data Augmentations},
  author    = {Ghiasi, Amin and Kazemi, Hamid and Reich, Steven and Zhu, Chen and Goldblum, Micah and
               Goldstein, Tom},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2022}
}"""


@dataclass(frozen=True)
class PluginInversionConfig:
    """Plug-In Inversion settings (see the module docstring for the source of each default).

    steps: total steps, split evenly over ``stages`` (canvas side image_size * i / stages at stage i).
    views: ensemble size, copies of the image per step (0: VITAL Table 1's value for the model, else 8).
    lr, betas: Adam (cosine to 0 within each stage). color_shift / color_scale: ColorShift amplitudes.
    noise: std of the per-channel offset at the start (decays linearly to 0). jitter: roll limit at full
    size (scaled with the canvas). flip: random mirror per copy. image_size: final side of the image.
    init: the start of new canvas pixels, ``"uniform"`` U[0, 1) or ``"zeros"`` (both in the authors' code).
    grow: how a stage starts from the previous one: ``"center"`` - the previous image at the centre of a
    larger canvas of new pixels (the authors' ``new_init``); ``"zoom"`` - the previous image upsampled.
    """

    steps: int = 2000
    stages: int = 4
    views: int = 0
    lr: float = 0.1
    betas: tuple = (0.5, 0.99)
    color_shift: float = 1.0
    color_scale: float = 1.0
    noise: float = 0.5
    jitter: int = 32
    flip: bool = False
    image_size: int = 224
    init: str = "uniform"
    grow: str = "center"

    def __post_init__(self):
        if self.grow not in ("center", "zoom"):
            raise ValueError(f"grow must be 'center' or 'zoom', got {self.grow!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {self.init!r}")
        if self.stages < 1 or self.steps < self.stages:
            raise ValueError(f"need stages >= 1 and steps >= stages, got steps={self.steps}, stages={self.stages}")
        if self.views < 0 or self.jitter < 0 or self.image_size < self.stages:
            raise ValueError("views and jitter must be >= 0 and image_size >= stages")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas!r}")

    def canvas_sides(self):
        return [round(self.image_size * (i + 1) / self.stages) for i in range(self.stages)]

    def stage_steps(self):
        base, extra = divmod(self.steps, self.stages)
        return [base + (1 if i < extra else 0) for i in range(self.stages)]


def ensemble_size(cfg: PluginInversionConfig, card: ModelCard | str) -> int:
    """Copies of the image per step: the setting, else the model card's (VITAL Table 1), else the default."""
    card = card_for(card) if isinstance(card, str) else card
    return cfg.views or card.pii_views or DEFAULT_VIEWS


class PluginInversion(Method):
    name = "plugin_inversion"
    title = "Plug-In Inversion"
    version = "1"
    Config = PluginInversionConfig
    kinds = ("class",)
    uses_data = False
    pixel_settings = ("image_size", "jitter")
    batchable = True
    paper = "ghiasi2022plug"
    bibtex = PAPER_BIBTEX
    summary = ("Minimises the target's cross-entropy through an ensemble of augmentations (random colour "
               "shifts, decaying noise, jitter) without explicit regularisers; the image grows from a small "
               "centred canvas, zoomed to the model's input, to full resolution.")

    def images_per_pass(self, cfg: PluginInversionConfig, card) -> float:
        return float(ensemble_size(cfg, card))

    def passes_per_target(self, cfg: PluginInversionConfig, kind: str = "class") -> float:
        return float(cfg.steps * (cfg.views or DEFAULT_VIEWS))

    def run(self, ctx: RunContext, cfg: PluginInversionConfig, targets: Sequence[Target], seeds: Sequence[int]):
        model = ctx.model
        rng = TargetRNG(seeds, ctx.device)
        views = ensemble_size(cfg, model.card)
        objective = cross_entropy([t.class_id for t in targets])
        noise = DecayingChannelNoise(cfg.noise, cfg.steps)  # one decay over the whole run
        results, image = [], None
        for side, steps in zip(cfg.canvas_sides(), cfg.stage_steps()):
            if image is not None and cfg.grow == "zoom":
                start = zoom_canvas(image, side)
            else:
                start = grow_canvas(image, side, rng, scale=INITS[cfg.init], channels=model.in_chans)
            param = CanvasParam(start)
            transforms = T.compose(
                T.repeat(views), color_shift(cfg.color_shift, cfg.color_scale), noise,
                T.jitter(round(cfg.jitter * side / cfg.image_size)), T.random_flip(0.5 if cfg.flip else 0.0),
                T.resize(model.input_size),
            )
            spec = OptimizerSpec("adam", lr=cfg.lr, betas=tuple(cfg.betas), schedule="cosine")
            result = optimize(model, param, objective, steps, rng, optimizer=spec, transforms=transforms,
                              on_step=ctx.on_step)
            results.append(result)
            image = result.images.to(ctx.device)
        info = {"views": views, "canvas_sides": cfg.canvas_sides()}
        return finish(ctx, targets, chain(results, place=cfg.grow), info=info)

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (PluginInversion(),)
