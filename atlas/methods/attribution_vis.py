"""Attribution visualization (Shi, Li, Yamaguchi et al. 2023; seeds/attribution-visualization-paper.txt).

Explains *which features* of a real image make a layer's neurons contribute to a class: the
Aumann-Shapley attributions R of the layer's neurons for (image, class) (§3.1; from the output-targeted
baseline of ref. [28], or - a declared deviation - from zero) are visualised by
maximising sum f(M (x) X) * R (eq. 3) over an image X and a mask M whose mean is held at beta (eq. 5):
beta by Otsu on the channel-summed attribution map with 200 bins (eq. 6-8) or by hand; lambda starts at
the sum of the attributions and grows x1.2 every tenth of the run (§4). Masked-out pixels are replaced by
the fractal noise pyramid (§3.4, :mod:`atlas.optim.fractal_noise`), drawn afresh every step. Transforms: pad 12,
jitter 9, scale 0.9-1.3, rotate +-12, shear +-4, jitter 4, reflection padding; Adam with exponential
decay (§4; x0.8 every tenth of the run as in the reference code). X and M share a 4-channel Fourier
image started from noise (reference code; reference/07_attrvis.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ..config.validate import rule
from ..data.seed_images import load_seed_images
from ..optim import OptimizerSpec, TargetRNG, optimize
from ..optim import fractal_noise
from ..optim import objectives as obj
from ..optim import transforms as T
from ..optim.masks import otsu_beta, otsu_threshold
from ..optim.param import FourierImage, Parameterization
from ..relevance import ATTRIBUTIONS, spatial_map
from ..relevance.attributions import output_targeted_baseline
from ..targets import Target
from . import image_measures as measures
from .base import Method, RunContext, Visualization
from .image_targets import BACKGROUND, before_after, goal_scores, image_array, resolve_goals, resize_to_input


INITS = ("noise", "seed")
#: Where the Aumann-Shapley path starts (see ``AttributionVisConfig.baseline``).
BASELINES = ("output_targeted", "zero")


#: BibTeX of the paper this method implements (shown on its pages, cited with its figures).
PAPER_BIBTEX = """@article{shi2023attribution,
  title   = {Understanding contributing neurons via attribution visualization},
  author  = {Shi, Rui and Li, Tianxing and Yamaguchi, Yasushi},
  journal = {Neurocomputing},
  year    = {2023}
}"""


@dataclass(frozen=True)
class AttributionVisConfig:
    """Attribution-visualization settings; paper values (§3-4) unless noted.

    steps: not stated in the paper (reference code: 2048). init: ``noise`` (paper Fig. 3) starts X from
    lucid noise and M uniform at beta (our choice: the reference starts M at 0.5 and has 2048 steps to
    reach beta); ``seed`` (our option for short CPU runs) starts X from the seed image and M from the
    attribution map, a soft step at its Otsu threshold with mean ~ beta. lr: Adam 0.05 (reference: 0.02) times
    ``lr_decay`` every tenth of the run. views: transformed copies per step. layer: where R is computed
    (None: the model's second-to-last matched block, stride 16 - the paper's mixed4d / block4 depth).
    attribution: a name in ``ATTRIBUTIONS`` (``aumann_shapley``, paper) with ``attribution_steps``
    path-integral steps; positive_only keeps R >= 0 (reference code). baseline: where the Aumann-Shapley path
    starts - ``output_targeted``, the paper's (§3.1, ref. [28]; :func:`~atlas.relevance.output_targeted_baseline`,
    a masked copy of the activations at which the class logit is zero, found with ``baseline_steps`` Adam
    steps for its spatial and its channel mask: reference code 2048 and 4096, the paper presets'), or
    ``zero``, a deviation the figure page declares. beta: the mask's mean (None: Otsu
    with ``otsu_bins`` = 200). lambda_scale x sum(R) is lambda at the start (paper: 1; reference: 20),
    times ``lambda_growth`` every tenth of the run. levels: D = 5 (six-level pyramid); noise_alpha: the
    pyramid's alpha (None: 2 / sqrt(size)). Transforms: jitter1 9, scale 0.9-1.3, rotate 12, shear 4,
    jitter2 4 (pad 12 by reflection).
    """

    steps: int = 512
    init: str = "noise"
    lr: float = 0.05
    lr_decay: float = 0.8
    views: int = rule(4, ge=1)
    image_size: int = 224
    layer: Optional[str] = None
    attribution: str = "aumann_shapley"
    attribution_steps: int = rule(16, ge=1)
    baseline: str = rule("output_targeted", choices=BASELINES)
    baseline_steps: Tuple[int, int] = (256, 512)
    positive_only: bool = True
    beta: Optional[float] = None
    otsu_bins: int = rule(200, ge=2)
    lambda_scale: float = 1.0
    lambda_growth: float = 1.2
    levels: int = rule(5, ge=1)
    noise_alpha: Optional[float] = None
    jitter1: int = 9
    scale_min: float = 0.9
    scale_max: float = 1.3
    rotate: float = 12.0
    shear: float = 4.0
    jitter2: int = 4

    def __post_init__(self):
        ATTRIBUTIONS.get(self.attribution)
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")
        if self.beta is not None and not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta must lie in (0, 1) or be unset (Otsu), got {self.beta}")


class MaskedImage(Parameterization):
    """X and M from one 4-channel Fourier image; renders M (x) X with a fresh fractal noise pyramid."""

    def __init__(self, fourier: FourierImage, rng: TargetRNG, levels: int, alpha: Optional[float]):
        self.fourier, self.rng, self.levels, self.alpha = fourier, rng, levels, alpha
        self.last_mask: Optional[torch.Tensor] = None

    def params(self):
        return self.fourier.params()

    def __call__(self) -> torch.Tensor:
        raw = self.fourier.raw()
        x, m = self.fourier.rgb(raw), self.fourier.mask(raw)
        self.last_mask = m
        linear = fractal_noise.linear_pyramid(self.rng, self.fourier.size, self.levels, self.alpha,
                                              channels=self.fourier.colors)
        return fractal_noise.compose(x, m, linear, finish=fractal_noise.finish_noise)


def heatmap_mask(heat: torch.Tensor, betas: torch.Tensor, bins: int = 200) -> torch.Tensor:
    """(K, 1, S, S): sigmoid((H - T*) / (0.1 range(H))) per map, shifted so its mean is beta (init ``seed``)."""
    out = []
    for h, beta in zip(heat, betas):
        t = otsu_threshold(h, bins)
        z = (h - t) / (0.1 * float(h.max() - h.min()) + 1e-12)
        lo, hi = -20.0, 20.0
        for _ in range(40):  # bisect the shift that gives the mean beta
            mid = 0.5 * (lo + hi)
            if float(torch.sigmoid(z + mid).mean()) > beta:
                hi = mid
            else:
                lo = mid
        out.append(torch.sigmoid(z + 0.5 * (lo + hi)).clamp(0.02, 0.98))
    return torch.stack(out)[:, None]


def attribution_objective(layer: str, attr: torch.Tensor, beta: torch.Tensor, lam0: torch.Tensor,
                          growth: float, param: MaskedImage) -> obj.Objective:
    """sum f_l(tau(M (x) X)) * R - lambda (mean(M) - beta)^2 per target (eq. 3, 5)."""

    def fn(ev: obj.Evaluation) -> torch.Tensor:
        a = ev.acts[layer]
        r = attr.to(a.device, a.dtype).repeat_interleave(a.shape[0] // ev.k, dim=0)
        score = T.per_target((a * r).flatten(1).sum(1), ev.k)
        lam = lam0.to(a.device) * growth ** (ev.step // max(1, ev.steps // 10))
        area = (param.last_mask.flatten(1).mean(1) - beta.to(a.device)) ** 2
        return score - lam * area

    return obj.Objective(fn, (layer,), f"attribution-weighted activation @{layer} - area",
                         needs_logits=False)  # the loop's pass ends at the layer


class AttributionVis(Method):
    name = "attribution_vis"
    title = "Attribution visualization"
    version = "2"
    Config = AttributionVisConfig
    kinds = ("image",)
    uses_data = True
    pixel_settings = ("image_size", "jitter1", "jitter2")
    paper = "shi2023attribution"
    bibtex = PAPER_BIBTEX
    #: the reference code's optimisation (attrVisGNet.py: 2048 steps, Adam lr 0.02) and baseline
    #: (gen_AS_baseline.py: 2048 + 4096 mask steps); the rest are the defaults
    paper_settings = {"steps": 2048, "lr": 0.02, "baseline_steps": (2048, 4096)}
    #: the metrics judge what the page shows as the result: the masked composite over grey (the paper
    #: forwards the composed visualization, §4.2)
    judged = "composite.png"
    summary = ("Visualises the Aumann-Shapley attributions of a layer's neurons for a real image and a "
               "class: an image and an area-constrained mask are optimised together; masked-out pixels "
               "are replaced by a fractal noise pyramid.")

    def unsupported_reason(self, model: str, target: Target):
        """The paper explains (image, class) pairs: each image toward its own class. Rival goals are
        feature accentuation's (its Fig. 9)."""
        reason = super().unsupported_reason(model, target)
        if reason is None and target.toward is not None:
            return "attribution visualization explains each image toward its own class (rival goals: accentuation)"
        return reason

    def passes_per_target(self, cfg: AttributionVisConfig, kind: str = "image") -> float:
        """The visualisation's steps x views, the path integral's steps and, from the output-targeted
        baseline, its mask steps (one forward+backward each; 3x the visualisation at the paper's settings)."""
        otb = cfg.attribution == "aumann_shapley" and cfg.baseline == "output_targeted"
        base = sum(cfg.baseline_steps) if otb else 0
        return float(cfg.steps * cfg.views + cfg.attribution_steps + base)

    def run(self, ctx: RunContext, cfg: AttributionVisConfig, targets: Sequence[Target], seeds: Sequence[int]):
        model = ctx.model
        layer = cfg.layer or model.blocks[-2].path
        model.module_at(layer)
        images, sources = load_seed_images(ctx.pool, targets, cfg.image_size)
        goals, predicted = resolve_goals(model, images, targets)
        x_in = resize_to_input(model, images)
        attr, baseline_note = attributions(model, cfg, x_in, goals, layer, seeds)
        attr_sum = attr.flatten(1).sum(1).cpu()
        if cfg.positive_only:
            attr = attr.clamp(min=0)
        heat = spatial_map(attr, cfg.image_size).cpu()
        betas = torch.tensor([cfg.beta if cfg.beta is not None else otsu_beta(h, cfg.otsu_bins) for h in heat])
        lam0 = cfg.lambda_scale * attr.flatten(1).sum(1).abs().clamp(min=1e-6).cpu()
        rng = TargetRNG(seeds, ctx.device)
        if cfg.init == "seed":
            start = FourierImage.seeded(model.to_channels(images.to(ctx.device)), desaturation=4.0,
                                        mask=heatmap_mask(heat, betas, cfg.otsu_bins).to(ctx.device))
        else:
            start = FourierImage.noise(rng, cfg.image_size, channels=model.in_chans).with_mask(betas)
        param = MaskedImage(start, rng, cfg.levels, cfg.noise_alpha)
        transforms = T.compose(
            T.affine_views(cfg.views, cfg.jitter1, (cfg.scale_min, cfg.scale_max), cfg.rotate, cfg.shear, cfg.jitter2),
            T.resize(model.input_size),
        )
        result = optimize(
            model, param, attribution_objective(layer, attr, betas, lam0, cfg.lambda_growth, param), cfg.steps, rng,
            optimizer=OptimizerSpec("adam", lr=cfg.lr, schedule="exponential", gamma=cfg.lr_decay,
                                    decay_every=max(1, cfg.steps // 10)),
            transforms=transforms, on_step=ctx.on_step,
        )
        with torch.no_grad():
            raw = param.fourier.raw()
            x, m = param.fourier.rgb(raw).cpu(), param.fourier.mask(raw).cpu()
            shown = m * x + (1 - m) * BACKGROUND
            feats = model.features(resize_to_input(model, shown), [layer])
        classes = [t.class_id for t in targets]
        before = goal_scores(model, result.initial, goals, classes)
        after = goal_scores(model, shown, goals, classes)
        out = []
        for i, t in enumerate(targets):
            scores = before_after(before[i], after[i], goals[i])
            scores.update({
                "objective_start": float(result.history[0, i]), "objective_end": float(result.history[-1, i]),
                "beta": float(betas[i]), "mask_mean": float(m[i].mean()),
                "visualization_correlation": measures.visualization_correlation(feats[layer][i].cpu(), attr[i].cpu()),
                "classification_consistency": float(measures.classification_consistency(feats["logits"][i], goals[i])),
                "attribution_sum": float(attr_sum[i]),
            })
            image, mask = image_array(x[i], grey_rgb=True), image_array(m[i])
            out.append(Visualization(
                target=t, image=image, alpha=mask, history=result.history[:, i].tolist(),
                seconds=result.seconds / len(targets), scores=scores,
                extras={"seed": image_array(images[i]), "mask": mask, "composite": image_array(shown[i], grey_rgb=True)},
                info={"source": sources[i], "goal": goals[i], "goal_name": model.class_names[goals[i]],
                      "seed_top1": predicted[i], "seed_top1_name": model.class_names[predicted[i]],
                      "layer": layer, "attribution": cfg.attribution, "baseline": baseline_note,
                      "beta_from": "otsu" if cfg.beta is None else "config",
                      "batch": len(targets)},
            ))
        return out

def attributions(model, cfg: AttributionVisConfig, x: torch.Tensor, goals: Sequence[int], layer: str,
                 seeds: Sequence[int]) -> Tuple[torch.Tensor, str]:
    """R at ``layer`` for each image and goal, and how its baseline was chosen (shown on the figure page)."""
    if cfg.attribution != "aumann_shapley":
        attr = ATTRIBUTIONS.get(cfg.attribution)(model, x, goals, layer, cfg.attribution_steps)
        return attr.detach(), f"{cfg.attribution} (no path baseline)"
    if cfg.baseline == "zero":
        note = "zero - a deviation: the paper starts the path at the output-targeted baseline (§3.1, ref. [28])"
        return ATTRIBUTIONS.get("aumann_shapley")(model, x, goals, layer, cfg.attribution_steps).detach(), note
    base = output_targeted_baseline(model, x, goals, layer, tuple(cfg.baseline_steps), seeds=seeds)
    attr = ATTRIBUTIONS.get("aumann_shapley")(model, x, goals, layer, cfg.attribution_steps, baseline=base)
    steps = "+".join(str(s) for s in cfg.baseline_steps)
    return attr.detach(), f"output-targeted (§3.1, ref. [28]; {steps} mask steps)"

#: The registered variants of this method (the composition root adds them to ``METHODS``).
VARIANTS = (AttributionVis(),)
