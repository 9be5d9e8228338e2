"""The objective of a batch of targets for the activation-maximisation methods (MACO, Fourier): a class
logit, a neuron's mean activation, a polysemantic neuron's cluster direction or a concept direction."""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import AtlasError
from ..optim import objectives as obj
from ..targets import Target
from .base import RunContext


def check_neuron(ctx: RunContext, target: Target) -> None:
    """Raise a one-line error if the target's layer or channel does not exist in the model."""
    ctx.model.module_at(target.layer)
    with torch.no_grad():
        size = ctx.model.input_size
        shape = ctx.model.features(torch.zeros(1, 3, size, size, device=ctx.device), [target.layer])[target.layer].shape
    if not 0 <= target.channel < shape[1]:
        raise AtlasError(
            f"neuron {target.channel} out of range for layer {target.layer} of {ctx.model.name}: "
            f"valid channels are 0-{shape[1] - 1}"
        )


def target_objective(ctx: RunContext, targets: Sequence[Target]) -> obj.Objective:
    """One objective for K targets of the same kind (a batch holds one kind).

    class -> the class logit; neuron -> the channel's mean activation; concept -> dot x cos^2 on the
    concept direction at the concept layer (horama / xplique ``dot_cossim``).
    """
    kinds = {t.kind for t in targets}
    if len(kinds) != 1:
        raise ValueError(f"a batch must hold targets of one kind, got {sorted(kinds)}")
    kind = kinds.pop()
    if kind == "class":
        return obj.class_logit([t.class_id for t in targets])
    if kind == "neuron":
        layers = {t.layer for t in targets}
        if len(layers) != 1:
            raise ValueError("a batch of neuron targets must share one layer")
        for t in targets:
            check_neuron(ctx, t)
        plain = obj.channel(targets[0].layer, [t.channel for t in targets])
        if any(t.facet is not None for t in targets):
            plain = _facet_objective(ctx, targets, plain)
        if all(t.cluster is None for t in targets):
            return plain
        return _cluster_objective(ctx, targets, plain)
    if kind == "concept":
        pairs = [ctx.concept_direction(t) for t in targets]
        layers = {layer for layer, _ in pairs}
        if len(layers) != 1:
            raise ValueError("a batch of concept targets must share one layer")
        return obj.direction(layers.pop(), torch.stack([torch.as_tensor(v) for _, v in pairs]))
    raise ValueError(f"no activation objective for {kind} targets")


def diversity_weight(ctx: RunContext) -> float:
    """The weight of lucid's diversity term for this run (``[targets.layer_settings] diversity_weight``;
    it is in the diverse targets' ``fit_hash``, hence in their jobs' keys)."""
    from ..config import layer_config

    return layer_config(ctx.config).diversity_weight if ctx.config is not None else layer_config(None).diversity_weight


def _facet_objective(ctx: RunContext, targets: Sequence[Target], plain: obj.Objective) -> obj.Objective:
    """Negative facets minimise their channel (lucid's negative visualisation); diverse facets maximise it
    while the Gram matrices of their set (the channel's other diverse facets, in the same batch) are pushed
    apart (lucid's diversity objective)."""
    signed = obj.per_target_weights(plain, [-1.0 if t.facet == "negative" else 1.0 for t in targets])
    groups = [t.together() for t in targets]
    if all(g is None for g in groups):
        return signed
    return signed + obj.diversity(targets[0].layer, groups, diversity_weight(ctx))


def _cluster_objective(ctx: RunContext, targets: Sequence[Target], plain: obj.Objective) -> obj.Objective:
    """Cluster k of a polysemantic neuron: dot x cos^2 on the cluster's centroid at the neuron's layer
    (resource ``neuron_clusters``); targets without a cluster in the same batch keep the channel objective."""
    layer = targets[0].layer
    vecs = {i: ctx.resource("neuron_clusters")(t)[1] for i, t in enumerate(targets) if t.cluster is not None}
    dim = next(iter(vecs.values())).shape[0]
    toward = obj.direction(layer, torch.stack([vecs.get(i, torch.zeros(dim)) for i in range(len(targets))]))
    mask = torch.tensor([t.cluster is not None for t in targets])
    return obj.Objective(lambda ev: torch.where(mask.to(ev.image.device), toward(ev), plain(ev)), (layer,),
                         f"cluster direction {layer}", needs_logits=False)
