"""How much memory a model needs to backpropagate to its input, from its architecture alone.

The architecture is built on PyTorch's ``meta`` device (no weights, no memory, no arithmetic) and run
forward on batches of 1 and 2 images with frozen weights, as the methods run it, counting the bytes of
every tensor autograd keeps for the backward pass. The difference is what each more image costs; the
parameters are counted once. Measured this way, EfficientNet-Lite0 keeps 76 MiB per 224 px image, ResNet50
124 MiB, ViT-L/16 318 MiB; ``bench/memory.py`` measured ~90 MiB per image for Lite0 in a real MACO run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import torch

from .arch import meta_module
from .cards import known_card


@dataclass(frozen=True)
class Footprint:
    """Bytes a model needs: ``parameters`` once, ``per_image`` for every image of a forward+backward pass
    at ``input_size`` (the activations autograd keeps)."""

    parameters: int
    per_image: int
    input_size: int


def _saved_bytes(module: torch.nn.Module, batch: int, size: int) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.untyped_storage().nbytes()  # an expanded view keeps only its storage
        return t

    x = torch.empty(batch, 3, size, size, device="meta", requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return total


@functools.lru_cache(maxsize=None)
def footprint(name: str) -> Optional[Footprint]:
    """The :class:`Footprint` of model ``name``, or None if its architecture cannot run on the meta device
    (a model without a card, a layer that computes on real data)."""
    card = known_card(name)
    if card is None or not card.builder:
        return None
    module = meta_module(card.builder)
    if module is None:
        return None
    module.eval().requires_grad_(False)
    try:
        one, two = (_saved_bytes(module, b, card.input_size) for b in (1, 2))
    except Exception:  # noqa: BLE001 - any architecture may refuse the meta device; the estimate then has no model part
        return None
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    return Footprint(parameters=int(params), per_image=max(int(two - one), 0), input_size=card.input_size)
