"""Metric functions: pure, documented, numpy in and numbers out (no model, no I/O).

Each function computes one quantity of the papers' quality tables from features, logits or activations
that the runner (:mod:`atlas.metrics.runner`) has extracted. Where a number comes from a reference
implementation or paper, the docstring says which (facts in ``shared/reference/08_metrics.md``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np


# --------------------------------------------------------------------------------------------- FID / KID
def gaussian_stats(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov(rowvar=False)``, unbiased) of features (N, D), as pytorch-fid."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {x.shape}")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    As pytorch-fid's ``calculate_frechet_distance``: ``scipy.linalg.sqrtm`` of the product; if it is not
    finite, ``eps * I`` is added to both covariances; a complex result with an imaginary diagonal above
    1e-3 is an error, smaller imaginary parts (numerical noise) are dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched statistics: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    from scipy import linalg  # imported here: scipy's import costs every process start ~1 s

    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the matrix square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet Inception Distance between two feature sets (N, D) and (M, D) (Heusel et al. 2017).

    Only meaningful when both sets have at least D samples (full-rank covariances; pytorch-fid README):
    :func:`fid_unavailable` says when not to report it.
    """
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def fid_unavailable(n_a: int, n_b: int, dim: int) -> Optional[str]:
    """Why FID of sets of ``n_a`` and ``n_b`` samples of ``dim`` features is not reported, or None."""
    n = min(n_a, n_b)
    if n < dim:
        return (f"{n} images < {dim} feature dimensions: the covariance is rank-deficient and FID "
                f"meaningless (pytorch-fid needs >= {dim}); see KID")
    return None


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x . y / D + coef0) ** degree``, the KID kernel (Bińkowski et al. 2018; torch-fidelity)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased squared MMD between samples x (N, D) and y (M, D) with the polynomial kernel (N, M >= 2)."""
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = (polynomial_kernel(a, b, degree, coef0) for a, b in ((x, x), (y, y), (x, y)))
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, coef0: float = 1.0, seed: int = 0) -> Tuple[float, Optional[float]]:
    """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over random subsets.

    torch-fidelity's defaults (100 subsets of 1000, cubic polynomial kernel). When both sets are no
    larger than ``subset_size`` the unbiased estimate on the full sets is returned (std None): KID is
    unbiased for small sets, which is why it stands in for FID there.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] <= subset_size and b.shape[0] <= subset_size:
        return mmd2_unbiased(a, b, degree, coef0), None
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(a[rng.choice(a.shape[0], m, replace=False)], b[rng.choice(b.shape[0], m, replace=False)],
                          degree, coef0) for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))


# --------------------------------------------------------------------------------------------- neurons
def auc(control: Sequence[float], synthetic: Sequence[float]) -> float:
    """Area under the ROC curve separating synthetic (label 1) from control (label 0) activations.

    CoSy (Kopf et al. 2024) ``roc_auc_score(labels, concat(A_0, A_1))``, computed as the Mann-Whitney U
    statistic with average ranks for ties: 1 when every synthetic activation exceeds every control one,
    0.5 for indistinguishable sets.
    """
    c, s = np.asarray(control, np.float64).ravel(), np.asarray(synthetic, np.float64).ravel()
    if c.size == 0 or s.size == 0:
        raise ValueError("AUC needs at least one control and one synthetic activation")
    from scipy.stats import rankdata  # imported here, as linalg above

    ranks = rankdata(np.concatenate([c, s]))
    u = ranks[c.size:].sum() - s.size * (s.size + 1) / 2
    return float(u / (c.size * s.size))


def mad(control: Sequence[float], synthetic: Sequence[float]) -> float:
    """Mean activation difference ``(mean(A_1) - mean(A_0)) / std(A_0)`` (CoSy; unbiased std; 0 if it is 0)."""
    c, s = np.asarray(control, np.float64).ravel(), np.asarray(synthetic, np.float64).ravel()
    if c.size < 2 or s.size == 0:
        raise ValueError("MAD needs at least two control and one synthetic activation")
    sd = c.std(ddof=1)
    return 0.0 if sd == 0 else float((s.mean() - c.mean()) / sd)


# --------------------------------------------------------------------------------------------- classification
def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def top_predictions(logits: np.ndarray, k: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Top-``k`` class ids and softmax scores per row of ``logits`` (N, C) (VITAL Table 3: k = 2)."""
    p = softmax(logits)
    ids = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    return ids, np.take_along_axis(p, ids, -1)


def topk_hits(ranked_ids: np.ndarray, labels: Sequence[int], k: int) -> np.ndarray:
    """Boolean per row: is ``labels[i]`` among the first ``k`` of ``ranked_ids[i]``."""
    ids = np.asarray(ranked_ids)[:, :k]
    return (ids == np.asarray(labels)[:, None]).any(1)


def accuracy(hits: Sequence[bool]) -> float:
    """Percentage of true entries (the papers report accuracies in %)."""
    h = np.asarray(hits, dtype=bool)
    if h.size == 0:
        raise ValueError("accuracy of an empty set")
    return float(100.0 * h.mean())


# --------------------------------------------------------------------------------------------- distances
def nearest_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query (N, D) to its nearest reference (M, D).

    MACO's plausibility score (§4, Table 1: Deep-KNN / 1-KNN distance of each FV to the class's natural
    images in the model's representation); lower is more plausible.
    """
    q, r = np.asarray(queries, np.float64), np.asarray(references, np.float64)
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * q @ r.T
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation of two equally long vectors (0 if either is constant)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return 0.0 if den == 0 else float((x * y).sum() / den)
