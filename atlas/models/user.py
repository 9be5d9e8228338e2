"""A lab's own model: an architecture, a checkpoint and class names (a ``[model.<name>]`` table).

:func:`define_models` turns the configuration's tables into model cards - everything atlas needs to know,
derived from the architecture (built on the meta device: no memory), the checkpoint's tensors and the labels
- and makes the zoo load them by name (:func:`load_user_model`). What it reads:

* ``arch``: a torchvision classifier name, ``"timm:<name>"``, ``"python:<module>:<callable>"`` (a factory
  returning the ``nn.Module``) or a named zoo model (its architecture and layer facts).
* ``checkpoint``: a state dict (also nested under ``state_dict`` / ``model`` / ...; ``module.`` and
  ``_orig_mod.`` prefixes stripped), a pickled module or a TorchScript export - the tensors go into the
  architecture, so every layer can be hooked. The number of classes is the head's rows; the input channels
  the stem's.
* ``labels``: one class name per line in output order, or a JSON list; default: the data folder's class
  folders, sorted (``<pool>/<class name>/*.jpg``; a folder of the 1000 ImageNet wnids gives ImageNet's
  names).

Input size and normalisation come from timm's pretrained configuration of the architecture where there is
one, else ImageNet's (224 px), unless the table overrides them. The VITAL blocks, concept and neuron layers,
LRP rules, BatchNorm and FLOPs come from the named card of the same architecture (e.g. ``resnet50``), else
from the architecture itself; a fact that cannot be derived (a concept layer, LRP rules of a ``python:``
factory) stays unknown on the card, and the methods and targets that need it are skipped with the reason.

Every problem is one :class:`~atlas.errors.AtlasError` line naming it and the fix: a checkpoint that does
not fit the architecture (the first missing and unexpected keys, the shape mismatches), labels whose count
differs from the head's outputs, an unknown ``python:`` entry point or one that returns no module, an
unreadable checkpoint file.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import AtlasError, unknown_choice
from .arch import (IMAGENET_MEAN, IMAGENET_STD, NO_TRANSFORMER_LRP, TORCHVISION_LRP_FAMILIES, build,
                   first_conv, forward_gflops, generic_blocks, has_batchnorm_layers, is_transformer, last_linear,
                   torchvision_family)
from .card import Block, ModelCard
from .cards import CARDS, USER_CARDS
from .classes import imagenet_classes
from .handle import ModelHandle

log = logging.getLogger(__name__)

#: Keys under which training scripts nest the state dict of a checkpoint, tried in this order.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights", "ema",
               "model_ema", "state_dict_ema")
#: Prefixes that wrappers add to every key (DataParallel / DistributedDataParallel, torch.compile).
PREFIXES = ("module.", "_orig_mod.")
#: Why a ``python:`` factory has no LRP rules unless the table names them.
PYTHON_LRP = ('LRP rules cannot be derived for a python: architecture; set lrp = "generic" in its [model] table '
              'if it is a plain stack of convolutions, BatchNorms, activations and pooling (or name its rules)')
#: What an image suffix looks like (for the default labels: class folders that hold images).
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class UserModel:
    """A defined model: its card and how to load it."""

    card: ModelCard
    arch: str
    checkpoint: Optional[Path]
    content: str = ""  # SHA-256 of the weights (the checkpoint file's, or the factory's tensors')


#: The models of the current configuration, by name (:func:`define_models`).
DEFINED: Dict[str, UserModel] = {}


# ------------------------------------------------------------------------------------------- defining
def define_models(models: Sequence[Tuple[str, object]], pool: Optional[str] = None) -> Dict[str, ModelCard]:
    """Make the configuration's ``[model.<name>]`` tables (``(name, ModelConfig)`` pairs) known to the zoo,
    replacing any defined before; ``pool`` is the data folder (default labels). Returns their cards."""
    cards = {name: user_card(name, spec, pool) for name, spec in models}
    DEFINED.clear()
    USER_CARDS.clear()
    for name, spec in models:
        content = cards[name].weights.rpartition("sha256 ")[2].rstrip(")")
        DEFINED[name] = UserModel(cards[name], spec.arch, _path(spec.checkpoint) if spec.checkpoint else None,
                                  content)
        USER_CARDS[name] = cards[name]
    return cards


def user_card(name: str, spec, pool: Optional[str] = None) -> ModelCard:
    """The card of model ``name`` defined by ``spec`` (a :class:`~atlas.config.ModelConfig`): see the module
    docstring. Reads the checkpoint's tensors (memory-mapped) and the labels; loads no weights into a model."""
    builder, named = resolve_arch(spec.arch)
    state = read_state_dict(_path(spec.checkpoint), name) if spec.checkpoint else None
    if state is None and not builder.startswith("python:"):
        raise AtlasError(f"model {name} has no checkpoint: set checkpoint = \"...\" in [model.{name}] (a state "
                         f"dict, a pickled module or a TorchScript file); random weights are never shown")
    base = _architecture(builder, name)
    head = _classifier(base, name)
    num_classes = _rows(state, f"{head}.weight") or _out_features(base, head)
    stem = first_conv(base)
    in_chans = spec.in_chans or _cols(state, f"{stem}.weight") or (named.in_chans if named else 3)
    same = num_classes == _out_features(base, head) and in_chans == _cols(base.state_dict(), f"{stem}.weight")
    module = base if builder.startswith("python:") or same else _architecture(builder, name, num_classes, in_chans)
    if state is not None:
        check_fits(state, module, name, spec.arch, spec.checkpoint)
    names = read_labels(spec.labels, name) if spec.labels else folder_labels(pool, name)
    if names is not None and len(names[0]) != num_classes:
        where = f"labels file {spec.labels!r}" if spec.labels else f"the data folder {pool!r}"
        raise AtlasError(f"{where} of model {name} names {len(names[0])} classes but its head ({head}) has "
                         f"{num_classes} outputs; give one class name per output, in output order")
    size, mean, std = _input(spec, builder, named, base, in_chans, name)
    layers = {n for n, _ in module.named_modules() if n}
    blocks = tuple(Block(p) for p in spec.blocks) if spec.blocks else (named.blocks if named else generic_blocks(module))
    for b in blocks:
        _layer(b.path, layers, name, "blocks")
    resnet = _resnet_layout(builder, module)
    concept = spec.concept_layer or (named.concept_layer if named else ("layer4" if resnet else None))
    # as the zoo's cards: neuron targets default to the last matched block
    neuron = spec.neuron_layer or (named.neuron_layer if named else (blocks[-1].path if blocks else None)) or None
    for what, layer in (("concept_layer", concept), ("neuron_layer", neuron)):
        if layer:
            _layer(layer, layers, name, what)
    transformer = named.transformer if named else is_transformer(builder.split(":", 1)[-1], module)
    lrp, lrp_reason = _lrp(spec.lrp, builder, named, module, transformer, name)
    return ModelCard(
        name=name, family=_family(builder), builder=builder, weights=weights_label(spec, state, module),
        input_size=size, mean=mean, std=std, in_chans=in_chans, penultimate=f"{head}:in", num_classes=num_classes,
        class_names=names[0] if names else None, wnids=names[1] if names else None,
        blocks=blocks, concept_layer=concept, neuron_layer=neuron, lrp_rules=lrp, lrp_unavailable=lrp_reason,
        gflops=_gflops(module, in_chans, size), transformer=transformer, channels_last=not transformer,
        has_batchnorm=has_batchnorm_layers(module),
        vital_class_prior=named.vital_class_prior if named else 0.0, pii_views=named.pii_views if named else None,
    )


