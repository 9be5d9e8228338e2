"""How much memory a model needs to backpropagate to its input, from its architecture alone.

The architecture is built on PyTorch's ``meta`` device (no weights, no memory, no arithmetic) and run
forward on batches of 1 and 2 images with frozen weights, as the methods run it, counting the bytes of
every tensor autograd keeps for the backward pass. The difference is what each more image costs; the
parameters are counted once, twice for a model with BatchNorm layers (the folded copy the methods run,
:mod:`atlas.models.fold`, whose passes keep less than the model's: the per-image figure stays an upper
bound). Measured this way, EfficientNet-Lite0 keeps 76 MiB per 224 px image, ResNet50 124 MiB, ViT-L/16
318 MiB; ``bench/memory.py`` measured ~90 MiB per image for Lite0 in a real MACO run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Optional

import torch

from .arch import has_batchnorm_layers, meta_module
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


def _frozen_meta(name: str):
    """(card, the architecture on the meta device in eval mode with frozen weights), or (card, None) for a
    model without a card or builder, or one that cannot be built there."""
    card = known_card(name)
    if card is None or not card.builder:
        return card, None
    module = meta_module(card.builder)
    if module is not None:
        module.eval().requires_grad_(False)
    return card, module


@functools.lru_cache(maxsize=None)
def footprint(name: str) -> Optional[Footprint]:
    """The :class:`Footprint` of model ``name``, or None if its architecture cannot run on the meta device
    (a model without a card, a layer that computes on real data)."""
    card, module = _frozen_meta(name)
    if module is None:
        return None
    try:
        one, two = (_saved_bytes(module, b, card.input_size) for b in (1, 2))
    except Exception:  # noqa: BLE001 - any architecture may refuse the meta device; the estimate then has no model part
        return None
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    if has_batchnorm_layers(module):
        params *= 2  # the BatchNorm-folded copy the methods run beside the model (atlas.models.fold)
    return Footprint(parameters=int(params), per_image=max(int(two - one), 0), input_size=card.input_size)


@functools.lru_cache(maxsize=None)
def layer_depths(name: str) -> Optional[Dict[str, float]]:
    """{module path: how much of one forward pass is done when the module's output is ready}, from the
    architecture alone (meta device): the mean of the share of the pass's FLOPs and the share of the bytes
    autograd keeps for the backward pass (a CPU pass is as much memory-bound as compute-bound: Lite0's
    ``blocks.0`` holds 5 % of the FLOPs and 11 % of the bytes). None where :func:`footprint` has none."""
    from torch.utils.flop_counter import FlopCounterMode

    card, module = _frozen_meta(name)
    if module is None:
        return None
    counter, saved, at = FlopCounterMode(display=False), [0], {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.untyped_storage().nbytes()
        return t

    def seen(path):
        return lambda m, args, out: at.__setitem__(path, (counter.get_total_flops(), saved[0]))

    handles = [m.register_forward_hook(seen(path)) for path, m in module.named_modules() if path]
    try:
        x = torch.empty(1, 3, card.input_size, card.input_size, device="meta", requires_grad=True)
        with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
    except Exception:  # noqa: BLE001 - as footprint(): an architecture that refuses the meta device
        return None
    finally:
        for h in handles:
            h.remove()
    flops, nbytes = max(counter.get_total_flops(), 1), max(saved[0], 1)
    return {path: 0.5 * (f / flops + b / nbytes) for path, (f, b) in at.items()}
