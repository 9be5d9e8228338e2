"""Objectives: callables on an :class:`Evaluation` that return one score per target (to be maximised).

Objectives compose with ``+ - *`` and carry a readable ``description`` (lucid style). An objective
declares the layers it reads (``layers``); the loop hooks exactly those, and removes the hooks after.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Sequence

import torch
import torch.nn.functional as F

from ..models.handle import as_channels, channel_means, channels_first
from .transforms import per_target


@dataclass
class Evaluation:
    """What one forward pass produced.

    image:   (K, 3, H, W) the rendered images, before transforms.
    views:   (K * n, 3, S, S) what the model saw.
    logits:  (K * n, classes), or None when the objective reads no logits (the pass stopped at its layers).
    acts:    captured activations by layer key, batch K * n.
    k:       number of targets; ``n = views.shape[0] // k``.
    terms:   named parts of the objective recorded by :func:`logged` (per target, this step); the loop
             keeps their history in ``OptimResult.terms``.
    """

    image: torch.Tensor
    views: torch.Tensor
    logits: torch.Tensor
    acts: Dict[str, torch.Tensor]
    k: int
    step: int = 0
    steps: int = 1
    terms: Dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """A per-target score. ``layers``: the activations it reads; ``needs_logits``: whether it reads
    ``ev.logits`` (when it does not, the loop stops each forward pass at the last of ``layers``: a channel
    of an early layer costs only the layers below it)."""

    def __init__(self, fn: Callable[[Evaluation], torch.Tensor], layers: Sequence[str] = (), description: str = "",
                 needs_logits: bool = True):
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.description = description
        self.needs_logits = needs_logits

    def __call__(self, ev: Evaluation) -> torch.Tensor:
        return self.fn(ev)

    def __add__(self, other: "Objective") -> "Objective":
        if isinstance(other, (int, float)):
            return Objective(lambda ev: self(ev) + other, self.layers, f"{self.description} + {other}",
                             self.needs_logits)
        return Objective(lambda ev: self(ev) + other(ev), self.layers + other.layers,
                         f"{self.description} + {other.description}", self.needs_logits or other.needs_logits)

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    def __neg__(self) -> "Objective":
        return (-1.0) * self

    def __mul__(self, w: float) -> "Objective":
        return Objective(lambda ev: w * self(ev), self.layers, f"{w:g} * ({self.description})", self.needs_logits)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.description})"


class _Constant:
    """A constant tensor, copied to each device once: copying it at every step would make a GPU loop wait
    for the host (a blocking host-to-device copy)."""

    def __init__(self, value: torch.Tensor):
        self.value = value
        self.copies: Dict[torch.device, torch.Tensor] = {}

    def on(self, device: torch.device) -> torch.Tensor:
        hit = self.copies.get(device)
        if hit is None:
            hit = self.copies[device] = self.value.to(device)
        return hit



def class_logit(class_ids: Sequence[int]) -> Objective:
    """The logit of target k's class, averaged over its views."""
    ids = _Constant(torch.as_tensor(list(class_ids)))

    def fn(ev: Evaluation) -> torch.Tensor:
        cls = ids.on(ev.logits.device).repeat_interleave(ev.logits.shape[0] // ev.k)
        return per_target(ev.logits.gather(1, cls[:, None])[:, 0], ev.k)

    return Objective(fn, (), f"logit{list(class_ids)}")


def channel(layer: str, channels: Sequence[int]) -> Objective:
    """Mean activation of channel ``channels[k]`` of ``layer`` (over positions and views)."""
    ch = _Constant(torch.as_tensor(list(channels)))

    def fn(ev: Evaluation) -> torch.Tensor:
        a = channel_means(ev.acts[layer])
        c = ch.on(a.device).repeat_interleave(a.shape[0] // ev.k)
        return per_target(a.gather(1, c[:, None])[:, 0], ev.k)

    return Objective(fn, (layer,), f"channel {layer}{list(channels)}", needs_logits=False)


def direction(layer: str, vectors: torch.Tensor, cossim_pow: float = 2.0, min_cos: float = 0.1) -> Objective:
    """dot(a, v) * clamp(cos(a, v), min_cos) ** cossim_pow on the spatially averaged activations of
    ``layer`` - the concept-visualisation objective of horama/xplique (``dot_cossim``)."""
    vecs = _Constant(torch.as_tensor(vectors, dtype=torch.float32))

    def fn(ev: Evaluation) -> torch.Tensor:
        a = channel_means(ev.acts[layer])
        v = vecs.on(a.device).repeat_interleave(a.shape[0] // ev.k, dim=0)
        dot = (a * v).sum(1)
        cos = F.cosine_similarity(a, v, dim=1).clamp(min=min_cos)
        return per_target(dot * cos.pow(cossim_pow), ev.k)

    return Objective(fn, (layer,), f"direction {layer}", needs_logits=False)


def per_target_weights(objective: Objective, weights: Sequence[float]) -> Objective:
    """``objective`` with target k's score multiplied by ``weights[k]`` (e.g. -1 for the negative
    visualisation of a channel, lucid's ``-channel``, next to +1 for the channels maximised in the same
    batch)."""
    w = _Constant(torch.as_tensor(list(weights), dtype=torch.float32))

    def fn(ev: Evaluation) -> torch.Tensor:
        value = objective(ev)
        return value * w.on(value.device).to(value.dtype)

    return Objective(fn, objective.layers, f"{list(weights)} x ({objective.description})", objective.needs_logits)


def gram_similarity(acts: torch.Tensor, k: int) -> torch.Tensor:
    """(K, K) cosine similarity between the targets' Gram matrices at one layer: per view the (C, C) Gram
    matrix of the activations over positions, averaged over each target's views, flattened and
    L2-normalised (lucid's ``diversity``)."""
    f = as_channels(acts)
    gram = f.float() @ f.float().transpose(1, 2)
    gram = gram.reshape(k, -1, *gram.shape[1:]).mean(1).flatten(1)
    gram = F.normalize(gram, dim=1, eps=1e-10)
    return gram @ gram.T


def diversity(layer: str, groups: Sequence[object], weight: float = 1.0) -> Objective:
    """lucid's diversity objective, per target: ``-weight`` x the summed cosine similarity of target k's
    Gram matrix at ``layer`` with those of the other targets of its group (``groups[k]``; None: no group,
    score 0), divided by the group's size - so maximising it pushes the group's images apart in style.
    Added to the channel objective, it gives a channel's *diverse* visualisations (lucid, Olah et al. 2017,
    "Diversity")."""
    labels = list(groups)
    same = torch.tensor([[a is not None and a == b and i != j for j, b in enumerate(labels)]
                         for i, a in enumerate(labels)], dtype=torch.float32)
    sizes = same.sum(1) + 1.0
    mask, size = _Constant(same), _Constant(sizes)

    def fn(ev: Evaluation) -> torch.Tensor:
        sims = gram_similarity(ev.acts[layer], ev.k)
        m = mask.on(sims.device)
        return -weight * (sims * m).sum(1) / size.on(sims.device)

    return Objective(fn, (layer,), f"-{weight:g} diversity {layer}", needs_logits=False)


def channel_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image mean over positions of the L2 distance across channels between activations ``a`` and ``b``:
    (B,) (faccent ``l2_compare``). Maps and tokens are read channels first (:func:`channels_first`: a
    token map (B, L, D) and a channels-last map use their last axis as channels)."""
    if a.dim() > 2:
        a, b = channels_first(a), channels_first(b)
        d = ((a - b).pow(2).sum(1) + eps).sqrt()
        return d.flatten(1).mean(1)
    return ((a - b).pow(2).sum(-1) + eps).sqrt()


def image_differences(x: torch.Tensor):
    """The four finite differences of images (B, C, H, W): horizontal, vertical and the two diagonals."""
    return (
        x[:, :, :, :-1] - x[:, :, :, 1:],
        x[:, :, :-1, :] - x[:, :, 1:, :],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
        x[:, :, :-1, :-1] - x[:, :, 1:, 1:],
    )


def total_variation(weight: float = 1.0, weight_l1: float = 0.0, pixel_l2: float = 0.0, model=None,
                    on_views: bool = False, whole_batch: bool = False) -> Objective:
    """-(weight * TV_l2 + weight_l1 * TV_l1 + pixel_l2 * ||x||_2), the image priors of DeepInversion.

    TV_l2 is the sum of the L2 norms of the four finite differences (:func:`image_differences`), TV_l1 the
    sum of their mean absolute values, ||x||_2 the norm of the pixels. The variants the methods use:

    * ``x``: the rendered images (``ev.image``), or what the model saw (``on_views``: after the transforms,
      as DeepInversion's reference code), in the model's normalised input space when ``model`` is given
      (VITAL, DeepInversion), else in [0, 1].
    * per image (one value per target), or ``whole_batch``: one norm over the whole batch, as DeepInversion's
      ``get_image_prior_losses``, returned as the same value for every target.
    """

    def fn(ev: Evaluation) -> torch.Tensor:
        x = ev.views if on_views else ev.image
        if model is not None:
            x = model.normalize(x)
        diffs = image_differences(x)
        if whole_batch:
            total = weight * sum(torch.norm(d) for d in diffs)
            if weight_l1:
                total = total + weight_l1 * sum(d.abs().mean() for d in diffs)
            if pixel_l2:
                total = total + pixel_l2 * torch.norm(x)
            return -total.expand(ev.k)
        total = weight * sum(d.flatten(1).norm(dim=1) for d in diffs)
        if weight_l1:
            total = total + weight_l1 * sum(d.abs().flatten(1).mean(1) for d in diffs)
        if pixel_l2:
            total = total + pixel_l2 * x.flatten(1).norm(dim=1)
        return -total

    return Objective(fn, (), f"-({weight:g} TV_l2 + {weight_l1:g} TV_l1 + {pixel_l2:g} l2)", needs_logits=False)


def l2(weight: float = 1.0, center: float = 0.5) -> Objective:
    """-weight * ||image - center||_2 per target."""

    def fn(ev: Evaluation) -> torch.Tensor:
        return -weight * (ev.image - center).flatten(1).norm(dim=1)

    return Objective(fn, (), f"-{weight:g} l2", needs_logits=False)


def logged(name: str, objective: Objective, sign: float = 1.0) -> Objective:
    """``objective`` unchanged, recording ``sign * objective`` per target as ``ev.terms[name]`` at every step
    (e.g. ``sign=-1`` to log a penalty as the positive loss it is)."""

    def fn(ev: Evaluation) -> torch.Tensor:
        value = objective(ev)
        ev.terms[name] = sign * value.detach()
        return value

    return Objective(fn, objective.layers, objective.description, objective.needs_logits)
