"""The per-class cluster chart of a class page (Lens shows one per class): every CRAFT patch of the class's
real images placed by its concept coefficients and coloured by its dominant concept, drawn as SVG at build
time. Placement is RadViz: concept k is a vertex on a circle, a patch sits at the average of the vertices
weighted by its (non-negative) NMF coefficients U - a patch of one concept lands on that concept's vertex,
a mixture in between. Deterministic and instant (no t-SNE per class at 1000 classes), and its axes mean
something: the direction towards a vertex is that concept's share."""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

import numpy as np

from ..tsne_svg import PALETTE


def radviz(U: np.ndarray, max_points: int = 400, seed: int = 0) -> np.ndarray:
    """(n, 3) rows ``x, y, dominant concept`` for the rows of ``U`` (patches x K, non-negative); at most
    ``max_points`` rows (a fixed random subset); rows with no activation are left out."""
    U = np.clip(np.asarray(U, dtype=np.float64), 0, None)
    total = U.sum(1)
    keep = np.flatnonzero(total > 0)
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_points, replace=False))
    w = U[keep] / total[keep, None]
    k = U.shape[1]
    angles = -math.pi / 2 + 2 * math.pi * np.arange(k) / k
    xy = w @ np.stack([np.cos(angles), np.sin(angles)], 1)
    return np.column_stack([xy, U[keep].argmax(1)])


def cluster_svg(points: np.ndarray, k: int, labels: Sequence[str], title: str, size: int = 260) -> str:
    """The chart: a unit circle with one labelled vertex per concept, points coloured by dominant concept."""
    pad = 26
    r0 = (size - 2 * pad) / 2
    cx = cy = size / 2

    def at(x: float, y: float):
        return cx + x * r0, cy + y * r0

    out = [f'<svg class="cluster" viewBox="0 0 {size} {size}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">',
           f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r0:.1f}" class="frame" fill="none"/>']
    for x, y, c in points:
        px, py = at(x, y)
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.6" fill="{PALETTE[int(c) % len(PALETTE)]}" '
                   f'fill-opacity="0.65"/>')
    for i in range(k):
        a = -math.pi / 2 + 2 * math.pi * i / k
        vx, vy = at(math.cos(a), math.sin(a))
        lx, ly = at(1.14 * math.cos(a), 1.14 * math.sin(a))
        out.append(f'<circle cx="{vx:.1f}" cy="{vy:.1f}" r="5" fill="{PALETTE[i % len(PALETTE)]}" class="vertex"/>')
        out.append(f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" class="label">{escape(labels[i])}</text>')
    out.append("</svg>")
    return "".join(out)
