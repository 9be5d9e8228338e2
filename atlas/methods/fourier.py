"""Fourier feature visualisation (Olah et al., Distill 2017), in the two settings the papers compare.

The full complex spectrum is optimised, scaled by 1/f^decay.

* ``fourier`` - VITAL's setting. VITAL's supplementary §1.1: "for Fourier, we use the same settings as for
  MACO, only the initialization of the generated image is changed to regular Fourier initialization, i.e.,
  without fixed magnitude" - so the crops, noise and NAdam lr 1.0 of MACO.
* ``fourier_lucid`` - MACO's baseline (MACO §4, Tables 1-2: "we used all 10 transformations set from the
  Lucid library ... the implementation of [1] ... available in the Xplique library"): Xplique's defaults
  (reference/01_maco_fourier.md) - a spectrum started at N(0, 0.01^2), scaled by 1/f^0.85, divided by 4,
  Adam at lr 0.05 for 256 steps, one view per step through Lucid's standard transformations
  (:func:`~atlas.optim.transforms.standard_robustness`). MACO's claims against "Fourier" (more plausible,
  transfers better) are claims against this one.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..optim import OptimizerSpec, TargetRNG
from ..optim import transforms as T
from ..optim.param import FourierImage, FourierParam, Parameterization
from .base import RunContext
from .maco import CropRunConfig, Maco


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@article{olah2017feature,
  title   = {Feature Visualization},
  author  = {Olah, Chris and Mordvintsev, Alexander and Schubert, Ludwig},
  journal = {Distill},
  year    = {2017},
  doi     = {10.23915/distill.00007}
}"""


@dataclass(frozen=True)
class FourierConfig(CropRunConfig):
    """MACO's settings plus ``decay``: the 1/f^decay frequency scaling (lucid: 1.0)."""

    decay: float = 1.0


class Fourier(Maco):
    """MACO's run with the full Fourier spectrum as the parameterisation."""

    name = "fourier"
    title = "Fourier"
    version = "1"
    Config = FourierConfig
    kinds = ("class", "neuron", "concept")
    uses_data = False
    pixel_settings = ("image_size",)
    paper = "olah2017feature"
    bibtex = PAPER_BIBTEX
    summary = ("Optimises the full Fourier spectrum of the image, scaled by 1/f to favour low frequencies "
               "(Olah et al. 2017), with MACO's crops, noise and optimiser as in VITAL's comparison.")

    def parameterization(self, ctx: RunContext, cfg: FourierConfig, rng: TargetRNG) -> Parameterization:
        return FourierParam(rng, cfg.image_size, decay=cfg.decay, channels=ctx.model.in_chans)


@dataclass(frozen=True)
class LucidConfig:
    """Xplique's ``optim`` defaults, which MACO's benchmark ran (reference/01_maco_fourier.md): 256 steps of
    Adam at lr 0.05; the spectrum's start N(0, ``init_std``^2) = N(0, 0.01^2) and its 1/f^``decay`` scaling
    with decay 0.85; ``image_size`` 224 as the other methods' defaults here (Xplique's 512 in the paper presets)."""

    steps: int = 256
    lr: float = 0.05
    image_size: int = 224
    decay: float = 0.85
    init_std: float = 0.01


class FourierLucid(Fourier):
    """Olah et al.'s Fourier visualisation with Lucid's transformations, as MACO's benchmark ran it: MACO's
    loop with lucid's start, Adam and Lucid's transformations in place of the crops."""

    name = "fourier_lucid"
    title = "Fourier (Lucid)"
    version = "1"
    Config = LucidConfig
    #: MACO §4: Lucid's 10 transformations through Xplique's implementation; Xplique's defaults otherwise,
    #: its 512-px canvas included (bench/README: Lite0 recognises the 512-px images far more often, top-1
    #: 0.56 against 0.14 at 224 px over three seeds).
    paper_settings = {"steps": 256, "lr": 0.05, "decay": 0.85, "init_std": 0.01, "image_size": 512}
    summary = ("Olah et al.'s Fourier visualisation as MACO's benchmark ran it: the full spectrum scaled by "
               "1/f^0.85, Adam at lr 0.05, and Lucid's pad, jitter, scale, blur and flip at every step.")

    def parameterization(self, ctx: RunContext, cfg: LucidConfig, rng: TargetRNG) -> Parameterization:
        return FourierImage.noise(rng, cfg.image_size, channels=ctx.model.in_chans, sd=cfg.init_std,
                                  decay=cfg.decay)

    def optimizer(self, cfg: LucidConfig) -> OptimizerSpec:
        return OptimizerSpec("adam", lr=cfg.lr)

    def transforms(self, ctx: RunContext, cfg: LucidConfig) -> T.Transform:
        return T.standard_robustness(ctx.model.input_size)


#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (Fourier(), Fourier("fourier_hr", image_size=1024), FourierLucid())
