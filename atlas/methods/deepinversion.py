"""DeepInversion (Yin et al., CVPR 2020), as VITAL compares it (supplementary §1.1 and Table 1).

A batch of images of *different* target classes is optimised in pixel space to minimise

    lambda * CE(f(x), y) + r_feature * sum_l w_l (||var_l - running_var_l||_2 + ||mean_l - running_mean_l||_2)
    + alpha_TV * TV(x) + alpha_l2 * ||x||_2

where mean_l / var_l are the batch statistics of the *input* of BatchNorm layer l (w = 10 for the first
layer, 1 for the others) - so the images of a batch shape each other: the result depends on the batch.

Where each setting comes from:

* VITAL §1.1: Adam lr 0.05, alpha_TV 1e-4, alpha_l2 1e-5, lambda 1, jitter, no teacher-student term
  (no Adaptive DeepInversion). VITAL Table 1: batch 64 (and 1), 224 px, and the multi-resolution variant
  "(down 2)" (``deepinversion_ms``).
* NVlabs/DeepInversion (reference/03_deepinversion_pii.md): pixels in the model's normalised space, N(0, 1)
  start, clipped to the valid range after every step; Adam betas (0.5, 0.9); linear warm-up over 100 steps
  then cosine to 0, restarted (with a new Adam) at each resolution stage; 2000 steps at 224 px (setting 1),
  or 2000 steps at half resolution (AvgPool2d(2) of the full image, jitter 15) then 1000 at 224 px
  (setting 0, the multi-resolution variant); jitter = a roll by up to 30 px; random horizontal flips (the
  README's ``--do_flip``); first BatchNorm x10; TV = sum of the Frobenius norms of the four finite
  differences over the whole batch (l1 TV weight 0), l2 = mean over images of ||x||_2, both on the
  transformed, normalised input.
* Chosen here: r_feature = 0.01, the value of the README's recommended command and of the example logs
  (argparse default: 0.05; VITAL does not say). The *best* image is kept: that of the step with the
  lowest total loss of the batch in the full-resolution stage (the reference's ``best_inputs``; its code
  never lowers ``best_cost`` from 1e4, so it in fact keeps the last image whose loss is under 1e4).
  Jitter and flips are drawn per image from the target's random stream
  (the reference draws one shift for the whole batch). Any batch size works, 1 included (the reference
  silently produced no targets for batches under 41).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..errors import Unsupported
from ..models.cards import has_batchnorm
from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim import transforms as T
from ..optim.augment import avg_pool
from ..optim.inversion import batchnorm_layers, bn_loss, bn_statistics, cross_entropy, input_l2
from ..optim.objectives import logged, total_variation
from ..optim.param import PixelParam
from ..optim.stages import chain
from ..targets import Target
from .base import Method, RunContext
from .results import finish


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@inproceedings{yin2020dreaming,
  title     = {Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion},
  author    = {Yin, Hongxu and Molchanov, Pavlo and Alvarez, Jose M. and Li, Zhizhong and Mallya, Arun and
               Hoiem, Derek and Jha, Niraj K. and Kautz, Jan},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2020}
}"""


