"""Attributions at a hidden layer for (image, class): a registry of named methods.

* ``aumann_shapley`` - the attribution visualization paper's choice (§3.1, ref. [28]): the Aumann-Shapley
  value of every neuron of layer l, i.e. integrated gradients in activation space,
  R = (a - a') * mean_t dF_c/da (a' + t (a - a')), t at the midpoints of ``steps`` intervals, with the
  zero baseline a' = 0 (the paper's "output-targeted baseline" [28] is not implemented). Completeness:
  sum(R) ~ F_c(a) - F_c(a'), to the accuracy of the Riemann sum.
* ``gradcam`` - Grad-CAM (Selvaraju et al. 2017), used by the feature-accentuation paper for its masks
  (Appendix C, Fig. 9): ReLU(sum_k mean(dF_c/dA_k) A_k), one channel.

Every method returns (B, C, h, w) (``gradcam``: C = 1). ``lrp``: zennit LRP from :mod:`atlas.relevance`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..models.handle import ModelHandle
from ..registry import Registry

#: ``fn(model, images, layer, class_ids, steps) -> (B, C, h, w)``; images (B, 3, S, S) in [0, 1].
ATTRIBUTIONS: Registry[Callable[..., torch.Tensor]] = Registry("attribution method")


def _as_maps(a: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) maps for every method: transformer tokens (B, L, D) become the patch grid (B, D, g, g)
    (a leading class token, when L - 1 is a square, is dropped), or (B, D, L, 1) if L is no grid."""
    if a.dim() == 4:
        return a
    n = a.shape[1]
    for skip in (0, 1):
        g = int(round((n - skip) ** 0.5))
        if g * g == n - skip and g > 1:
            return a[:, skip:].transpose(1, 2).reshape(a.shape[0], a.shape[2], g, g)
    return a.transpose(1, 2).unsqueeze(-1)


@ATTRIBUTIONS.register("aumann_shapley")
def aumann_shapley(model: ModelHandle, images: torch.Tensor, layer: str, class_ids: Sequence[int],
                   steps: int = 16) -> torch.Tensor:
    """Aumann-Shapley (layer integrated gradients, zero baseline) of every neuron of ``layer``."""
    images = images.to(model.device)
    with torch.no_grad():
        acts = model.activations(images, [layer])[layer]
    t = (torch.arange(steps, device=images.device, dtype=acts.dtype) + 0.5) / steps
    out = []
    module = model.module_at(layer)
    for i, cid in enumerate(class_ids):
        a = acts[i : i + 1]
        path = (t.view(-1, *[1] * (a.dim() - 1)) * a).requires_grad_(True)  # baseline 0
        handle = module.register_forward_hook(lambda m, args, o: path)
        try:
            logits = model(images[i : i + 1].expand(steps, -1, -1, -1))
        finally:
            handle.remove()
        (grad,) = torch.autograd.grad(logits[:, int(cid)].sum(), path)
        out.append((a * grad.mean(0, keepdim=True)).detach())
    return _as_maps(torch.cat(out))


@ATTRIBUTIONS.register("lrp")
def lrp(model: ModelHandle, images: torch.Tensor, layer: str, class_ids: Sequence[int],
        steps: int = 1) -> torch.Tensor:
    """LRP relevance (zennit, :mod:`atlas.relevance`: the architecture's composite and canonizers) of every
    neuron of ``layer`` for each image's class, shaped like the layer's activations (the option the issue
    names beside Aumann-Shapley; ``steps`` is unused). Vision transformers: a one-line error (no rules)."""
    from ..relevance import class_start, layer_relevance

    return _as_maps(layer_relevance(model, images.to(model.device), class_start(list(class_ids)), [layer])[layer])


@ATTRIBUTIONS.register("gradcam")
def gradcam(model: ModelHandle, images: torch.Tensor, layer: str, class_ids: Sequence[int],
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
    a, grad = _as_maps(a.detach()), _as_maps(grad)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * a).sum(1, keepdim=True))


def spatial_map(attr: torch.Tensor, size: int) -> torch.Tensor:
    """Channel-summed attribution (B, h, w) upsampled to ``size`` (bilinear): the "attribution intensity
    map" H of attribution visualization eq. (6) and the feature-accentuation masks' input."""
    h = attr.sum(1, keepdim=True)
    return torch.nn.functional.interpolate(h, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
