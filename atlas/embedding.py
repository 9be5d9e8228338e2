"""t-SNE of penultimate features: real images of a group of classes and every method's FVs, embedded
together (VITAL supplementary Fig. 9), with scikit-learn's TSNE at a fixed seed."""
from __future__ import annotations

from typing import Optional

import numpy as np


def default_perplexity(n: int) -> float:
    """scikit-learn's default perplexity (30), lowered for small sets so that it stays below ``(n - 1) / 3``."""
    return float(max(1.0, min(30.0, (n - 1) / 3.0)))


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: Optional[float] = None) -> np.ndarray:
    """2-D t-SNE coordinates (N, 2) of ``features`` (N, D), deterministic for a given ``seed``.

    Features are reduced to at most 50 principal components first (the usual t-SNE preprocessing, which
    also makes the result independent of thread scheduling in the neighbour search), then embedded with
    PCA initialisation and scikit-learn's automatic learning rate. Coordinates are centred and scaled to
    unit maximum absolute value. Needs at least 4 samples.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n < 4:
        raise ValueError(f"t-SNE needs at least 4 samples of shape (N, D), got {x.shape}")
    k = min(50, n, x.shape[1])
    if k < x.shape[1]:
        x = PCA(n_components=k, random_state=seed, svd_solver="full").fit_transform(x)
    emb = TSNE(n_components=2, perplexity=perplexity or default_perplexity(n), init="pca",
               learning_rate="auto", random_state=seed, method="exact" if n <= 200 else "barnes_hut",
               ).fit_transform(x)
    emb = emb - emb.mean(0)
    scale = np.abs(emb).max() or 1.0
    return emb / scale


def umap_available() -> bool:
    """Whether UMAP (package ``umap-learn``, the optional extra ``atlas-fv[map]``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def umap_2d(features: np.ndarray, seed: int = 0, neighbours: int = 15) -> np.ndarray:
    """2-D UMAP coordinates (N, 2) of ``features`` (N, D) on the cosine metric, deterministic for a given
    ``seed`` (UMAP then runs single-threaded), centred and scaled to unit maximum absolute value."""
    import umap

    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n < 4:
        raise ValueError(f"UMAP needs at least 4 samples of shape (N, D), got {x.shape}")
    emb = umap.UMAP(n_components=2, n_neighbors=max(2, min(neighbours, n - 1)), metric="cosine",
                    random_state=seed, init="random" if n < 16 else "spectral").fit_transform(x)
    emb = emb - emb.mean(0)
    scale = np.abs(emb).max() or 1.0
    return emb / scale


def map_2d(features: np.ndarray, seed: int = 0, method: str = "auto") -> tuple:
    """``(coordinates (N, 2) in [-1, 1], method name)`` of ``features`` (N, D) compared by their direction
    (rows are L2-normalised): UMAP (cosine) when ``method`` is ``"umap"``, or ``"auto"`` and umap-learn is
    installed; else scikit-learn's t-SNE (:func:`tsne_2d`). Fewer than 4 rows are placed on a circle."""
    x = np.asarray(features, dtype=np.float64)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    n = x.shape[0]
    if n < 4:
        angles = 2 * np.pi * np.arange(n) / max(n, 1)
        return np.stack([np.cos(angles), np.sin(angles)], 1) * (0.5 if n > 1 else 0.0), "none (fewer than 4 points)"
    if method == "umap" or (method == "auto" and umap_available()):
        return umap_2d(x, seed), "UMAP (cosine)"
    return tsne_2d(x, seed), "t-SNE"
