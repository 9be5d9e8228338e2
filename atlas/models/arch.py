"""Model cards derived from an architecture, without weights: a torchvision or timm architecture is built on
PyTorch's ``meta`` device (no memory, no file, about 0.1 s even for ViT-L) and read - its layers, classifier,
BatchNorms and attention - together with the library's own metadata (input size, normalisation, weight
source). The loaders derive the same card from the module they loaded."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..errors import AtlasError
from .card import Block, ModelCard

#: Name parts of transformer-like (token) models: vision transformers and their relatives, CLIP and DINO
#: towers, MLP-Mixers; matched at the start of the name or after "_" (``timm:deit_small``, ``vit_l_16``).
TRANSFORMER_MARKERS = ("vit", "deit", "swin", "beit", "eva", "clip", "dino", "mixer", "former")
#: Why LRP is not offered for transformers.
NO_TRANSFORMER_LRP = "zennit has no attention or LayerNorm rules"
#: torchvision families that have their own LRP rules (:data:`atlas.relevance.ARCHITECTURES`).
TORCHVISION_LRP_FAMILIES = ("resnet", "densenet", "convnext")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build(builder: str, num_classes: Optional[int] = None, in_chans: Optional[int] = None) -> nn.Module:
    """The untrained architecture named by a card's ``builder`` (``"timm:<name>"``, ``"torchvision:<name>"``,
    ``"python:<module>:<callable>"``), on the current default device (``with torch.device("meta")``: no
    memory). ``num_classes`` and ``in_chans`` (None: the architecture's defaults) size its head and stem; a
    ``python:`` factory builds what it builds."""
    kind, _, arch = builder.partition(":")
    if kind == "timm":
        import timm

        kw = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
        return timm.create_model(arch, pretrained=False, **kw)
    if kind == "torchvision":
        import torchvision

        kw = {"num_classes": num_classes} if num_classes is not None else {}
        module = torchvision.models.get_model(arch, weights=None, **kw)
        return module if in_chans in (None, 3) else with_in_chans(module, in_chans)
    if kind == "python":
        return python_module(arch)
    raise AtlasError(f"unknown model builder {builder!r}: expected 'timm:<name>', 'torchvision:<name>' or "
                     f"'python:<module>:<callable>'")


def python_module(entry: str) -> nn.Module:
    """The module that the factory ``"<module>:<callable>"`` returns (called without arguments); an entry
    point that cannot be imported or does not return an ``nn.Module`` is a one-line :class:`AtlasError`."""
    import pkgutil

    mod_name, _, attr = entry.partition(":")
    if not mod_name or not attr:
        raise AtlasError(f"python entry point {entry!r} must read 'python:<module>:<callable>', e.g. "
                         f"'python:my_pkg.nets:build'")
    if mod_name.split(".")[0] == "atlas":
        raise AtlasError(f"python entry point 'python:{entry}' names a module of atlas; name your own module")
    try:
        module = pkgutil.resolve_name(mod_name)  # the user's module (never atlas's: checked above)
    except (ImportError, ValueError) as exc:
        raise AtlasError(f"unknown python entry point 'python:{entry}': cannot import {mod_name} ({exc}); put "
                         f"its package on PYTHONPATH or install it") from None
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
            from ..errors import unknown_choice

            raise unknown_choice(f"callable in {mod_name} (python entry point 'python:{entry}'):", attr, names)
        factory = getattr(factory, part)
    if not callable(factory):
        raise AtlasError(f"python entry point 'python:{entry}' is not callable; name a function or class that "
                         f"returns the torch.nn.Module")
    try:
        out = factory()
    except Exception as exc:
        raise AtlasError(f"python entry point 'python:{entry}' failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(out, nn.Module):
        raise AtlasError(f"python entry point 'python:{entry}' returned {type(out).__name__}, not a "
                         f"torch.nn.Module; make it return the model")
    return out


def with_in_chans(module: nn.Module, in_chans: int) -> nn.Module:
    """``module`` with its first convolution taking ``in_chans`` input channels (torchvision has no
    ``in_chans``; timm's does the same inside ``create_model``)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            new = nn.Conv2d(in_chans, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                            m.bias is not None, m.padding_mode, device=m.weight.device)
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            setattr(parent, name.rpartition(".")[2], new)
            return module
    raise AtlasError("cannot set the input channels of this architecture: it has no convolution")


def first_conv(module: nn.Module) -> Optional[str]:
    """Name of the first ``Conv2d`` (the stem), or None."""
    return next((n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)


def forward_gflops(module: nn.Module, in_chans: int, size: int) -> Optional[float]:
    """Multiply-accumulates of one forward pass at ``size`` px, in G (PyTorch's FLOP counter / 2), counted on
    the meta device (nothing is computed); None if the architecture cannot run there."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            module.eval()(torch.zeros(1, in_chans, size, size, device="meta"))
    except Exception:  # an operation without a meta kernel, or a model that needs other inputs
        return None
    return counter.get_total_flops() / 2e9


def meta_module(builder: str, num_classes: Optional[int] = None, in_chans: Optional[int] = None) -> Optional[nn.Module]:
    """The architecture of ``builder`` on the meta device, or None if it cannot be built there."""
    try:
        with torch.device("meta"):
            return build(builder, num_classes, in_chans)
    except Exception:  # unknown name or an architecture that cannot be built on the meta device
        return None


def named_transformer(name: str) -> bool:
    """Whether model ``name`` is named like a transformer (:data:`TRANSFORMER_MARKERS`)."""
    low = name.lower().removeprefix("timm:")
    return any(low.startswith(m) or f"_{m}" in low for m in TRANSFORMER_MARKERS)


def is_transformer(name: str, module: nn.Module) -> bool:
    """A transformer by its name or by an attention layer in its architecture."""
    return named_transformer(name) or any(
        isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__ for m in module.modules())


def has_batchnorm_layers(module: nn.Module) -> bool:
    """Whether ``module`` has BatchNorm layers (timm's BatchNorm+activation layers count)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def last_linear(module: nn.Module) -> str:
    """Name of the last ``Linear`` layer: the classifier."""
    last = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear):
            last = n
    if last is None:
        raise AtlasError("cannot find the classifier (a Linear layer) of this model")
    return last


def _has_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def generic_blocks(module: nn.Module) -> Tuple[Block, ...]:
    """VITAL's blocks of an architecture without a card: timm's feature stages; a ResNet-style network's stem
    and four stages (as the zoo's ResNet-50 card); else the top-level children with weights but the
    classifier (parameter-free pooling, activation, flattening and permuting layers are no blocks), a
    container of stages among them (torchvision's ``features`` of MobileNet, EfficientNet, ConvNeXt, Swin,
    DenseNet, VGG) replaced by its children with weights."""
    info = getattr(module, "feature_info", None)
    if info is not None:
        try:
            return tuple(Block(f["module"]) for f in info)
        except (TypeError, KeyError):
            pass
    children = list(module.named_children())
    if {"conv1", "layer1", "layer2", "layer3", "layer4"} <= {n for n, _ in children}:
        return tuple(Block(n) for n in ("conv1", "layer1", "layer2", "layer3", "layer4"))
    body = children[:-1]  # all but the classifier
    weighted = [(n, m) for n, m in body if _has_weights(m)] or body
    out = []
    for name, child in weighted:
        stages = [(f"{name}.{n}", m) for n, m in child.named_children() if _has_weights(m)] \
            if isinstance(child, (nn.Sequential, nn.ModuleList)) else []
        out.extend(stages if len(stages) >= 3 else [(name, child)])
    return tuple(Block(n) for n, _ in out)


def torchvision_family(name: str) -> str:
    """The family of a torchvision classifier (the part of the name before its size), or ``"torchvision"``."""
    for fam in ("resnet", "densenet", "convnext", "vit"):
        if name.startswith(fam):
            return fam
    return "torchvision"


def torchvision_card(name: str, module: Optional[nn.Module] = None) -> ModelCard:
    """The card of torchvision classifier ``name`` with its default ImageNet weights; ``module``: its
    architecture (default: built on the meta device)."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    module = module if module is not None else _required(f"torchvision:{name}")
    fam = torchvision_family(name)
    transformer = is_transformer(name, module)
    return ModelCard(
        name=name, family=fam, builder=f"torchvision:{name}", weights=weights.url,
        input_size=int(weights.transforms().crop_size[0]), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        penultimate=f"{last_linear(module)}:in", num_classes=len(weights.meta["categories"]),
        blocks=generic_blocks(module),
        **_lrp(transformer, fam if fam in TORCHVISION_LRP_FAMILIES else "generic"),
        transformer=transformer, channels_last=not transformer, has_batchnorm=has_batchnorm_layers(module),
    )


def timm_card(name: str, module: Optional[nn.Module] = None) -> ModelCard:
    """The card of timm model ``name`` (``timm:`` left off; a pretrained tag such as ``.fb_in1k`` is kept)
    from its pretrained config; ``module``: its architecture (default: built on the meta device)."""
    module = module if module is not None else _required(f"timm:{name}")
    cfg = module.pretrained_cfg
    transformer = is_transformer(name, module)
    return ModelCard(
        name=f"timm:{name}", family="timm", builder=f"timm:{name}", weights=f"timm {cfg.get('hf_hub_id') or name}",
        input_size=int(cfg["input_size"][-1]), in_chans=int(cfg["input_size"][0]), mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]), penultimate=f"{last_linear(module)}:in", num_classes=int(module.num_classes),
        blocks=generic_blocks(module),
        **_lrp(transformer, "efficientnet_lite" if _efficientnet_like(module) else "generic"),
        transformer=transformer, channels_last=not transformer, has_batchnorm=has_batchnorm_layers(module),
    )


def _lrp(transformer: bool, rules: str) -> dict:
    """The card's LRP fields: ``rules`` for a convnet, none (with the reason) for a transformer."""
    return {"lrp_rules": None, "lrp_unavailable": NO_TRANSFORMER_LRP} if transformer else {"lrp_rules": rules}


def _efficientnet_like(module: nn.Module) -> bool:
    """timm EfficientNet/MobileNet-style blocks: the timm EfficientNet canonizers apply."""
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

    return any(isinstance(m, (InvertedResidual, DepthwiseSeparableConv)) for m in module.modules())


def _required(builder: str) -> nn.Module:
    module = meta_module(builder)
    if module is None:
        raise AtlasError(f"the architecture {builder} cannot be built without its weights")
    return module
