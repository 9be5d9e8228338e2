"""Fourier feature visualisation (Olah et al., Distill 2017) in VITAL's setting.

The full complex spectrum is optimised, scaled by 1/f^decay. VITAL's supplementary §1.1: "for Fourier, we
use the same settings as for MACO, only the initialization of the generated image is changed to regular
Fourier initialization, i.e., without fixed magnitude" - so the crops, noise and NAdam lr 1.0 of MACO.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim.param import FourierParam
from ..targets import Target
from .base import Method, RunContext, register
from .common import finish, target_objective
from .maco import MacoConfig, crop_transforms


@dataclass(frozen=True)
class FourierConfig(MacoConfig):
    """MACO's settings plus ``decay``: the 1/f^decay frequency scaling (lucid: 1.0)."""

    decay: float = 1.0


class Fourier(Method):
    name = "fourier"
    title = "Fourier"
    version = "1"
    Config = FourierConfig
    kinds = ("class", "neuron", "concept")
    uses_data = False
    paper = "olah2017feature"
    summary = ("Optimises the full Fourier spectrum of the image, scaled by 1/f to favour low frequencies "
               "(Olah et al. 2017), with MACO's crops, noise and optimiser as in VITAL's comparison.")

    def run(self, ctx: RunContext, cfg: FourierConfig, targets: Sequence[Target], seeds: Sequence[int]):
        rng = TargetRNG(seeds, ctx.device)
        param = FourierParam(rng, cfg.image_size, decay=cfg.decay)
        result = optimize(
            ctx.model, param, target_objective(ctx, targets), cfg.steps, rng,
            optimizer=OptimizerSpec("nadam", lr=cfg.lr),
            transforms=crop_transforms(cfg, ctx.model.input_size),
            on_step=ctx.on_step,
        )
        return finish(ctx, targets, result)


register(Fourier())
register(Fourier("fourier_hr", image_size=1024))
