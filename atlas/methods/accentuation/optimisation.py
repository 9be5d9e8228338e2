"""The feature-accentuation optimisation (Def. 2.1), shared by the method and the lambda search.

maximise  f_v(tau(F^-1(z))) - lambda * || f_l(tau(F^-1(z))) - f_l(tau(x0)) ||

z starts at the seed image's spectrum (step 0 reproduces x0), tau is the same random crops + noise for
the image and its seed at every step (:class:`~atlas.optim.transforms.PairedCrops`), f_v is the goal
class's logit and ||.|| the per-position L2 distance across channels, averaged over positions and crops
(faccent ``l2_compare``). The seed's crops run only up to the regularisation layer
(``ModelHandle.activations`` stops the forward there) and need no backward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ...models.handle import ModelHandle
from ...optim import OptimizerSpec, OptimResult, TargetRNG, optimize
from ...optim import objectives as obj
from ...optim.objectives import channel_distance
from ...optim.param import FourierImage
from ...optim.transforms import PairedCrops, per_target
from ..image_targets import resize_to_input


@dataclass
class Accentuation:
    """The loop's result plus the regularisation-layer distance of each final image to its seed."""

    result: OptimResult
    distance: torch.Tensor  # (K,) on the full images at the model's input size


def distance_objective(model: ModelHandle, layer: str, crops: PairedCrops, lam: float) -> obj.Objective:
    """-lambda * distance between the views' and the seed views' activations at ``layer``."""

    def fn(ev: obj.Evaluation) -> torch.Tensor:
        a = ev.acts[layer]  # read first: the loop's capture hook also fires on the seed's forward below
        with torch.no_grad():
            ref = model.activations(crops.seed_views, [layer])[layer]
        return -lam * per_target(channel_distance(a, ref), ev.k)

    return obj.Objective(fn, (layer,), f"-{lam:g} * dist@{layer}")


@torch.no_grad()
def full_distance(model: ModelHandle, layer: str, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """(K,) distance at ``layer`` between whole images and their seeds, at the model's input size."""
    a = model.activations(resize_to_input(model, torch.cat([images, seeds])), [layer])[layer]
    k = images.shape[0]
    return channel_distance(a[:k], a[k:]).cpu()


def accentuate(model: ModelHandle, seeds: torch.Tensor, goals: Sequence[int], layer: str, lam: float,
               steps: int, rng: TargetRNG, crops: int = 16, lr: float = 0.05, min_crop: float = 0.05,
               max_crop: float = 0.99, noise: float = 0.02, decay: float = 1.0, desaturation: float = 5.0,
               on_step: Optional[Callable[[int], None]] = None) -> Accentuation:
    """Accentuate ``seeds`` (K, 3 or C, S, S) in [0, 1] toward the logits ``goals`` with regularisation ``lam``
    at ``layer``."""
    seeds = model.to_channels(seeds.to(model.device))  # a one-channel model accentuates the seed's luminance
    param = FourierImage.seeded(seeds, decay=decay, desaturation=desaturation)
    paired = PairedCrops(seeds, crops, model.input_size, min_crop, max_crop, noise)
    objective = obj.class_logit(list(goals)) + distance_objective(model, layer, paired, lam)
    result = optimize(model, param, objective, steps, rng, optimizer=OptimizerSpec("adam", lr=lr),
                      transforms=paired, on_step=on_step)
    return Accentuation(result, full_distance(model, layer, result.images, seeds.cpu()))


def second_logits(model: ModelHandle, images: torch.Tensor) -> list:
    """Each image's second-highest class (Appendix E calibrates lambda toward it)."""
    with torch.no_grad():
        logits = model(resize_to_input(model, images))
    return torch.topk(logits, 2, dim=1).indices[:, 1].tolist()
