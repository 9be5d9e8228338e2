"""Sobol total-order indices of concepts: a Halton design of concept masks and Jansen's estimator.

CRAFT's ``estimate_importance`` (reference/05_craft.md): a quasi-Monte-Carlo design of 2K dimensions
(``scipy.stats.qmc.Halton(2K, scramble=False)``, ``nb_design`` points) gives matrices A and B (K columns
each) and, for every concept i, C_i = A with column i taken from B: ``nb_design * (K + 2)`` masks. The
total-order index of concept i (Jansen 1999) is

    ST_i = sum_j (f(A_j) - f(C_i,j))^2 / (2 * nb_design * Var(f(A)))      (Var with ddof = 1)

It is a sum of squares, so never negative; it is 0 for every concept when f does not vary at all.
"""
from __future__ import annotations

import numpy as np


def halton_design(k: int, nb_design: int) -> np.ndarray:
    """Masks (nb_design * (k + 2), k) in [0, 1): rows A, then B, then C_1 ... C_k (each nb_design rows)."""
    from scipy.stats import qmc

    if k < 1 or nb_design < 2:
        raise ValueError(f"need k >= 1 and nb_design >= 2, got k={k}, nb_design={nb_design}")
    points = qmc.Halton(d=2 * k, scramble=False).random(nb_design)
    a, b = points[:, :k], points[:, k:]
    cs = []
    for i in range(k):
        c = a.copy()
        c[:, i] = b[:, i]
        cs.append(c)
    return np.concatenate([a, b, *cs]).astype(np.float32)


def jansen_total_indices(outputs: np.ndarray, nb_design: int, k: int) -> np.ndarray:
    """Total-order Sobol indices (k,) from the model outputs on :func:`halton_design`'s masks (in order)."""
    f = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if f.shape[0] != nb_design * (k + 2):
        raise ValueError(f"expected {nb_design * (k + 2)} outputs, got {f.shape[0]}")
    fa = f[:nb_design]
    fc = f[2 * nb_design:].reshape(k, nb_design)
    var = fa.var(ddof=1)
    if not np.isfinite(var) or var <= 1e-12 * max(1.0, float(np.abs(fa).max())) ** 2:
        return np.zeros(k)
    return ((fa[None, :] - fc) ** 2).sum(1) / (2 * nb_design * var)
