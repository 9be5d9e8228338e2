"""CRAFT for one class: patches -> non-negative activations -> NMF -> Sobol importance -> concept maps.

Follows the CRAFT package (reference/05_craft.md) without TensorFlow:

1. every image (N, 3, S, S) is cut into ``patch`` x ``patch`` patches with stride ``stride`` (64 and 51 at
   224 px), each resized bilinearly to S and passed through the model up to ``layer``; activations are
   spatially averaged -> A (N * P, C), which must be non-negative (CRAFT asserts it);
2. scikit-learn ``NMF(K)`` (default parameters, as in the CRAFT repo): A ~ U W, with the concept bank W
   (K, C) and the patch coefficients U (N * P, K);
3. the *full* images' activation maps (N, C, h, w) are projected on W with W fixed (NNLS, NMF.transform):
   the concept maps u (N, h, w, K);
4. importance: for each image, the concept maps are multiplied by Halton masks (one value per concept,
   the same at every position), mapped back with W and through the rest of the model (h) to the class
   logit; Jansen's total-order indices, averaged over the images (:mod:`atlas.concepts.sobol`).

Concepts are returned sorted by importance (concept 0 is the most important one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from ..config import CraftConfig
from ..data.patches import extract_patches, patch_boxes
from ..errors import AtlasError
from ..models.handle import ModelHandle, channel_means
from .sobol import halton_design, jansen_total_indices


@dataclass
class CraftResult:
    """One class's concepts, sorted by importance (index 0 = most important).

    W: (K, C) concept bank. U: (N * P, K) patch coefficients (patch i is box ``i % P`` of image ``i // P``).
    maps: (N, h, w, K) concept maps of the full images. sobol: (N, K) per-image total indices.
    importance: (K,) mean total index. share: (K,) importance in % of the sum (sums to 100, or 0 if the
    logit never varied). wins: (K,) images for which the concept is the most important one.
    errors: {K': relative Frobenius reconstruction error ||A - UW|| / ||A||} (falls with K').
    """

    class_id: int
    layer: str
    W: np.ndarray
    U: np.ndarray
    maps: np.ndarray
    sobol: np.ndarray
    importance: np.ndarray
    share: np.ndarray
    wins: np.ndarray
    errors: Dict[int, float]
    boxes: List[tuple] = field(default_factory=list)

    @property
    def k(self) -> int:
        return self.W.shape[0]

    def top_patches(self, concept: int, n: int) -> List[int]:
        """Indices (into U's rows) of the ``n`` patches with the largest coefficient for ``concept``."""
        return [int(i) for i in np.argsort(-self.U[:, concept], kind="stable")[:n]]

    def thresholds(self, percentile: float) -> np.ndarray:
        """(K,) the ``percentile``-th percentile of each concept's map values over the class (CRAFT: 90)."""
        return np.percentile(self.maps.reshape(-1, self.k), percentile, axis=0)


def patch_activations(model: ModelHandle, images: torch.Tensor, layer: str, patch: int = 64, stride: int = 51,
                      batch_images: int = 4, progress: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Spatially averaged activations (N * P, C) of every patch of ``images`` at ``layer`` (non-negative)."""
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_images):
            x = extract_patches(images[i:i + batch_images].to(model.device), model.input_size, patch, stride)
            a = channel_means(model.activations(x, [layer])[layer]).float().cpu()
            out.append(a)
            if progress is not None:
                progress(x.shape[0])
    acts = torch.cat(out)
    low = float(acts.min())
    if low < 0:
        raise AtlasError(f"CRAFT needs non-negative activations, but layer {layer} of {model.name} has values "
                         f"down to {low:.3g}; choose a layer after a ReLU ([targets] concept_layer)")
    return acts


def fit_nmf(acts: np.ndarray, k: int, cfg: CraftConfig):
    """scikit-learn NMF with K components: (fitted model, U (n, K), W (K, C), relative error)."""
    from sklearn.decomposition import NMF

    if k > acts.shape[0]:
        raise AtlasError(f"{k} concepts need at least {k} patches, got {acts.shape[0]}; use more images "
                         f"([targets.concept_settings] images) or fewer concepts")
    nmf = NMF(n_components=k, alpha_W=cfg.alpha_w, max_iter=cfg.max_iter, random_state=cfg.seed)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Maximum number of iterations.*")
        u = nmf.fit_transform(acts)
    norm = float(np.linalg.norm(acts)) or 1.0
    return nmf, u.astype(np.float32), nmf.components_.astype(np.float32), float(nmf.reconstruction_err_) / norm


def head_function(model: ModelHandle, layer: str, probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """h: activations at ``layer`` (B, C, h, w) -> logits.

    When the layer's spatial mean is exactly the classifier's input (ResNet50 layer4, EfficientNet-Lite
    bn2; checked on ``probe``), h = classifier(mean): cheap. Otherwise the model is run with the layer's
    output replaced (correct for any layer, at the cost of a forward pass up to it).
    """
    pen = model.penultimate
    if pen.endswith(":in"):
        with torch.no_grad():
            feats = model.features(probe[:1].to(model.device), [layer, pen])
        a, p = feats[layer], feats[pen]
        if a.dim() == 4 and p.flatten(1).shape[1] == a.shape[1]:
            if torch.allclose(channel_means(a).flatten(1), p.flatten(1), rtol=1e-4, atol=1e-5):
                classifier = model.module_at(pen[:-3])

                def linear(acts: torch.Tensor) -> torch.Tensor:
                    return classifier(channel_means(acts.to(model.device)))

                linear.spatial_mean = True  # h depends on the spatial mean only (sobol_importance uses it)
                return linear
    size = model.input_size
    module = model.module_at(layer)

    def replaced(acts: torch.Tensor) -> torch.Tensor:
        handle = module.register_forward_hook(lambda m, args, out: acts.to(out.device, out.dtype))
        try:
            return model(torch.zeros(acts.shape[0], 3, size, size, device=model.device))
        finally:
            handle.remove()

    return replaced


def sobol_importance(maps: np.ndarray, W: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor],
                     class_id: int, nb_design: int, chunk: int = 64) -> np.ndarray:
    """Per-image total-order Sobol indices (N, K) of the class logit under concept masks."""
    n, h, w, k = maps.shape
    masks = torch.from_numpy(halton_design(k, nb_design))
    Wt = torch.from_numpy(W)
    out = np.zeros((n, k))
    if getattr(head, "spatial_mean", False):  # mean_hw((u * m) W) = (mean_hw(u) * m) W: one position suffices
        maps = maps.mean((1, 2), keepdims=True)
    with torch.no_grad():
        for i in range(n):
            u = torch.from_numpy(maps[i]).float()  # (h, w, K)
            logits = []
            for s in range(0, masks.shape[0], chunk):
                m = masks[s:s + chunk]  # (M, K)
                acts = torch.einsum("hwk,mk,kc->mchw", u, m, Wt)
                logits.append(head(acts)[:, class_id].float().cpu())
            out[i] = jansen_total_indices(torch.cat(logits).numpy(), nb_design, k)
    return out


def concept_maps(model: ModelHandle, nmf, images: torch.Tensor, layer: str, batch: int = 8) -> np.ndarray:
    """(N, h, w, K): the full images' activations at ``layer`` projected on the fixed bank (NNLS)."""
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            a = model.activations(images[i:i + batch].to(model.device), [layer])[layer].float().cpu()
            if a.dim() != 4:
                raise AtlasError(f"concept maps need a convolutional layer (N, C, h, w); {layer} gives "
                                 f"{tuple(a.shape)}")
            nb, c, h, w = a.shape
            x = a.clamp_min(0).permute(0, 2, 3, 1).reshape(-1, c).numpy()
            out.append(nmf.transform(x).reshape(nb, h, w, -1))
    return np.concatenate(out).astype(np.float32)


def craft(model: ModelHandle, images: torch.Tensor, class_id: int, layer: str, k: int, cfg: CraftConfig,
          progress: Optional[Callable[[int], None]] = None) -> CraftResult:
    """CRAFT concepts of ``class_id`` from ``images`` (N, 3, S, S) in [0, 1] at the model's input size."""
    acts = patch_activations(model, images, layer, cfg.patch, cfg.stride, progress=progress).numpy()
    nmf, U, W, err = fit_nmf(acts, k, cfg)
    errors = {k: err}
    if cfg.error_curve:
        for kk in sorted({1, math.ceil(k / 2)} - {k}):
            errors[kk] = fit_nmf(acts, kk, cfg)[3]
    maps = concept_maps(model, nmf, images, layer)
    head = head_function(model, layer, images)
    sobol = sobol_importance(maps, W, head, class_id, cfg.nb_design)
    importance = sobol.mean(0)
    order = np.argsort(-importance, kind="stable")
    W, U, maps, sobol, importance = W[order], U[:, order], maps[..., order], sobol[:, order], importance[order]
    total = importance.sum()
    share = importance / total * 100.0 if total > 0 else np.zeros_like(importance)
    varied = sobol.sum(1) > 0
    wins = np.bincount(sobol[varied].argmax(1), minlength=len(order)) if varied.any() else np.zeros(len(order), int)
    return CraftResult(class_id=class_id, layer=layer, W=W, U=U, maps=maps, sobol=sobol, importance=importance,
                       share=share, wins=wins, errors=dict(sorted(errors.items())),
                       boxes=patch_boxes(images.shape[-1], cfg.patch, cfg.stride))
