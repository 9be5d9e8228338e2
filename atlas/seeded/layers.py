"""Layers chosen by depth, and distances between activations.

Feature accentuation regularises "through the ReLU layer closest to 1/4 of the model's depth"
(feature-accentuation paper, Appendix H; Appendix A uses InceptionV1's mixed3a). Depth is counted in
activation calls of one forward pass, in execution order. A module that runs more than once per forward
(torchvision ResNet's ``relu`` serves a whole bottleneck) is replaced by its closest ancestor that runs
once, so that capturing it (last call) and stopping the forward early at it (first call) see one tensor.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from ..models.handle import ModelHandle

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Tanh)


@torch.no_grad()
def depth_layer(model: ModelHandle, fraction: float = 0.25) -> str:
    """The name of the activation module at ``fraction`` of the model's depth (see the module docstring)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"depth fraction must lie in [0, 1], got {fraction}")
    calls: List[str] = []
    counts: Dict[str, int] = {}
    handles = []
    try:
        for name, mod in model.module.named_modules():
            if not name:
                continue

            def hook(m, args, out, _n=name, _act=isinstance(mod, ACTIVATIONS)):
                counts[_n] = counts.get(_n, 0) + 1
                if _act:
                    calls.append(_n)

            handles.append(mod.register_forward_hook(hook))
        size = model.input_size
        model(torch.zeros(1, 3, size, size, device=model.device))
    finally:
        for h in handles:
            h.remove()
    if not calls:
        raise ValueError(f"model {model.name} has no activation modules to choose a layer from")
    name = calls[round(fraction * (len(calls) - 1))]
    while counts.get(name, 0) > 1 and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def channel_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image mean over positions of the L2 distance across channels: (B,) (faccent ``l2_compare``).

    Convolutional maps are (B, C, H, W); token maps (B, L, D) use the last axis as channels.
    """
    dim = 1 if a.dim() == 4 else -1
    d = ((a - b).pow(2).sum(dim) + eps).sqrt()
    return d.flatten(1).mean(1) if d.dim() > 1 else d
