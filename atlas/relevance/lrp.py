"""Layer-wise relevance propagation with zennit, started at a class logit, a channel or a direction.

zennit's rule hooks replace every module's input gradient by its relevance, so inside a composite's context
the gradient that arrives at any tensor *is* the relevance at that tensor (zennit how-to "get intermediate
relevance"). :func:`relevance` therefore runs the forward pass under the composite (stopping early at the
start layer), seeds the backward pass with the start relevance and reads the gradients at the requested
layers and, optionally, at the (normalised) input. Every hook and canonizer is removed on exit.

Many passes over one model (VITAL's relevance of the synthetic image at every step) use an
:class:`LRPSession`: a copy of the model with the canonizers and the composite registered once, so that a
pass costs the passes alone and not the registering and removing of every hook and canonizer (about a
quarter of a raw forward+backward on EfficientNet-Lite0).
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import AtlasError
from .rules import rules_for


@dataclass(frozen=True)
class Start:
    """Where relevance starts. ``layer`` None means the logits; ``initial(out, rows)`` maps the (detached)
    start tensor of images ``rows`` (a slice of the whole batch) to the start relevance (same shape). Build
    with :func:`class_start`, :func:`channel_start`, :func:`direction_start`."""

    kind: str
    layer: Optional[str]
    initial: Callable[[torch.Tensor, slice], torch.Tensor] = field(compare=False)


def _rows(values: torch.Tensor, rows: slice, n: int) -> torch.Tensor:
    """Per-image values for ``rows``; a single value applies to every image."""
    return values.expand(n, *values.shape[1:]) if values.shape[0] == 1 else values[rows]


def class_start(class_ids: Sequence[int], unit: bool = False) -> Start:
    """R = the logit of image i's class ``class_ids[i]`` (standard LRP), zero for every other class.
    ``unit``: R = 1 at the class instead, so the relevance's sign does not flip with the logit's (a
    synthetic image early in an optimisation often has a negative logit for its class)."""
    ids = torch.as_tensor(list(class_ids), dtype=torch.long)

    def initial(out: torch.Tensor, rows: slice) -> torch.Tensor:
        idx = _rows(ids.view(-1, 1), rows, out.shape[0]).to(out.device)
        value = torch.ones_like(out.gather(1, idx)) if unit else out.gather(1, idx)
        return torch.zeros_like(out).scatter_(1, idx, value)

    return Start("class", None, initial)


def channel_start(layer: str, channels: Sequence[int], position: Optional[tuple] = None,
                  positive: bool = False) -> Start:
    """R = image i's activation of channel ``channels[i]`` of ``layer`` at every position (VITAL's inner
    neurons), or only at ``position`` = (y, x); zero for every other channel. ``positive``: only the
    activation's positive part (zero where the channel is negative): what the start is on a layer that
    ends in a ReLU (VITAL's reference code, ResNet ``layer4_2``), for a layer whose output is signed."""
    chans = torch.as_tensor(list(channels), dtype=torch.long)

    def initial(out: torch.Tensor, rows: slice) -> torch.Tensor:
        if out.dim() < 2:
            raise AtlasError(f"layer {layer} has no channel axis")
        c = _rows(chans, rows, out.shape[0]).to(out.device)
        if not (0 <= int(c.min()) and int(c.max()) < out.shape[1]):
            raise AtlasError(f"channel out of range for layer {layer}: valid channels are 0-{out.shape[1] - 1}")
        mask = torch.zeros_like(out)
        rows = torch.arange(out.shape[0], device=out.device)
        if position is None:
            mask[rows, c] = 1.0
        else:
            mask[rows, c, position[0], position[1]] = 1.0
        return (out.clamp(min=0) if positive else out) * mask

    return Start("channel", layer, initial)


def direction_start(layer: str, vectors: torch.Tensor) -> Start:
    """R = the direction vector (one per image, or one for all) placed at the position of ``layer``'s map
    with the highest cosine similarity to it, zero elsewhere (VITAL supplementary §2.3)."""
    vecs = torch.as_tensor(vectors, dtype=torch.float32)

    def initial(out: torch.Tensor, rows: slice) -> torch.Tensor:
        if vecs.shape[-1] != out.shape[1]:
            raise AtlasError(f"direction of length {vecs.shape[-1]} does not fit layer {layer} "
                             f"({out.shape[1]} channels)")
        v = _rows(vecs.reshape(-1, out.shape[1]), rows, out.shape[0]).to(out.device, out.dtype)
        if out.dim() == 2:
            return v.clone()
        flat = out.flatten(2)
        cos = F.cosine_similarity(flat, v[:, :, None], dim=1)
        best = cos.argmax(1)
        r = torch.zeros_like(flat)
        r[torch.arange(out.shape[0], device=out.device), :, best] = v
        return r.view_as(out)

    return Start("direction", layer, initial)


@dataclass
class Relevance:
    """Relevance at the requested ``layers`` (same shapes as the activations, also returned in
    ``activations``), at the normalised ``input`` (N, 3, H, W) if asked, and the ``start`` relevance.

    ``activations`` are those of the *canonized* model: the output of a conv whose BatchNorm was merged into
    it is the BN's output there (every other layer's output is unchanged)."""

    layers: Dict[str, torch.Tensor]
    activations: Dict[str, torch.Tensor]
    input: Optional[torch.Tensor]
    start: torch.Tensor


class _Stop(Exception):
    pass


class LRPSession:
    """Many LRP passes over one model: the family's written-out rules (:mod:`atlas.relevance.direct`) where
    they cover a pass, else a copy of ``model``'s module with its canonizers and zennit composite registered
    once, on first need, for the session's life. The model itself is not touched."""

    def __init__(self, model, zero_bias: bool = False):
        self.model, self.zero_bias = model, zero_bias
        self.direct = direct_engine(model, zero_bias)
        self.module = None
        self.composite = None
        self._modules: Dict[str, object] = {}

    def zennit_module(self):
        """The session's canonized copy of the module, hooks registered (made on first call)."""
        if self.module is None:
            self.module = _without_hooks(copy.deepcopy(self.model.module))
            self.composite = rules_for(self.model).composite(self.module, self.zero_bias)
            self.composite.register(self.module)
            self._modules = dict(self.module.named_modules())
        return self.module

    def module_at(self, path: str):
        self.model.module_at(path)  # unknown names: the model's one-line error
        self.zennit_module()
        return self._modules[path[:-3] if path.endswith(":in") else path]

    def close(self) -> None:
        if self.composite is not None:
            self.composite.remove()
            self.composite, self.module, self._modules = None, None, {}


def _without_hooks(module):
    """``module`` (a fresh copy) with the hooks it was copied with removed: the copy of a model inside a
    loop's capture must not fill (or stop) the loop's own passes."""
    for m in module.modules():
        for hooks in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks):
            hooks.clear()
    return module


