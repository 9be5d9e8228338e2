"""Questions about a model's architecture answered without weights: the architecture is built on PyTorch's
``meta`` device (no memory, no file, about 0.1 s even for ViT-L), so the planner can ask them for any
torchvision or timm model name."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import torch
from torch import nn


def _meta_module(name: str) -> Optional[nn.Module]:
    """The untrained architecture of model ``name`` on the meta device, or None if it cannot be built."""
    try:
        with torch.device("meta"):
            if name.startswith("timm:"):
                import timm

                return timm.create_model(name[5:].split(".")[0], pretrained=False)
            if name.startswith("efficientnet_lite") and name[17:].isdigit():
                import timm

                return timm.create_model(f"tf_{name}", pretrained=False)  # zoo.py: the packaged models
            import torchvision

            return torchvision.models.get_model(name, weights=None)
    except Exception:  # unknown name or an architecture that cannot be built on the meta device
        return None


@lru_cache(maxsize=64)
def has_batchnorm(name: str) -> Optional[bool]:
    """Whether model ``name`` has BatchNorm layers (timm's BatchNorm+activation layers count); None when the
    architecture cannot be built without loading it (then callers decide when the model is loaded)."""
    module = _meta_module(name)
    if module is None:
        return None
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