def resolve_arch(arch: str) -> Tuple[str, Optional[ModelCard]]:
    """``(builder, named card)`` of an ``arch`` value: a named zoo model's builder and card, ``timm:<name>``,
    a torchvision classifier name, or ``python:<module>:<callable>``; the named card is the zoo's card of the
    same architecture, whose layer facts (blocks, concept layer, LRP rules) are taken over."""
    if arch.startswith("python:"):
        return arch, None
    if arch in CARDS:
        card = CARDS.get(arch)
        return card.builder, card
    if arch.startswith("timm:"):
        import timm

        if not timm.is_model(arch[5:].split(".")[0]):
            raise unknown_choice("timm architecture", arch[5:], timm.list_models())
        builder = f"timm:{arch[5:].split('.')[0]}"
    elif arch.startswith("torchvision:"):
        builder = arch
    else:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if arch not in names:
            raise unknown_choice("architecture", arch, [*CARDS.names(), *names, "timm:<name>",
                                                         "python:<module>:<callable>"])
        builder = f"torchvision:{arch}"
    named = next((c for c in (CARDS.get(n) for n in CARDS.names()) if c.builder == builder), None)
    return builder, named


# ------------------------------------------------------------------------------------------- checkpoints
def _path(value: str) -> Path:
    return Path(os.path.expanduser(value))


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip with a ``code/`` folder)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 2)[1:2] == ["code"] for n in z.namelist())
    except (zipfile.BadZipFile, OSError, IndexError):
        return False