@dataclass(frozen=True)
class DeepInversionConfig:
    """DeepInversion settings (see the module docstring for the source of each default).

    steps: steps at full resolution (reference setting 1: 2000). low_res_steps: steps at half resolution
    before them (0: single resolution; ``deepinversion_ms``: 2000, then 1000 full-resolution steps).
    batch_size: targets optimised together (VITAL Table 1: 64 and 1); it is part of every job's key.
    lr, betas, warmup: Adam and its warm-up + cosine schedule (per stage). r_feature: weight of the
    BatchNorm-statistics term; first_bn_multiplier: extra weight of the first BatchNorm layer.
    tv_l2, tv_l1, l2: image priors. main_loss_multiplier: lambda, the weight of the cross-entropy.
    jitter: roll limit in pixels at full resolution (half of it at half resolution). flip: random mirror.
    image_size: side of the optimised image. init_std: std of the N(0, std) start in normalised space.
    """

    steps: int = 2000
    low_res_steps: int = 0
    batch_size: int = 64
    lr: float = 0.05
    betas: tuple = (0.5, 0.9)
    warmup: int = 100
    r_feature: float = 0.01
    first_bn_multiplier: float = 10.0
    tv_l2: float = 1e-4
    tv_l1: float = 0.0
    l2: float = 1e-5
    main_loss_multiplier: float = 1.0
    jitter: int = 30
    flip: bool = True
    image_size: int = 224
    init_std: float = 1.0

    def __post_init__(self):
        for name in ("steps", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("low_res_steps", "warmup", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.low_res_steps and self.image_size % 2:
            raise ValueError(f"image_size must be even for the half-resolution stage, got {self.image_size}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas!r}")


class DeepInversion(Method):
    name = "deepinversion"
    title = "DeepInversion"
    version = "4"  # 4: BatchNorm statistics from PyTorch's own kernel (other rounding)
    Config = DeepInversionConfig
    kinds = ("class",)
    uses_data = False
    pixel_settings = ("image_size", "jitter")
    batchable = True
    batch_coupled = True  # the BatchNorm statistics are matched over the whole batch
    paper = "yin2020dreaming"
    bibtex = PAPER_BIBTEX
    summary = ("Optimises a batch of images of different classes in pixel space for their class (cross-"
               "entropy) while matching the mean and variance of every BatchNorm layer's input to the "
               "layer's running statistics, with total-variation and l2 priors, jitter and flips.")

    def unsupported_reason(self, model: str, target: Target) -> Optional[str]:
        reason = super().unsupported_reason(model, target)
        if reason is None and has_batchnorm(model) is False:
            reason = no_batchnorm_reason(self.name, model)
        return reason

    def batch_size(self, cfg: DeepInversionConfig, default: int) -> int:
        return cfg.batch_size

    def images_per_pass(self, cfg: DeepInversionConfig, card) -> float:
        """The image goes through the model at its own size (no resize): activations grow with its area."""
        return float((cfg.image_size / card.input_size) ** 2)

    def passes_per_target(self, cfg: DeepInversionConfig, kind: str = "class") -> float:
        return cfg.steps + cfg.low_res_steps / 4.0  # half resolution: a quarter of the pixels

    def run(self, ctx: RunContext, cfg: DeepInversionConfig, targets: Sequence[Target], seeds: Sequence[int]):
        model = ctx.model
        if not batchnorm_layers(model.module):
            raise Unsupported(no_batchnorm_reason(self.name, model.name))
        rng = TargetRNG(seeds, ctx.device)
        param = PixelParam(rng, cfg.image_size, init_std=cfg.init_std, mean=model.mean, std=model.std)
        ids = [t.class_id for t in targets]
        objective = (
            cfg.main_loss_multiplier * logged("ce", cross_entropy(ids), sign=-1.0)
            + cfg.r_feature * logged("bn", bn_statistics(model, cfg.first_bn_multiplier), sign=-1.0)
            + total_variation(cfg.tv_l2, cfg.tv_l1, model=model, on_views=True, whole_batch=True)
            + input_l2(model, cfg.l2)
        )
        stages = [(cfg.low_res_steps, 2), (cfg.steps, 1)]
        results = []
        last = max(i for i, (steps, _) in enumerate(stages) if steps)
        for i, (steps, factor) in enumerate(stages):
            if steps == 0:
                continue
            transforms = T.compose(
                avg_pool(factor), T.jitter(cfg.jitter // factor), T.random_flip(0.5 if cfg.flip else 0.0),
            )
            spec = OptimizerSpec("adam", lr=cfg.lr, betas=tuple(cfg.betas), schedule="cosine",
                                 warmup=min(cfg.warmup, steps - 1))
            results.append(optimize(model, param, objective, steps, rng, optimizer=spec, transforms=transforms,
                                    on_step=ctx.on_step, keep_best=i == last))
        result = chain(results)
        info = {"batch_classes": ids, "resolution_steps": {f"{cfg.image_size // f}px": s for s, f in stages if s},
                "kept": f"best image: step {result.best_step + 1} of {stages[last][0]} (lowest loss of the batch)"}
        out = finish(ctx, targets, result, info=info)
        bn_start = bn_loss(model, result.initial, cfg.first_bn_multiplier)
        bn_end = bn_loss(model, result.images, cfg.first_bn_multiplier)
        for v in out:
            v.scores.update({"bn_start": bn_start, "bn_end": bn_end})
            v.info["bn_statistics_loss"] = f"{bn_start:.4g} → {bn_end:.4g}"
        return out


def no_batchnorm_reason(method: str, model: str) -> str:
    """The one-line reason shown in the plan and the site (as VITAL's Table 1, which has no DeepInversion
    row for ConvNeXt and the ViTs)."""
    return f"{method} needs BatchNorm layers (it matches their running statistics); {model} has none"


class MultiResolutionDeepInversion(DeepInversion):
    """VITAL Table 1's "DeepInversion (down 2)": the reference code's setting 0."""

    name = "deepinversion_ms"
    title = "DeepInversion (multi-resolution)"
    summary = DeepInversion.summary + " First at half resolution, then at full resolution."

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (DeepInversion(), MultiResolutionDeepInversion(low_res_steps=2000, steps=1000))
