"""The order in which a model's layers run, read from one forward pass of a blank image.

* :func:`depth_layer` - feature accentuation regularises "through the ReLU layer closest to 1/4 of the
  model's depth" (feature-accentuation paper, Appendix H; Appendix A uses InceptionV1's mixed3a). Depth is
  counted in activation calls of one forward pass, in execution order. A module that runs more than once
  per forward (torchvision ResNet's ``relu`` serves a whole bottleneck) is replaced by its closest ancestor
  that runs once, so that capturing it (last call) and stopping the forward early at it (first call) see
  one tensor.
* :func:`execution_order` - layer keys sorted by when their modules finish (VITAL matches the blocks
  before a neuron's layer).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from .handle import ModelHandle

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Tanh)


def _blank_forward(model: ModelHandle) -> None:
    size = model.input_size
    model(torch.zeros(1, 3, size, size, device=model.device))


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

            def hook(m, args, out, _name=name, _act=isinstance(mod, ACTIVATIONS)):
                counts[_name] = counts.get(_name, 0) + 1
                if _act:
                    calls.append(_name)

            handles.append(mod.register_forward_hook(hook))
        _blank_forward(model)
    finally:
        for h in handles:
            h.remove()
    if not calls:
        raise ValueError(f"model {model.name} has no activation modules to choose a layer from")
    name = calls[round(fraction * (len(calls) - 1))]
    while counts.get(name, 0) > 1 and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


@torch.no_grad()
def execution_order(model: ModelHandle, keys: Sequence[str]) -> List[str]:
    """``keys`` (layer keys, ``"<module>:in"`` for a module's input) in the order their modules finish
    during a forward pass."""
    seen: List[str] = []
    handles = []
    for k in dict.fromkeys(keys):
        mod = model.module_at(k)
        if k.endswith(":in"):
            handles.append(mod.register_forward_pre_hook(lambda m, a, _k=k: seen.append(_k)))
        else:
            handles.append(mod.register_forward_hook(lambda m, a, o, _k=k: seen.append(_k)))
    try:
        _blank_forward(model)
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(seen))