def read_checkpoint(path: Path, model: str):
    """What ``path`` holds: a TorchScript module, a pickled ``nn.Module`` or a mapping (a state dict or a
    training checkpoint); an unreadable file is a one-line :class:`AtlasError`."""
    if not path.is_file():
        raise AtlasError(f"checkpoint {str(path)!r} of model {model} does not exist (checkpoint = ... in "
                         f"[model.{model}], relative to the working directory)")
    fix = "expected a file written by torch.save (a state dict or a module) or torch.jit.save"
    try:
        if is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export: still read
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # not only tensors: a pickled module, or not a checkpoint at all (told apart below)
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise AtlasError(f"cannot read checkpoint {str(path)!r} of model {model}: {type(exc).__name__}: "
                         f"{_first_line(exc)}; {fix}") from None
    try:  # a pickled module: its classes must be importable
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise AtlasError(f"cannot read checkpoint {str(path)!r} of model {model}: it pickles objects that cannot "
                         f"be loaded ({type(exc).__name__}: {_first_line(exc)}); save model.state_dict() instead, "
                         f"or put the module's package on PYTHONPATH") from None
    except Exception as exc:
        raise AtlasError(f"cannot read checkpoint {str(path)!r} of model {model}: {type(exc).__name__}: "
                         f"{_first_line(exc)}; {fix}") from None


def read_state_dict(path: Path, model: str) -> Dict[str, torch.Tensor]:
    """The tensors of the checkpoint at ``path`` (see :func:`read_checkpoint`), keys without wrapper
    prefixes."""
    return state_dict_of(read_checkpoint(path, model), path, model)


