"""Attributions at a hidden layer for (image, class): one registry of named methods, one signature.

``fn(model, images, class_ids, layer, steps) -> (B, C, h, w)``: images (B, 3, S, S) in [0, 1] (any device),
``class_ids`` one class per image, ``steps`` path-integral steps where the method has a path (ignored
otherwise). Transformer tokens become patch grids (:func:`as_maps`).

* ``aumann_shapley`` - the attribution visualization paper's choice (§3.1, ref. [28]): the Aumann-Shapley
  value of every neuron of layer l, i.e. integrated gradients in activation space,
  R = (a - a') * mean_t dF_c/da (a' + t (a - a')), t at the midpoints of ``steps`` intervals, from a
  baseline a' (default 0; :func:`output_targeted_baseline` gives the paper's). Completeness:
  sum(R) ~ F_c(a) - F_c(a'), to the accuracy of the Riemann sum.
* ``gradcam`` - Grad-CAM (Selvaraju et al. 2017), used by the feature-accentuation paper for its masks
  (Appendix C, Fig. 9): ReLU(sum_k mean(dF_c/dA_k) A_k), one channel (C = 1).
* ``lrp`` - zennit LRP from the class logit (:mod:`atlas.relevance.lrp`: the architecture's composite
  and canonizers); VITAL's relevance (supplementary §1.3). Vision transformers: a one-line error.
* ``act_x_grad`` - activation x gradient of the class logit, about half the cost of LRP, and it works
  for vision transformers.

The same registry scores channels (:func:`channel_attribution`: the maps summed over positions), e.g. to
pick a class's most relevant neurons (``[targets.neuron_settings] relevance``), and draws maps
(:func:`spatial_map`), e.g. for the image-seeded methods' masks.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

from ..models.handle import ModelHandle, channels_first
from ..registry import Registry
from .lrp import class_start, layer_relevance

#: ``fn(model, images, class_ids, layer, steps) -> (B, C, h, w)`` (see the module docstring).
ATTRIBUTIONS: Registry[Callable[..., torch.Tensor]] = Registry("attribution method")


def as_maps(a: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) maps for every method: transformer tokens (B, L, D) become the patch grid (B, D, g, g)
    (a leading class token, when L - 1 is a square, is dropped), or (B, D, L, 1) if L is no grid."""
    if a.dim() == 4:
        return channels_first(a)  # a channels-last map (Swin) too
    n = a.shape[1]
    for skip in (0, 1):
        g = int(round((n - skip) ** 0.5))
        if g * g == n - skip and g > 1:
            return a[:, skip:].transpose(1, 2).reshape(a.shape[0], a.shape[2], g, g)
    return a.transpose(1, 2).unsqueeze(-1)


@ATTRIBUTIONS.register("aumann_shapley")
def aumann_shapley(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int], layer: str,
                   steps: int = 16, baseline: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Aumann-Shapley (layer integrated gradients) of every neuron of ``layer`` from ``baseline`` (shaped
    like the layer's activations; None: zero)."""
    images = images.to(model.device)
    with torch.no_grad():
        acts = model.activations(images, [layer])[layer]
    t = (torch.arange(steps, device=images.device, dtype=acts.dtype) + 0.5) / steps
    out = []
    module = model.module_at(layer)
    for i, cid in enumerate(class_ids):
        a = acts[i : i + 1]
        b = torch.zeros_like(a) if baseline is None else baseline[i : i + 1].to(a.device, a.dtype)
        path = (b + t.view(-1, *[1] * (a.dim() - 1)) * (a - b)).requires_grad_(True)
        handle = module.register_forward_hook(lambda m, args, o: path)
        try:
            logits = model(images[i : i + 1].expand(steps, -1, -1, -1))
        finally:
            handle.remove()
        (grad,) = torch.autograd.grad(logits[:, int(cid)].sum(), path)
        out.append(((a - b) * grad.mean(0, keepdim=True)).detach())
    return as_maps(torch.cat(out))


def output_targeted_baseline(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int], layer: str,
                             steps: Tuple[int, int] = (2048, 4096), lr: Tuple[float, float] = (0.009, 0.01),
                             l1: float = 16.0, seeds: Optional[Sequence[int]] = None) -> torch.Tensor:
    """The output-targeted baseline of the attribution visualization paper's Aumann-Shapley values (§3.1,
    ref. [28], Shi, Li, Yamaguchi 2022), as its reference code computes it (``gen_AS_baseline.py``,
    reference/07_attrvis.md): the activations a of ``layer`` scaled by a mask, b = sigmoid(m) * a, with m
    found by Adam so that the class logit at b is driven to zero while b stays close to a,

        min_m  l1 / sum(a) * ||b - a||_1 + |F_c(b)|,

    once with a spatial mask (one value per position: ``steps[0]`` steps at ``lr[0]``) and once with a
    channel mask (one value per channel: ``steps[1]`` at ``lr[1]``); the baseline is their element-wise
    minimum. Masks start from N(0, 1), drawn per image from ``seeds`` (default 0, 1, ...), so an image's
    baseline does not depend on the batch it is computed in (one loss term per image).
    Returns (B, ...) shaped like the layer's activations, detached."""
    images = images.to(model.device)
    with torch.no_grad():
        acts = model.activations(images, [layer])[layer].float()
    ids = torch.as_tensor([int(c) for c in class_ids], device=images.device)
    alpha = l1 / acts.flatten(1).sum(1).abs().clamp(min=1e-12)
    module = model.module_at(layer)
    seeds = list(range(acts.shape[0])) if seeds is None else [int(v) % 2**63 for v in seeds]
    spatial = (acts.shape[0], 1, *acts.shape[2:]) if acts.dim() == 4 else (*acts.shape[:2], 1)
    channel = (*acts.shape[:2], 1, 1) if acts.dim() == 4 else (acts.shape[0], 1, acts.shape[-1])
    found = []
    for shape, n, rate in ((spatial, steps[0], lr[0]), (channel, steps[1], lr[1])):
        m = torch.cat([torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(v + n)) for v in seeds])
        m = m.to(images.device).requires_grad_(True)
        opt = torch.optim.Adam([m], lr=rate)
        for _ in range(int(n)):
            b = torch.sigmoid(m) * acts
            handle = module.register_forward_hook(lambda mod, args, o: b)
            try:
                logits = model(images).float()
            finally:
                handle.remove()
            loss = alpha * (b - acts).abs().flatten(1).sum(1) + logits.gather(1, ids[:, None])[:, 0].abs()
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        found.append((torch.sigmoid(m) * acts).detach())
    return torch.minimum(*found)


