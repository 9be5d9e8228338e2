"""Measures the image-seeded methods record with each job (pure functions on activations).

* Path similarity (feature-accentuation paper §3, Appendix A; Geirhos et al. 2023): per layer, the Pearson
  correlation of an image's activations with those of natural images of its class, averaged over pairs;
  for an accentuation it excludes its own seed ("which would be trivially high"), and is compared with
  the natural images' average pairwise correlation among themselves and with the correlation to the seed
  (Fig. 8 A and C). A class's records are averaged by :func:`atlas.path_similarity.summarize_path_similarity`.
* Visualization correlation (attribution visualization §4.2): Pearson correlation, neuron by neuron, of
  the layer's activations on the visualization with the attributions R.
* Classification consistency (§4.2): whether the target class is among the model's top-5 on the
  visualization.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from ..models.handle import ModelHandle
from .image_targets import resize_to_input


def pearson_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) Pearson correlations between the rows of ``a`` (n, D) and ``b`` (m, D)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return a @ b.T


def path_layers(model: ModelHandle) -> List[str]:
    """The layers path similarity is measured at: the model's matched blocks, the classifier input and the
    logits (in forward order)."""
    return [b.path for b in model.blocks] + [model.penultimate, "logits"]


@torch.no_grad()
def layer_features(model: ModelHandle, images: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Flattened activations (B, D) per layer (``"logits"`` included) at the model's input size."""
    feats = model.features(resize_to_input(model, images), [k for k in layers if k != "logits"])
    return {k: feats[k].flatten(1).float().cpu() for k in layers}


def path_similarity(image: Dict[str, torch.Tensor], seed: Dict[str, torch.Tensor],
                    naturals: Dict[str, torch.Tensor], exclude: Optional[int] = None) -> Dict[str, list]:
    """Per layer: ``to_natural`` (mean correlation of the image with the natural images except index
    ``exclude``, its seed), ``natural`` (the natural images' mean pairwise correlation), ``to_seed``.

    Inputs map layer -> (1, D) for ``image`` and ``seed``, (N, D) for ``naturals``. A value is None where it
    is undefined (fewer than two natural images, or none left after the exclusion).
    """
    out = {"layers": [], "to_natural": [], "natural": [], "to_seed": []}
    for layer, nat in naturals.items():
        keep = [i for i in range(nat.shape[0]) if i != exclude]
        r_img = pearson_matrix(image[layer], nat)[0]
        to_nat = float(r_img[keep].mean()) if keep else None
        n = nat.shape[0]
        if n > 1:
            r = pearson_matrix(nat, nat)
            natural = float((r.sum() - r.diagonal().sum()) / (n * (n - 1)))
        else:
            natural = None
        out["layers"].append(layer)
        out["to_natural"].append(to_nat)
        out["natural"].append(natural)
        out["to_seed"].append(float(pearson_matrix(image[layer], seed[layer])[0, 0]))
    return out


def visualization_correlation(acts: torch.Tensor, attributions: torch.Tensor) -> float:
    """Pearson correlation between activations and attributions of one image, over all neurons."""
    return float(pearson_matrix(acts.reshape(1, -1), attributions.reshape(1, -1))[0, 0])


def classification_consistency(logits: torch.Tensor, class_id: int, k: int = 5) -> bool:
    """True if ``class_id`` is among the top-``k`` logits (one image's logits, (classes,))."""
    return int(class_id) in torch.topk(logits.flatten(), k).indices.tolist()
