"""Feature accentuation (Hamblin, Fel, Saha, Konkle, Alvarez 2024; seeds/feature-accentuation-paper.txt).

A real image is changed toward a target - here a class logit: its own class, its rival (second-highest
logit, or the predicted class of a misclassified image, Fig. 9) - while an early layer's activations stay
close to the seed's under the same random crops (Def. 2.1). Fourier parameterisation seeded to reproduce
the image exactly (§2.2); 16 crops per step with side ~ U(0.05, 0.99) and Gaussian + uniform noise
(sigma 0.02); Adam lr 0.05; 100 steps (Appendix A); regularisation through the activation at 1/4 of the
model's depth (Appendix H); lambda in the sensitive region found automatically (Appendix E,
:mod:`.lambda_search`); the mask is the collectively normalised attribution map (Appendix C, eq. 1)
of the class's natural images toward the same goal, so an image without the feature stays masked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ...config.validate import rule
from ...data.seed_images import load_seed_images
from ...models.layer_order import depth_layer
from ...models.user import model_key
from ...optim import TargetRNG, masks
from ...path_similarity import mean_defined
from ...relevance import ATTRIBUTIONS, spatial_map
from ...targets import Target
from .. import image_measures as measures
from .. import image_targets
from ..base import Method, RunContext, Visualization
from .lambda_search import LambdaChoice, bisect_lambda
from .optimisation import accentuate, second_logits


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@misc{hamblin2024feature,
  title  = {Feature Accentuation: Revealing 'What' Features Respond to in Natural Images},
  author = {Hamblin, Chris and Fel, Thomas and Saha, Srijani and Konkle, Talia and Alvarez, George},
  year   = {2024},
  eprint = {2402.10039},
  archivePrefix = {arXiv}
}"""


@dataclass(frozen=True)
class AccentuationConfig:
    """Feature-accentuation settings; defaults are the paper's (Appendix A) unless noted.

    steps 100, lr 0.05 (Adam), crops 16 with side in [min_crop, max_crop] = [0.05, 0.99], noise 0.02.
    image_size: side of the optimised image (faccent renders 512; 224 here). decay / desaturation: the
    Fourier parameterisation's 1/f^decay and faccent's desaturation 5. reg_layer: the regularisation
    layer (None: the activation at ``reg_depth`` = 1/4 of the model's depth, Appendix H). lam: lambda
    (None: searched in the sensitive region, Appendix E) - the search bisects ``lambda_iters`` times for
    the min-max normalised distance ``lambda_fraction``, with ``lambda_images`` calibration images
    accentuated toward their second-highest logit for ``lambda_steps`` steps (0: ``steps``).
    mask_attribution / mask_layer: the attribution behind the mask (Grad-CAM as in Fig. 9; None: the
    model's last matched block, Grad-CAM's usual last convolutional map); mask_images natural images of the class share one percentile
    normalisation with percentiles mask_percentiles (Appendix C; the paper leaves p1, p2 to the user),
    after a Gaussian blur of mask_blur x image_size pixels (faccent blurs its masks with sigma 2 px).
    natural_images: natural images of the class for path similarity (§3).
    """

    steps: int = 100
    lr: float = 0.05
    crops: int = rule(16, ge=1)
    min_crop: float = 0.05
    max_crop: float = 0.99
    noise: float = 0.02
    image_size: int = 224
    decay: float = 1.0
    desaturation: float = 5.0
    reg_layer: Optional[str] = None
    reg_depth: float = 0.25
    lam: Optional[float] = None
    lambda_fraction: float = 0.5
    lambda_images: int = 4
    lambda_steps: int = 0
    lambda_iters: int = 6
    mask_attribution: str = "gradcam"
    mask_layer: Optional[str] = None
    mask_images: int = rule(8, ge=1)
    mask_percentiles: Tuple[float, float] = (50.0, 99.0)
    mask_blur: float = 0.01
    natural_images: int = rule(8, ge=1)

    def __post_init__(self):
        ATTRIBUTIONS.get(self.mask_attribution)
        if not 0.0 <= self.min_crop < self.max_crop <= 1.0:
            raise ValueError(f"need 0 <= min_crop < max_crop <= 1, got {self.min_crop}, {self.max_crop}")
        if len(self.mask_percentiles) != 2 or not 0 <= self.mask_percentiles[0] < self.mask_percentiles[1] <= 100:
            raise ValueError(f"mask_percentiles must be two numbers 0 <= p1 < p2 <= 100, got {self.mask_percentiles!r}")


