"""``ModelHandle``: a frozen classifier plus everything the methods need to know about it."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import AtlasError, unknown_choice
from .arch import NO_TRANSFORMER_LRP, has_batchnorm_layers, named_transformer
from .card import Block, ModelCard
from .fold import Folded, fold_batchnorm

log = logging.getLogger(__name__)


@dataclass
class ModelHandle:
    """A classifier in eval mode with frozen weights, and how to feed and read it.

    ``module`` takes *normalised* input; ``__call__`` takes images in [0, 1] and normalises them.
    Capture keys are module names; ``"<name>:in"`` captures the module's first input instead of its output
    (``penultimate`` is the classifier's input, ``"<classifier>:in"``).

    The zoo builds handles with :meth:`from_card`: the fields are the card's facts as this instance uses
    them (a run may switch ``channels_last`` off or set ``autocast``); ``card`` keeps the model's facts. A
    handle built from its fields alone (a test model) gets a card made of them.
    """

    name: str
    family: str
    module: nn.Module
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    input_size: int
    class_names: Tuple[str, ...]
    wnids: Tuple[str, ...]
    blocks: Tuple[Block, ...]
    penultimate: str
    concept_layer: Optional[str] = None
    channels_last: bool = False
    weights: str = ""
    autocast: Optional[torch.dtype] = None
    card: Optional[ModelCard] = None
    in_chans: int = 3
    fold_batchnorm: bool = True
    _modules: Dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._modules = dict(self.module.named_modules())
        self._module_list = list(self._modules.values())
        self._captures: List[tuple] = []  # the active capture blocks: (keys, store, stop)
        self._fold: Optional[Folded] = None
        self._fold_key = None
        self._mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std).view(1, -1, 1, 1)
        if self.card is None:
            self.card = self._card_from_fields()

    @classmethod
    def from_card(cls, card: ModelCard, module: nn.Module) -> "ModelHandle":
        """The handle of ``module``, a model with the weights that ``card`` describes."""
        names, wnids = card.labels()
        if card.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return cls(name=card.name, family=card.family, module=module, mean=card.mean, std=card.std,
                   input_size=card.input_size, class_names=names, wnids=wnids, blocks=card.blocks,
                   penultimate=card.penultimate, concept_layer=card.concept_layer, channels_last=card.channels_last,
                   weights=card.weights, card=card, in_chans=card.in_chans)

    def _card_from_fields(self) -> ModelCard:
        """A card of this handle's own fields; a transformer by family (``"vit"``), name or token blocks;
        the LRP rules named after the family (unknown names: the generic rules)."""
        transformer = self.family == "vit" or named_transformer(self.name) or \
            any(b.layout == "nld" for b in self.blocks)
        return ModelCard(
            name=self.name, family=self.family, builder="", weights=self.weights, input_size=self.input_size,
            mean=tuple(self.mean), std=tuple(self.std), in_chans=self.in_chans, penultimate=self.penultimate,
            num_classes=len(self.class_names), class_names=tuple(self.class_names), wnids=tuple(self.wnids),
            blocks=tuple(self.blocks), concept_layer=self.concept_layer,
            neuron_layer=self.blocks[-1].path if self.blocks else None,
            lrp_rules=None if transformer else self.family, lrp_unavailable=NO_TRANSFORMER_LRP if transformer else "",
            transformer=transformer, channels_last=self.channels_last, has_batchnorm=has_batchnorm_layers(self.module),
        )

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: torch.device | str) -> "ModelHandle":
        self.module.to(device)
        self._mean = self._mean.to(device)
        self._std = self._std.to(device)
        return self

    def to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in the model's ``in_chans`` channels: RGB images (real photos, 3-channel
        renders) become luminance for a one-channel model (ITU-R 601, as PIL's ``"L"``), a one-channel image
        is repeated for an RGB model; images already in the model's channels are returned as they are."""
        c = x.shape[1]
        if c == self.in_chans:
            return x
        if self.in_chans == 1 and c == 3:
            w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            return (x * w).sum(1, keepdim=True)
        if c == 1:
            return x.expand(-1, self.in_chans, *x.shape[2:])
        raise AtlasError(f"model {self.name} takes {self.in_chans}-channel images, got {c} channels")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1] to the model's input space (in its channels: :meth:`to_channels`)."""
        return (self.to_channels(x) - self._mean) / self._std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for images ``x`` (B, C, H, W) in [0, 1] (C: the model's channels, or RGB).

        Runs the model's BatchNorm-folded copy (:mod:`atlas.models.fold`) where it has one and no hook is
        registered on the model itself; the active :meth:`capture` blocks are hooked on whichever runs."""
        x = self.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        module, modules, read = self._runner()
        handles = self._hook_captures(modules, read)
        try:
            if self.autocast is None:
                return module(x)
            with torch.autocast(x.device.type, dtype=self.autocast):
                out = module(x)
            return out.float()
        finally:
            for h in handles:
                h.remove()

    def _runner(self):
        """(module, its named modules, how to read a captured value back) for the next forward pass: the
        folded copy, unless folding is off, impossible, or something has hooked the model itself (LRP,
        a replaced layer: it must run what it hooked)."""
        if not self.fold_batchnorm or any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                                          or m._backward_pre_hooks for m in self._module_list):
            return self.module, self._modules, None
        folded = self._folded()  # built only while nothing hooks the model: its check runs the model
        if folded is None:
            return self.module, self._modules, None
        return folded.module, folded.modules, folded.read

    def _folded(self) -> Optional[Folded]:
        """The folded copy for the model's current device and memory format (built once for each)."""
        key = (str(self.device), self.channels_last)
        if self._fold_key != key:
            with torch.inference_mode(False):  # a copy made under inference mode could not backpropagate later
                shape = (1, self.in_chans, self.input_size, self.input_size)
                sample = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(self.device)
                if self.channels_last:
                    sample = sample.contiguous(memory_format=torch.channels_last)
                try:
                    self._fold = fold_batchnorm(self.module, sample)
                except Exception as exc:  # noqa: BLE001 - any model may refuse the check's pass: it runs as it is
                    log.debug("%s: no BatchNorm fold (%s: %s)", self.name, type(exc).__name__, exc)
                    self._fold = None
                self._fold_key = key
        return self._fold

    def _captured(self, t):
        """A captured activation, in float32 when the model runs under autocast."""
        if self.autocast is not None and isinstance(t, torch.Tensor) and t.is_floating_point():
            return t.float()
        return t

    # ------------------------------------------------------------------ layers
    def layer_names(self) -> list[str]:
        return [n for n in self._modules if n]

    def module_at(self, path: str) -> nn.Module:
        """The submodule called ``path``; an unknown name is an ``AtlasError`` with the closest names."""
        name = path[:-3] if path.endswith(":in") else path
        if name not in self._modules or not name:
            raise unknown_choice(f"layer of model {self.name}:", path, self.layer_names())
        return self._modules[name]

    def class_id(self, value: int | str) -> int:
        """Resolve a class id or (unique) class name; unknown values are an ``AtlasError``."""
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            cid = int(value)
            if not 0 <= cid < self.num_classes:
                raise AtlasError(
                    f"unknown class {cid} for model {self.name}; valid ids are 0-{self.num_classes - 1}"
                )
            return cid
        lowered = [n.lower() for n in self.class_names]
        hits = [i for i, n in enumerate(lowered) if n == value.lower()]
        if hits == [] and value in self.wnids:
            hits = [self.wnids.index(value)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise AtlasError(f"class name {value!r} is ambiguous (ids {hits}); give the class id instead")
        raise unknown_choice(f"class of model {self.name}:", value, self.class_names)

    # ------------------------------------------------------------------ hooks
    @contextmanager
    def capture(self, keys: Sequence[str], stop: bool = False) -> Iterator[Dict[str, torch.Tensor]]:
        """Capture ``keys`` in every forward pass of this handle for the duration of the block; yields the
        dict they fill (the original model's values, whichever copy runs: :meth:`__call__`).

        ``stop``: a forward pass ends as soon as every key is captured (clear the dict before each pass):
        the call raises :class:`StopForward` instead of returning logits, and a backward pass from the
        captured activations costs only the layers below them. The hooks live only during each pass.
        """
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            self.module_at(key)  # an unknown name is an AtlasError now, not at the first pass
        entry = (wanted, {}, stop)
        self._captures.append(entry)
        try:
            yield entry[1]
        finally:
            self._captures.remove(entry)

    def _hook_captures(self, modules: Dict[str, nn.Module], read) -> list:
        """Forward hooks of the active captures on ``modules`` (the copy about to run); returns their handles."""
        handles = []
        try:
            for wanted, store, stop in self._captures:
                for key in wanted:
                    def keep(value, _k=key, _store=store, _wanted=wanted, _stop=stop):
                        value = self._captured(value)
                        _store[_k] = value if read is None else read(_k, value)
                        if _stop and len(_store) == len(_wanted):
                            raise StopForward

                    mod = modules[key[:-3] if key.endswith(":in") else key]
                    handles.append(mod.register_forward_pre_hook(lambda m, args, _keep=keep: _keep(args[0]))
                                   if key.endswith(":in") else
                                   mod.register_forward_hook(lambda m, args, out, _keep=keep: _keep(out)))
        except BaseException:
            for h in handles:
                h.remove()
            raise
        return handles

    def activations(self, x: torch.Tensor, keys: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Activations at ``keys`` for images ``x`` in [0, 1], stopping the forward pass as soon as the
        last of them is computed (no logits; much cheaper for early layers). Without autograd, a CPU runs a
        large batch in chunks (:data:`CPU_FORWARD_CHUNK`)."""
        keys = list(dict.fromkeys(keys))
        return _in_chunks(x, lambda part: self._activations(part, keys))

    def _activations(self, x: torch.Tensor, keys: List[str]) -> Dict[str, torch.Tensor]:
        with self.capture(keys, stop=True) as store:
            try:
                self(x)
            except StopForward:
                pass
        return dict(store)

    def features(self, x: torch.Tensor, keys: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Run ``x`` (in [0, 1]) and return the captured activations (plus ``"logits"``); without autograd,
        on a CPU, in chunks (:data:`CPU_FORWARD_CHUNK`)."""
        return _in_chunks(x, lambda part: self._features(part, keys))

    def _features(self, x: torch.Tensor, keys: Sequence[str]) -> Dict[str, torch.Tensor]:
        with self.capture(keys) as acts:
            logits = self(x)
        out = dict(acts)
        out["logits"] = logits
        return out

    def penultimate_features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input, flattened to (B, D)."""
        return self.features(x, [self.penultimate])[self.penultimate].flatten(1)


#: Luminance weights of RGB (ITU-R 601-2, PIL's ``convert("L")``): how RGB images meet a one-channel model.
LUMA = (0.299, 0.587, 0.114)



#: Images per forward pass of forward-only work (no autograd) on a CPU: :meth:`ModelHandle.activations` and
#: :meth:`~ModelHandle.features` split a larger batch into chunks of this size and concatenate the results
#: (the same values). A CPU's throughput falls with the batch once a batch's activations overflow its caches:
#: EfficientNet-Lite0 at 224 px, forward to ``bn2``, two threads, 66 img/s at batch 4-8, 52 at 16, 42 at 32,
#: 30 at 128 (one thread: 41 at 2-4, 34 at 8, 18 at 128); CRAFT's 64 patches per forward ran at 26 img/s,
#: in chunks of 4 at 49-60 (bench/README.md, "Forward-only work in chunks"). A GPU runs the batch whole.
CPU_FORWARD_CHUNK = 4


def _in_chunks(x: torch.Tensor, run: Callable[[torch.Tensor], Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """``run(x)``; without autograd on a CPU, over chunks of :data:`CPU_FORWARD_CHUNK` images, concatenated
    (the same values up to the rounding of a batch's kernels). A captured output that is not one tensor with
    the batch first (a module returning a tuple, a sequence-first (L, B, C) layer) cannot be concatenated:
    then the batch runs in one pass, found on the first chunk."""
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.shape[0] <= CPU_FORWARD_CHUNK:
        return run(x)
    parts = []
    for chunk in x.split(CPU_FORWARD_CHUNK):
        part = run(chunk)
        if not all(isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == chunk.shape[0]
                   for v in part.values()):
            return run(x)
        parts.append(part)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class StopForward(Exception):
    """Raised by a hook to end a forward pass early (caught by :meth:`ModelHandle.activations` and by the
    optimisation loop when its objective reads no logits)."""


_StopForward = StopForward


def channels_first(a: torch.Tensor) -> torch.Tensor:
    """Activations with their channels in dimension 1: a transformer's tokens (B, L, C) become (B, C, L); a
    channels-last map (B, H, W, C) - Swin's stages, in torchvision and timm - becomes (B, C, H, W); a map
    (B, C, H, W) and (B, C) stay. Channels-last maps are recognised by their square grid (atlas feeds every
    model square images): H == W != C, where a (B, C, H, W) map has H == W."""
    if a.dim() == 3:
        return a.transpose(1, 2)
    if a.dim() == 4 and a.shape[1] == a.shape[2] != a.shape[3]:
        return a.permute(0, 3, 1, 2)
    return a


def channel_means(a: torch.Tensor) -> torch.Tensor:
    """(B, C) per-channel means of a layer's activations (:func:`channels_first`): a map averaged over
    positions, a transformer's tokens averaged over the tokens, (B, C) as is. What a neuron (channel) of any
    layer means everywhere: objectives, dataset examples, CRAFT, CoSy (:func:`channel_count` agrees)."""
    return channels_first(a).flatten(2).mean(-1) if a.dim() > 2 else a


def channel_count(a: torch.Tensor) -> int:
    """The number of channels of activations ``a`` (dimension 1 of :func:`channels_first`)."""
    return int(channels_first(a).shape[1])


def as_channels(x: torch.Tensor, layout: str = "nchw") -> torch.Tensor:
    """View activations as (B, C, L): channels first, all positions (or tokens) flattened. Tokens (B, L, C)
    and channels-last maps are read by :func:`channels_first` whatever ``layout`` says: a card derived from
    an architecture (a timm or torchvision transformer, a lab's checkpoint) names its blocks without their
    layout."""
    if x.dim() == 2:
        return x.unsqueeze(-1)
    return channels_first(x).flatten(2)
