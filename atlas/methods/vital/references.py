"""VITAL's reference sets (supplementary §1.3, §2.3, Fig. 22; reference/02_vital.md).

* class neurons: N random images of the class from the configured pool, drawn from the target's own random
  stream (a different draw for every seed, as three runs of the reference script would draw);
* intermediate neurons: the neuron's top-N patches (64 px, stride 51, unique source images, scored by the
  channel's spatial mean activation) - :mod:`atlas.data.patches`;
* polysemantic neurons (Fig. 22): the top patches of one k-means cluster of the neuron's top patches - the
  one clustering of the atlas, which every method and page uses (resource ``neuron_clusters``,
  :mod:`atlas.concepts.clusters`; ``[targets.neuron_settings] polysemantic`` and ``clusters``);
* concepts (§2.3: "the images that highly activate the concepts through CRAFT"): the class's CRAFT patches
  ranked by their own NMF coefficients U (resource ``concepts``), unique source images.

The patches *choose* the references; what VITAL then matches (``references_from``) is, by default, the full
source images of the chosen patches, as the reference code feeds them (``images``); ``patches`` matches the
patches themselves, upsampled to the input size (the supplementary's wording).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch

from ...data.patches import NeuronExamples, cached_top_patches, patch_images
from ...errors import AtlasError
from ...targets import Target

#: What VITAL matches for neuron, cluster and concept targets (see the module docstring).
REFERENCES_FROM = ("images", "patches")


def _enough(images: torch.Tensor, n: int, what: str, allow_fewer: bool) -> torch.Tensor:
    if images.shape[0] == 0:
        raise AtlasError(f"no reference images for {what}")
    if images.shape[0] < n and not allow_fewer:
        raise AtlasError(f"{what} has {images.shape[0]} reference images, fewer than the {n} asked for; lower "
                         f"the vital setting 'references' or set allow_fewer = true to proceed with what exists")
    return images


def class_references(ctx, class_id: int, n: int, allow_fewer: bool, seed: int = 0) -> torch.Tensor:
    """N random images of ``class_id``, the draw of ``seed`` (the target's random stream)."""
    size = ctx.model.input_size
    return ctx.pool.reference_images(class_id, n, size, seed=int(seed), allow_fewer=allow_fewer)


def example_images(ctx, ex: NeuronExamples, cfg) -> torch.Tensor:
    """What VITAL matches for the chosen patches ``ex``: their full source images (``references_from =
    "images"``) or the patches upsampled to the input size (``"patches"``), (n, 3, S, S) in [0, 1]."""
    size = ctx.model.input_size
    if cfg.references_from == "patches":
        return patch_images(ctx.pool, ex, size, cfg.patch)
    if not ex.sources:
        return torch.zeros(0, 3, size, size)
    return torch.stack([ctx.pool.source_image(s, size) for s in ex.sources])


def describe(cfg, chosen_by: str) -> str:
    """One line for the figure page: which references were matched and how they were chosen."""
    what = "full source images" if cfg.references_from == "images" else "patches (upsampled)"
    return f"{what} of the {chosen_by}"


def neuron_references(ctx, target: Target, n: int, cfg) -> torch.Tensor:
    """The neuron's top-N patches (unique sources), or, for a cluster target, the top-N of its cluster;
    their source images or the patches themselves (``references_from``)."""
    if target.cluster is not None:
        ex = cluster_examples(ctx, target, n)
        what = f"cluster {target.cluster} of neuron {target.layer}:{target.channel}"
    else:
        channels = _layer_channels(ctx, target)
        ex = cached_top_patches(ctx.store, ctx.model, ctx.pool, target.layer, channels, n, cfg.patch, cfg.stride,
                                max_images=examples_max_images(ctx.config))[target.channel]
        what = f"neuron {target.layer}:{target.channel}"
    return _enough(example_images(ctx, ex, cfg), n, what, cfg.allow_fewer)


def cluster_examples(ctx, target: Target, n: int) -> NeuronExamples:
    """The top patches (unique sources) of the target's cluster, from the atlas's one clustering (resource
    ``neuron_clusters``: the k-means split of ``[targets.neuron_settings]``, the one the site shows)."""
    cl = ctx.resource("neuron_clusters").clusters(target)["examples"]
    return NeuronExamples(cl["layer"], cl["channel"], list(cl["sources"][:n]), [tuple(b) for b in cl["boxes"][:n]],
                          list(cl["scores"][:n]))


def examples_max_images(config) -> Optional[int]:
    """The pool images searched for a neuron's top patches: the same as for its dataset examples
    (``[targets.neuron_settings] max_images``), so that one scan serves the neuron page, VITAL's references
    and the CoSy control set."""
    if config is None or not hasattr(config, "targets"):
        return None
    from ...config import neuron_config

    return neuron_config(config).max_images or None


def _layer_channels(ctx, target: Target) -> List[int]:
    """The configured neurons of the target's layer (one top-patch scan serves all of them)."""
    listed = [c for layer, c in getattr(getattr(ctx.config, "targets", None), "neurons", ()) if layer == target.layer]
    return sorted(set(listed + [target.channel]))


def concept_references(ctx, targets: Sequence[Target], n: int, cfg) -> List[torch.Tensor]:
    """Per concept target: the class's CRAFT patches with the largest coefficients U for the concept (unique
    source images; resource ``concepts``), as full images or patches (``references_from``)."""
    provider = ctx.resource("concepts")
    out = []
    for t in targets:
        images = provider.examples(t, n, patches=cfg.references_from == "patches")
        out.append(_enough(images, n, f"concept {t.slug()}", cfg.allow_fewer))
    return out
