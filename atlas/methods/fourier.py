"""Fourier feature visualisation (Olah et al., Distill 2017) in VITAL's setting.

The full complex spectrum is optimised, scaled by 1/f^decay. VITAL's supplementary §1.1: "for Fourier, we
use the same settings as for MACO, only the initialization of the generated image is changed to regular
Fourier initialization, i.e., without fixed magnitude" - so the crops, noise and NAdam lr 1.0 of MACO.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..optim import TargetRNG
from ..optim.param import FourierParam, Parameterization
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

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (Fourier(), Fourier("fourier_hr", image_size=1024))