def state_dict_of(obj, path: Path, model: str) -> Dict[str, torch.Tensor]:
    if isinstance(obj, (nn.Module, torch.jit.ScriptModule)):
        state = dict(obj.state_dict())
    elif isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            state = dict(tensors)
        else:
            for key in NESTED_KEYS:
                if key in obj and isinstance(obj[key], (Mapping, nn.Module)):
                    return state_dict_of(obj[key], path, model)
            if not tensors:
                keys = ", ".join(repr(k) for k in list(obj)[:8])
                raise AtlasError(f"checkpoint {str(path)!r} of model {model} holds no state dict (top-level keys: "
                                 f"{keys}); save model.state_dict(), or nest it under 'state_dict' or 'model'")
            state = dict(tensors)
    else:
        raise AtlasError(f"checkpoint {str(path)!r} of model {model} holds a {type(obj).__name__}, not a state "
                         f"dict, a module or TorchScript")
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_fits(state: Mapping[str, torch.Tensor], module: nn.Module, model: str, arch: str,
               checkpoint: Optional[str]) -> None:
    """A one-line error if the tensors of ``state`` do not fit ``module`` (meta tensors will do): the first
    missing and unexpected keys and the shape mismatches."""
    target = module.state_dict()
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    mismatched = [(k, tuple(state[k].shape), tuple(target[k].shape)) for k in target
                  if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if mismatched:
        shown = ", ".join(f"{k} {list(a)} in the checkpoint vs {list(b)}" for k, a, b in mismatched[:3])
        parts.append(f"{len(mismatched)} shape mismatches ({shown})")
    raise AtlasError(f"checkpoint {checkpoint!r} of model {model} does not fit arch {arch!r}: " + "; ".join(parts) +
                     f"; set arch (and in_chans) in [model.{model}] to the architecture it was trained with")


_HASHES: Dict[Tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (cached per path, size and modification time)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def weights_label(spec, state, module: nn.Module) -> str:
    """Where the weights come from, with a content hash (part of every job's key, so a new checkpoint under
    the same name is a new model): the checkpoint file's SHA-256, or the factory's tensors'."""
    if spec.checkpoint:
        return f"checkpoint {_path(spec.checkpoint).name} (sha256 {file_sha256(_path(spec.checkpoint))[:16]})"
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"{spec.arch} (its own weights, sha256 {h.hexdigest()[:16]})"


# ------------------------------------------------------------------------------------------- labels
def read_labels(value: str, model: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """``(names, ids)`` from a labels file: one name per line in output order, or a JSON list of names; the
    ids (class folder names) are the names."""
    path = _path(value)
    if not path.is_file():
        raise AtlasError(f"labels file {value!r} of model {model} does not exist (one class name per line, in "
                         f"output order, or a JSON list)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"cannot read labels file {value!r} of model {model}: {exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise AtlasError(f"labels file {value!r} of model {model} is not valid JSON: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise AtlasError(f"labels file {value!r} of model {model} must hold a JSON list of class names")
        names = [str(n).strip() for n in names]
    else:
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
    empty = [i for i, n in enumerate(names) if not n]
    if empty:
        raise AtlasError(f"labels file {value!r} of model {model} has an empty class name at line {empty[0] + 1}; "
                         f"give one name per output, in output order")
    if not names:
        raise AtlasError(f"labels file {value!r} of model {model} names no class")
    return tuple(names), tuple(names)


def class_folders(pool: str) -> Tuple[Optional[Path], List[str]]:
    """``(root, class folder names)`` of a data folder (its ``train/`` if it has one and no other class
    folders), sorted; ``(None, [])`` for the bundled photos or a folder that does not exist."""
    if not pool or pool == "bundled":
        return None, []
    root = _path(pool)
    if not root.is_dir():
        return None, []
    subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if "train" in subs and (root / "train").is_dir() and set(subs) <= {"train", "val", "test", "valid"}:
        return class_folders(str(root / "train"))
    return root, subs


def folder_labels(pool: Optional[str], model: str) -> Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]]:
    """The default labels: the data folder's class folders, sorted (ImageNet's names for a folder of the
    1000 wnids); an error when there is no folder to read them from."""
    root, subs = class_folders(pool or "")
    if root is None or not subs:
        where = "the bundled photos" if pool in (None, "bundled") else f"data folder {pool!r}"
        raise AtlasError(f"model {model} has no labels: set labels = \"labels.txt\" in [model.{model}] (one class "
                         f"name per line, in output order) or point [data] pool at its image folder "
                         f"(<pool>/<class name>/*.jpg; {where} has no class folders)")
    names, wnids = imagenet_classes()
    if tuple(subs) == tuple(sorted(wnids)):
        return names, wnids
    return tuple(subs), tuple(subs)


# ------------------------------------------------------------------------------------------- architecture
def _architecture(builder: str, model: str, num_classes: Optional[int] = None,
                  in_chans: Optional[int] = None) -> nn.Module:
    """The architecture on the meta device (a ``python:`` factory: as it builds it)."""
    if builder.startswith("python:"):
        return build(builder)
    try:
        with torch.device("meta"):
            return build(builder, num_classes, in_chans)
    except AtlasError:
        raise
    except Exception as exc:
        raise AtlasError(f"cannot build arch {builder} of model {model}: {type(exc).__name__}: "
                         f"{_first_line(exc)}") from None


def _classifier(module: nn.Module, model: str) -> str:
    try:
        return last_linear(module)
    except AtlasError:
        raise AtlasError(f"model {model}: its architecture has no classifier (a Linear layer) whose rows are "
                         f"the classes") from None


def _out_features(module: nn.Module, head: str) -> int:
    return int(module.get_submodule(head).out_features)


def _rows(state, key: str) -> Optional[int]:
    t = state.get(key) if state else None
    return int(t.shape[0]) if t is not None and t.dim() >= 1 else None


def _cols(state, key: str) -> Optional[int]:
    t = state.get(key) if state else None
    return int(t.shape[1]) if t is not None and t.dim() >= 2 else None


def _input(spec, builder: str, named: Optional[ModelCard], module: nn.Module, in_chans: int,
           model: str) -> Tuple[int, Tuple[float, ...], Tuple[float, ...]]:
    """Input size, mean and std: the table's, else the named card's, timm's pretrained configuration or
    torchvision's weights, else ImageNet's; fitted to ``in_chans`` (one channel: the channels' average)."""
    size, mean, std = 224, IMAGENET_MEAN, IMAGENET_STD
    if named is not None:
        size, mean, std = named.input_size, named.mean, named.std
    elif builder.startswith("timm:"):
        cfg = getattr(module, "pretrained_cfg", None) or {}
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        mean, std = tuple(cfg.get("mean", mean)), tuple(cfg.get("std", std))
    elif builder.startswith("torchvision:"):
        import torchvision

        try:
            size = int(torchvision.models.get_model_weights(builder[12:]).DEFAULT.transforms().crop_size[0])
        except Exception:  # an architecture without published weights
            pass
    size = spec.input_size or size
    mean, std = spec.mean or mean, spec.std or std
    fitted = []
    for what, v, given in (("mean", mean, spec.mean), ("std", std, spec.std)):
        if len(v) == in_chans:
            fitted.append(tuple(float(x) for x in v))
        elif len(v) == 1:
            fitted.append(tuple(float(v[0]) for _ in range(in_chans)))
        elif in_chans == 1 and not given:
            fitted.append((float(sum(v) / len(v)),))
        else:
            raise AtlasError(f"model {model} has {in_chans} input channels but its {what} has {len(v)} values; "
                             f"give {what} = [...] with {in_chans} in [model.{model}]")
    return int(size), fitted[0], fitted[1]


def _layer(path: str, layers: Iterable[str], model: str, what: str) -> None:
    if path not in layers:
        raise unknown_choice(f"layer in {what} of model {model}:", path, sorted(layers))


def _resnet_layout(builder: str, module: nn.Module) -> bool:
    """A ResNet-style network (torchvision's or timm's resnet/resnext/wide_resnet): stages ``layer1``-``layer4``
    whose blocks end in a ReLU, so ``layer4``'s activations are non-negative (CRAFT's concept layer, as on the
    zoo's ResNet-50 card)."""
    arch = builder.split(":")[-1]
    children = {n for n, _ in module.named_children()}
    return arch.startswith(("resnet", "resnext", "wide_resnet")) and {"layer1", "layer2", "layer3", "layer4"} <= children


def _lrp(value: Optional[str], builder: str, named: Optional[ModelCard], module: nn.Module, transformer: bool,
         model: str) -> Tuple[Optional[str], str]:
    """(LRP rules, why none): the table's, the named card's, or derived as for zoo cards."""
    if value is not None:
        if value == "none":
            return None, f'lrp = "none" in [model.{model}]'
        return value, ""
    if named is not None:
        return named.lrp_rules, named.lrp_unavailable
    if transformer:
        return None, NO_TRANSFORMER_LRP
    if builder.startswith("python:"):
        return None, PYTHON_LRP
    if builder.startswith("timm:"):
        from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

        lite = any(isinstance(m, (InvertedResidual, DepthwiseSeparableConv)) for m in module.modules())
        return ("efficientnet_lite" if lite else "generic"), ""
    fam = torchvision_family(builder[12:])
    return (fam if fam in TORCHVISION_LRP_FAMILIES else "generic"), ""


def _family(builder: str) -> str:
    kind, _, arch = builder.partition(":")
    if kind == "torchvision":
        return torchvision_family(arch)
    return kind


def _gflops(module: nn.Module, in_chans: int, size: int) -> Optional[float]:
    meta = module if _is_meta(module) else copy.deepcopy(module).to("meta")
    return forward_gflops(meta, in_chans, size)


def _is_meta(module: nn.Module) -> bool:
    return any(p.is_meta for p in module.parameters())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------- loading
def load_user_model(name: str) -> ModelHandle:
    """The handle of defined model ``name``: its architecture with the checkpoint's tensors (on the CPU)."""
    user = DEFINED[name]
    card = user.card
    if user.checkpoint is None:
        module = build(card.builder)
    else:
        state = read_state_dict(user.checkpoint, name)
        module = build(card.builder) if card.builder.startswith("python:") else \
            build(card.builder, card.num_classes, card.in_chans)
        check_fits(state, module, name, user.arch, str(user.checkpoint))
        module.load_state_dict(state, strict=False)  # only num_batches_tracked may be missing (check_fits)
    return ModelHandle.from_card(card, module)


def model_identity(name: str) -> str:
    """The identity of a defined model's outputs - architecture, weights (content hash), input size,
    normalisation and channels - as a short hash; "" for the zoo's models, whose name says it."""
    user = DEFINED.get(name)
    if user is None:
        return ""
    c = user.card  # not the checkpoint's path: a shard may see it as another (absolute) path
    text = json.dumps([c.builder, user.content, c.input_size, list(c.mean), list(c.std), c.in_chans, c.num_classes])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_key(name: str) -> Dict[str, str]:
    """What a stage key adds for model ``name``: ``{"model_id": ...}`` for a model the configuration defines
    (a new checkpoint under the same name recomputes its stages), nothing for the zoo's."""
    identity = model_identity(name)
    return {"model_id": identity} if identity else {}
