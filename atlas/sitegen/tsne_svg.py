"""The t-SNE chart as an SVG string built at render time (VITAL Fig. 9): real images as transparent circles
coloured by class, FVs as one symbol per method; every FV point links to its figure page and carries its
thumbnail (``data-src``) for the hover preview of ``static/tsne.js``. No chart library."""
from __future__ import annotations

import math
from html import escape
from typing import Callable, Dict, List, Optional, Sequence, Tuple

#: Okabe-Ito colours (distinguishable with colour-blindness), then a few more.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#8C564B", "#7F7F7F")
#: Symbols for methods in configuration order; real images are circles.
SHAPES = ("square", "triangle", "diamond", "triangle-down", "pentagon", "cross", "star", "hexagon")


def _polygon(x: float, y: float, r: float, n: int, rot: float = -90.0, inner: Optional[float] = None) -> str:
    pts = []
    steps = n * 2 if inner else n
    for i in range(steps):
        a = math.radians(rot + 360.0 * i / steps)
        rr = (inner if inner and i % 2 else 1.0) * r
        pts.append(f"{x + rr * math.cos(a):.1f},{y + rr * math.sin(a):.1f}")
    return "M" + " L".join(pts) + " Z"


def symbol_path(shape: str, x: float, y: float, r: float) -> str:
    """SVG path data of a marker ``shape`` centred at (x, y) with radius ``r``."""
    if shape == "circle":
        return f"M{x - r:.1f},{y:.1f} a{r:.1f},{r:.1f} 0 1,0 {2 * r:.1f},0 a{r:.1f},{r:.1f} 0 1,0 {-2 * r:.1f},0 Z"
    if shape == "square":
        s = r * 0.85
        return f"M{x - s:.1f},{y - s:.1f} h{2 * s:.1f} v{2 * s:.1f} h{-2 * s:.1f} Z"
    if shape == "cross":
        w = r * 0.35
        return (f"M{x - w:.1f},{y - r:.1f} h{2 * w:.1f} v{r - w:.1f} h{r - w:.1f} v{2 * w:.1f} h{w - r:.1f} "
                f"v{r - w:.1f} h{-2 * w:.1f} v{w - r:.1f} h{w - r:.1f} v{-2 * w:.1f} h{r - w:.1f} Z")
    sides = {"triangle": (3, -90.0, None), "triangle-down": (3, 90.0, None), "diamond": (4, -90.0, None),
             "pentagon": (5, -90.0, None), "hexagon": (6, 0.0, None), "star": (5, -90.0, 0.45)}
    n, rot, inner = sides.get(shape, (4, -90.0, None))
    return _polygon(x, y, r * (1.15 if n == 3 else 1.0), n, rot, inner)


def legend_symbol(shape: str, color: str = "currentColor", opacity: float = 1.0) -> str:
    """A 16 px inline SVG of one marker, for legends."""
    return (f'<svg class="sym" width="16" height="16" viewBox="0 0 16 16" aria-hidden="true">'
            f'<path d="{symbol_path(shape, 8, 8, 6)}" fill="{color}" fill-opacity="{opacity}" stroke="currentColor" '
            f'stroke-width="0.8"/></svg>')


def method_shapes(methods: Sequence[str]) -> Dict[str, str]:
    return {m: SHAPES[i % len(SHAPES)] for i, m in enumerate(methods)}


def class_colors(classes: Sequence[int]) -> Dict[int, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def tsne_svg(points: List[dict], methods: Sequence[str], classes: Sequence[int], class_label: Callable[[int], str],
             method_title: Callable[[str], str], link: Callable[[dict], Optional[Tuple[str, str]]],
             size: int = 600, title: str = "t-SNE") -> str:
    """The chart: ``link(point) -> (page url, thumbnail url)`` for FV points (relative to the page), or None.

    Coordinates are in [-1, 1] (see :func:`atlas.embedding.tsne_2d`); FVs are drawn on top of real images.
    """
    pad, r = 18, 6.5
    shapes, colors = method_shapes(methods), class_colors(classes)
    scale = (size - 2 * pad) / 2.0

    def xy(p):
        return pad + (p["x"] + 1) * scale, pad + (1 - p["y"]) * scale

    out = [f'<svg class="tsne" viewBox="0 0 {size} {size}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">',
           f'<rect x="0.5" y="0.5" width="{size - 1}" height="{size - 1}" class="frame"/>']
    for p in points:
        if p["method"] != "real":
            continue
        x, y = xy(p)
        out.append(f'<path d="{symbol_path("circle", x, y, r - 1)}" fill="{colors.get(p["class_id"], "#888")}" '
                   f'fill-opacity="0.3" stroke="none"><title>real image · {escape(class_label(p["class_id"]))}'
                   f'</title></path>')
    for p in points:
        if p["method"] == "real":
            continue
        x, y = xy(p)
        label = f'{method_title(p["method"])} · {class_label(p["class_id"])} · seed {p.get("seed", 0)}'
        shape = shapes.get(p["method"], "square")
        color = colors.get(p["class_id"], "#888")
        target = link(p)
        mark = (f'<path class="pt" d="{symbol_path(shape, x, y, r)}" fill="{color}" stroke="currentColor" '
                f'stroke-width="1"')
        if target:
            page, thumb = target
            out.append(f'<a href="{escape(page)}" data-src="{escape(thumb)}" data-label="{escape(label)}" '
                       f'class="tsne-pt">{mark}><title>{escape(label)}</title></path></a>')
        else:
            out.append(f'{mark}><title>{escape(label)}</title></path>')
    out.append("</svg>")
    return "\n".join(out)