@ATTRIBUTIONS.register("lrp")
def lrp(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int], layer: str,
        steps: int = 1) -> torch.Tensor:
    """LRP relevance of every neuron of ``layer`` for each image's class, shaped like the layer's
    activations (``steps`` is unused)."""
    return as_maps(layer_relevance(model, images.to(model.device), class_start(list(class_ids)), [layer])[layer])


@ATTRIBUTIONS.register("gradcam")
def gradcam(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int], layer: str,
            steps: int = 1) -> torch.Tensor:
    """Grad-CAM map of ``layer`` for each image's class: (B, 1, h, w), non-negative."""
    images = images.to(model.device)
    held = {}

    def hook(m, args, out):  # a leaf at the layer: the backward stops there
        held["a"] = out.detach().requires_grad_(True)
        return held["a"]

    handle = model.module_at(layer).register_forward_hook(hook)
    try:
        logits = model(images)
    finally:
        handle.remove()
    ids = torch.as_tensor([int(c) for c in class_ids], device=logits.device)
    a = held["a"]
    (grad,) = torch.autograd.grad(logits.gather(1, ids[:, None]).sum(), a)
    a, grad = as_maps(a.detach()), as_maps(grad)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * a).sum(1, keepdim=True))


@ATTRIBUTIONS.register("act_x_grad")
def act_x_grad(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int], layer: str,
               steps: int = 1, batch: int = 8) -> torch.Tensor:
    """Activation x gradient of each image's class logit at ``layer``, ``batch`` images per pass
    (``steps`` is unused)."""
    out = []
    for s in range(0, images.shape[0], batch):
        x = images[s:s + batch].to(model.device).requires_grad_(True)
        ids = torch.as_tensor(list(class_ids[s:s + batch]), device=model.device)
        with model.capture([layer]) as acts:
            logits = model(x)
        a = acts[layer]
        (g,) = torch.autograd.grad(logits.gather(1, ids[:, None]).sum(), a)
        out.append((a * g).detach().float())
    return as_maps(torch.cat(out))


def channel_attribution(method: str, model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int],
                        layer: str) -> torch.Tensor:
    """(N, C) on the CPU: the attribution ``method`` of every channel of ``layer`` for each image's class,
    summed over positions (e.g. to rank a class's most relevant neurons)."""
    maps = ATTRIBUTIONS.get(method)(model, images, class_ids, layer)
    return maps.flatten(2).sum(-1).float().cpu()


def spatial_map(attr: torch.Tensor, size: int) -> torch.Tensor:
    """Channel-summed attribution (B, h, w) upsampled to ``size`` (bilinear): the "attribution intensity
    map" H of attribution visualization eq. (6) and the feature-accentuation masks' input."""
    h = attr.sum(1, keepdim=True)
    return torch.nn.functional.interpolate(h, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