def optim_kwargs(cfg: AccentuationConfig) -> dict:
    return dict(crops=cfg.crops, lr=cfg.lr, min_crop=cfg.min_crop, max_crop=cfg.max_crop, noise=cfg.noise,
                decay=cfg.decay, desaturation=cfg.desaturation)


def calibrate_lambda(ctx: RunContext, cfg: AccentuationConfig, layer: str) -> LambdaChoice:
    """Lambda in the sensitive region for (model, layer, settings): from the store's cache or searched."""
    if cfg.lam is not None:
        return LambdaChoice(lam=cfg.lam, d_min=0.0, d_max=0.0, d_chosen=0.0, fraction=cfg.lambda_fraction)
    pool = ctx.pool
    ids = pool.source_ids(max_images=cfg.lambda_images, seed=0)
    steps = cfg.lambda_steps or cfg.steps
    key = {"model": ctx.model.name, "layer": layer, "pool": pool.fingerprint(), "images": ids, "steps": steps,
           "fraction": cfg.lambda_fraction, "iters": cfg.lambda_iters, "size": cfg.image_size,
           **optim_kwargs(cfg), **model_key(ctx.model.name)}

    def compute():
        seeds = torch.stack([pool.source_image(i, cfg.image_size) for i in ids])
        goals = second_logits(ctx.model, seeds)

        def distance(lam: float) -> float:
            rng = TargetRNG(list(range(len(ids))), ctx.device)
            out = accentuate(ctx.model, seeds, goals, layer, lam, steps, rng, **optim_kwargs(cfg))
            return float(out.distance.mean())

        choice = bisect_lambda(distance, cfg.lambda_fraction, cfg.lambda_iters)
        return {"lambda.json": choice.to_json()}, {"lambda": choice.lam}

    memo = ctx.resources.setdefault("accentuation-lambda", {})
    mkey = repr(sorted(key.items()))
    if mkey not in memo:
        if ctx.store is not None:
            folder = ctx.store.cached_stage("accentuation-lambda", key, compute)
            memo[mkey] = LambdaChoice.from_json((folder / "lambda.json").read_bytes())
        else:
            memo[mkey] = LambdaChoice.from_json(compute()[0]["lambda.json"])
    return memo[mkey]


def collective_masks(ctx: RunContext, cfg: AccentuationConfig, targets: Sequence[Target],
                     goals: Sequence[int], seeds: torch.Tensor) -> torch.Tensor:
    """(K, S, S): each seed's attribution map toward its goal, normalised together with the maps of its
    class's natural images toward the same goal (Appendix C)."""
    model = ctx.model
    layer = cfg.mask_layer or model.blocks[-1].path
    attribute = ATTRIBUTIONS.get(cfg.mask_attribution)
    out = []
    for t, g, seed in zip(targets, goals, seeds):
        ids, nat = image_targets.natural_images(ctx, t.class_id, cfg.mask_images, cfg.image_size)
        group = nat if t.image in ids else torch.cat([nat, seed[None].cpu()])
        maps = spatial_map(attribute(model, image_targets.resize_to_input(model, group), [g] * len(group), layer),
                           cfg.image_size).clamp(min=0).cpu()
        maps = masks.gaussian_blur(maps, cfg.mask_blur * cfg.image_size)
        norm = masks.collective_normalize(maps, cfg.mask_percentiles)
        out.append(norm[ids.index(t.image)] if t.image in ids else norm[-1])
    return torch.stack(out)


