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