def direct_engine(model, zero_bias: bool = False):
    """The written-out LRP of ``model``'s family (:mod:`atlas.relevance.direct`) or None."""
    make = rules_for(model).direct
    return None if make is None else make(model.module, zero_bias)


def _direct_pass(engine, model, images, start: Start, rows: slice, keys) -> Relevance:
    x = model.normalize(images.to(model.device)).detach()
    if model.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    layers, acts, r0 = engine.run(x, start.layer, lambda head: start.initial(head.detach(), rows), keys)
    return Relevance(layers={k: v.detach() for k, v in layers.items()}, activations=acts, input=None,
                     start=r0.detach())


def _one_pass(model, images, start: Start, rows: slice, keys, want_input: bool, zero_bias: bool,
              session: Optional[LRPSession] = None, engine=None) -> Relevance:
    rules = rules_for(model)
    if engine is not None and engine.supports(start.layer, keys, want_input):
        return _direct_pass(engine, model, images, start, rows, keys)
    module_at = model.module_at if session is None else session.module_at
    x = model.normalize(images.to(model.device)).detach()
    if model.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    watch = list(dict.fromkeys(list(keys) + ([start.layer] if start.layer else [])))
    store: Dict[str, torch.Tensor] = {}
    handles = []

    def capture(key):
        def pre(m, args):
            store[key] = args[0]
            if key == start.layer and len(store) == len(watch):
                raise _Stop  # before zennit's hooks on this module see the input

        def post(m, args, out):
            store[key] = out

        return pre, post

    try:
        for key in watch:  # registered before the composite: ":in" keys see the module's original input
            pre, post = capture(key)
            mod = module_at(key)
            handles.append(mod.register_forward_pre_hook(pre) if key.endswith(":in") else mod.register_forward_hook(post))
        context = (nullcontext(session.zennit_module()) if session is not None
                   else rules.composite(model.module, zero_bias).context(model.module))
        with context as module:
            if start.layer and not start.layer.endswith(":in"):
                def stop(m, args, out):
                    if len(store) == len(watch):
                        raise _Stop
                handles.append(module_at(start.layer).register_forward_hook(stop))
            with torch.enable_grad():
                try:
                    out = module(x)
                except _Stop:
                    out = None
                missing = [k for k in watch if k not in store]
                if missing:
                    raise AtlasError(f"layer {missing[0]} of {model.name} is not reached before the start layer "
                                     f"{start.layer or 'logits'}; relevance flows only to earlier layers")
                head = out if start.layer is None else store[start.layer]
                r0 = start.initial(head.detach(), rows)
                wanted = [store[k] for k in keys] + ([x] if want_input else [])
                grads = torch.autograd.grad(head, wanted, grad_outputs=r0, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    got = {}
    for k, g in zip(keys, grads):
        if g is None:
            raise AtlasError(f"layer {k} of {model.name} does not lead to the start layer {start.layer or 'logits'}; "
                             f"relevance flows only to earlier layers")
        got[k] = g.detach()
    return Relevance(layers=got, activations={k: store[k].detach() for k in keys},
                     input=grads[-1].detach() if want_input else None, start=r0.detach())


def relevance(model, images: torch.Tensor, start: Start, layers: Sequence[str] = (), input: bool = False,
              zero_bias: bool = False, batch_size: int = 8, session: Optional[LRPSession] = None) -> Relevance:
    """LRP relevance of ``images`` (N, 3, H, W) in [0, 1] from ``start`` down to ``layers`` (model layer
    keys; ``"<module>:in"`` for a module's input) and, with ``input=True``, to the normalised input.

    Runs in chunks of ``batch_size`` images (zennit keeps every hooked module's input). ``zero_bias`` drops
    biases from the rules so that relevance is exactly conserved (for tests; biases absorb relevance).
    ``session``: an :class:`LRPSession` of ``model`` (its ``zero_bias`` applies) for repeated passes.
    """
    keys = list(dict.fromkeys(layers))
    if session is not None:
        zero_bias = session.zero_bias
    engine = session.direct if session is not None else direct_engine(model, zero_bias)  # once, not per chunk
    parts = [_one_pass(model, images[i:i + batch_size], start, slice(i, i + batch_size), keys, input, zero_bias,
                       session, engine)
             for i in range(0, images.shape[0], batch_size)]
    if len(parts) == 1:
        return parts[0]
    cat = lambda xs: torch.cat(xs, 0)  # noqa: E731
    return Relevance(layers={k: cat([p.layers[k] for p in parts]) for k in keys},
                     activations={k: cat([p.activations[k] for p in parts]) for k in keys},
                     input=cat([p.input for p in parts]) if input else None, start=cat([p.start for p in parts]))


def input_relevance(model, images: torch.Tensor, start: Start, **kw) -> torch.Tensor:
    """Relevance at the normalised input pixels, (N, 3, H, W)."""
    return relevance(model, images, start, (), input=True, **kw).input


def layer_relevance(model, images: torch.Tensor, start: Start, layers: Sequence[str], **kw) -> Dict[str, torch.Tensor]:
    """Relevance maps at ``layers``: {layer: tensor shaped like its activations}."""
    return relevance(model, images, start, layers, **kw).layers


def channel_relevance(model, images: torch.Tensor, class_ids: Sequence[int], layer: str, **kw) -> torch.Tensor:
    """(N, C): relevance of every channel of ``layer`` for image i's class ``class_ids[i]`` (LRP from the
    class logit, summed over positions) - e.g. to pick a class's most relevant neurons."""
    r = relevance(model, images, class_start(class_ids), [layer], **kw).layers[layer]
    return r.flatten(2).sum(-1) if r.dim() > 2 else r