class Accentuation(Method):
    name = "accentuation"
    title = "Feature accentuation"
    version = "1"
    Config = AccentuationConfig
    kinds = ("image",)
    uses_data = True
    pixel_settings = ("image_size",)
    paper = "hamblin2024feature"
    bibtex = PAPER_BIBTEX
    summary = ("Changes a real image toward a class (its own, or its rival) while an early layer's "
               "activations stay close to the seed's; Fourier parameterisation seeded with the image, "
               "shared random crops, lambda in the model's sensitive region, masks from collectively "
               "normalised attributions.")

    def passes_per_target(self, cfg: AccentuationConfig, kind: str = "image") -> float:
        """Forward+backward passes per target: the loop's ``steps x crops`` views, each with its seed view's
        forward to the regularisation layer (a forward, a third of a pass: an upper bound in FLOPs, and
        what it costs on a CPU, where the high-resolution layers before ``reg_depth`` hold most of the
        forward's time - 0.34 of a pass in a py-spy profile of the demo's settings); the Grad-CAM pass of
        each of the collective mask's ``mask_images`` natural images and the seed; three forwards of goal
        scores and path features. The lambda search runs once per model, layer and settings (a stage
        shared by every target) and is not charged here."""
        return cfg.steps * cfg.crops * (1.0 + 1.0 / 3.0) + cfg.mask_images + 1 + 1.0

    def run(self, ctx: RunContext, cfg: AccentuationConfig, targets: Sequence[Target], seeds: Sequence[int]):
        model = ctx.model
        layer = cfg.reg_layer or regularization_layer(ctx, cfg.reg_depth)
        model.module_at(layer)
        images, sources = load_seed_images(ctx.pool, targets, cfg.image_size)
        goals, predicted = image_targets.resolve_goals(model, images, targets)
        choice = calibrate_lambda(ctx, cfg, layer)
        rng = TargetRNG(seeds, ctx.device)
        out = accentuate(model, images, goals, layer, choice.lam, cfg.steps, rng,
                                on_step=ctx.on_step, **optim_kwargs(cfg))
        res = out.result
        classes = [t.class_id for t in targets]
        before = image_targets.goal_scores(model, res.initial, goals, classes)
        after = image_targets.goal_scores(model, res.images, goals, classes)
        mask = collective_masks(ctx, cfg, targets, goals, images)
        layers = measures.path_layers(model)
        f_img = measures.layer_features(model, res.images, layers)
        f_seed = measures.layer_features(model, images, layers)
        vis = []
        for i, t in enumerate(targets):
            ids, nat = image_targets.natural_images(ctx, t.class_id, cfg.natural_images, cfg.image_size)
            f_nat = natural_features(ctx, t.class_id, cfg, nat, layers)
            path = measures.path_similarity({k: f[i : i + 1] for k, f in f_img.items()},
                                           {k: f[i : i + 1] for k, f in f_seed.items()}, f_nat,
                                           exclude=ids.index(t.image) if t.image in ids else None)
            scores = image_targets.before_after(before[i], after[i], goals[i])
            scores.update({
                "objective_start": float(res.history[0, i]), "objective_end": float(res.history[-1, i]),
                "reg_distance_end": float(out.distance[i]), "lambda": choice.lam,
                "path_similarity": mean_defined(path["to_natural"]),
                "path_similarity_natural": mean_defined(path["natural"]),
                "path_similarity_seed": mean_defined(path["to_seed"]),
            })
            image = image_targets.image_array(res.images[i], grey_rgb=True)
            m = mask[i].numpy()
            vis.append(Visualization(
                target=t, image=image, alpha=res.alpha[i].numpy(), history=res.history[:, i].tolist(),
                seconds=res.seconds / len(targets), scores=scores,
                extras={"seed": image_targets.image_array(images[i]), "mask": m,
                        "composite": image_targets.composite(image, m)},
                info={"source": sources[i], "goal": goals[i], "goal_name": model.class_names[goals[i]],
                      "seed_top1": predicted[i], "seed_top1_name": model.class_names[predicted[i]],
                      "reg_layer": layer, "lambda": {"value": choice.lam, "d_min": choice.d_min,
                      "d_max": choice.d_max, "d_chosen": choice.d_chosen, "fraction": choice.fraction},
                      "mask_layer": cfg.mask_layer or model.blocks[-1].path, "path_similarity": path,
                      "batch": len(targets)},
            ))
        return vis


def regularization_layer(ctx: RunContext, fraction: float) -> str:
    """The activation at ``fraction`` of the model's depth (one probing forward per run)."""
    cache = ctx.resources.setdefault("depth-layers", {})
    if fraction not in cache:
        cache[fraction] = depth_layer(ctx.model, fraction)
    return cache[fraction]


def natural_features(ctx: RunContext, class_id: int, cfg: AccentuationConfig, nat: torch.Tensor, layers):
    """Path-similarity features of a class's natural images, cached for the run."""
    cache = ctx.resources.setdefault("seeded-natural-features", {})
    key = (class_id, cfg.natural_images, cfg.image_size, tuple(layers))
    if key not in cache:
        cache[key] = measures.layer_features(ctx.model, nat, layers)
    return cache[key]

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (Accentuation(),)
