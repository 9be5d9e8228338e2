"""MACO - Magnitude-Constrained Optimisation (Fel et al., NeurIPS 2023; seeds/maco-paper.txt).

Only the Fourier phase is optimised; the magnitude is fixed to the natural-image spectrum estimated from
the configured pool (§3). Two transforms (§4, "Experimental setup"): additive uniform noise
U(-0.1, 0.1) and random crops whose side is drawn from N(0.25, 0.1) ("on average 25% of the image"; we
read the number as a fraction of the side, as both reference implementations do), resized to the model
input. NAdam, lr 1.0, N = 256 steps. The transparency map is the average |dL/dx| over the run (§3.2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..config.validate import rule
from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim import transforms as T
from ..optim.param import MacoParam, Parameterization
from ..targets import Target
from .base import Method, RunContext
from .results import finish
from .target_objectives import target_objective


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@inproceedings{fel2023maco,
  title     = {Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained Optimization},
  author    = {Fel, Thomas and Boissin, Thibaut and Boutin, Victor and Picard, Agustin and Novello, Paul and
               Colin, Julien and Linsley, Drew and Rousseau, Tom and Cad{\\'e}ne, R{\\'e}mi and
               Goetschalckx, Lore and Gardes, Laurent and Serre, Thomas},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023}
}"""


@dataclass(frozen=True)
class CropRunConfig:
    """The settings MACO and Fourier share; defaults are MACO's paper's (§4) unless noted.

    steps: 256 (paper). lr: 1.0 with NAdam (paper). image_size: side of the optimised image (VITAL
    compares 224 and 1024). crops: crops per step (not given in the paper; horama uses 6, xplique 32).
    crop_size / crop_size_std: side fraction ~ N(0.25, 0.1) (paper). crop_center_std: 0.15 (reference
    code). noise: U(-noise, noise) added to each crop, in [0, 1] image units (paper: 0.1).
    """

    steps: int = 256
    lr: float = 1.0
    image_size: int = 224
    crops: int = rule(6, ge=1)
    crop_size: float = 0.25
    crop_size_std: float = 0.1
    crop_center_std: float = 0.15
    noise: float = 0.1


@dataclass(frozen=True)
class MacoConfig(CropRunConfig):
    """MACO's settings: :class:`CropRunConfig` plus ``phase_offset``: ``"random"`` (default) adds a fixed
    random phase per coefficient so that the standardised phases do not add up in phase at pixel (0, 0),
    the bright corner spots of the reference code's rendering; ``"zero"`` is the reference code's
    (:class:`~atlas.optim.param.MacoParam`)."""

    phase_offset: str = "random"


def crop_transforms(cfg, input_size: int) -> T.Transform:
    """MACO's two transforms: crops resized to the model input, then uniform noise."""
    return T.compose(
        T.random_crops(cfg.crops, input_size, cfg.crop_size, cfg.crop_size_std, cfg.crop_center_std),
        T.uniform_noise(cfg.noise),
    )


class Maco(Method):
    name = "maco"
    title = "MACO"
    #: 2: the spectrum from every natural photo of the pool with its DC term; the random phase offset.
    version = "2"
    Config = MacoConfig
    kinds = ("class", "neuron", "concept")
    uses_data = True  # the magnitude spectrum comes from the configured pool
    pixel_settings = ("image_size",)
    facets = True  # negative and diverse pictures of a channel (Target.facet): its objective has them
    paper = "fel2023maco"
    bibtex = PAPER_BIBTEX
    #: §4: 256 NAdam steps at lr 1.0, crops of side ~N(0.25, 0.1) resized to the model input, uniform noise
    #: U(-0.1, 0.1) - the defaults, stated for the paper presets. (VITAL supp. §1.1: Fourier uses MACO's.)
    paper_settings = {"steps": 256, "lr": 1.0, "crop_size": 0.25, "crop_size_std": 0.1, "noise": 0.1}
    summary = ("Optimises only the phase of the image's Fourier spectrum; the magnitude is fixed to the "
               "average spectrum of natural images. Random crops and noise; transparency from accumulated "
               "gradients.")

    def parameterization(self, ctx: RunContext, cfg: MacoConfig, rng: TargetRNG) -> Parameterization:
        """The phase-only image over the pool's magnitude spectrum (the one line Fourier changes)."""
        return MacoParam(rng, ctx.spectrum(cfg.image_size), cfg.image_size, phase_offset=cfg.phase_offset)

    def optimizer(self, cfg: MacoConfig) -> OptimizerSpec:
        """NAdam at ``cfg.lr`` (§4)."""
        return OptimizerSpec("nadam", lr=cfg.lr)

    def transforms(self, ctx: RunContext, cfg: MacoConfig) -> T.Transform:
        """The two transforms of §4: crops and noise."""
        return crop_transforms(cfg, ctx.model.input_size)

    def run(self, ctx: RunContext, cfg: MacoConfig, targets: Sequence[Target], seeds: Sequence[int]):
        rng = TargetRNG(seeds, ctx.device)
        param = self.parameterization(ctx, cfg, rng)
        result = optimize(
            ctx.model, param, target_objective(ctx, targets), cfg.steps, rng,
            optimizer=self.optimizer(cfg),
            transforms=self.transforms(ctx, cfg),
            on_step=ctx.on_step,
        )
        return finish(ctx, targets, result)

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (Maco(), Maco("maco_hr", image_size=1024))
