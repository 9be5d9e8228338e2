"""Site: the map of every concept of a model (:mod:`atlas.concepts.concept_map`), an SVG drawn at build time
in which every point is a link to its concept page (``#c-<class>-<k>`` marks it, so a concept page can
link to its own point), coloured by class group."""
from __future__ import annotations

from html import escape
from typing import Dict, List

from markupsafe import Markup

from ...concepts.concept_map import class_groups, concept_map
from .. import paths
from ..context import Page, SiteBuild
from ..tsne_svg import PALETTE
from .concepts import concept_page, concept_state


def map_svg(points: List[list], page: str, model: str, labels: Dict[tuple, str], colors: Dict[int, str],
            size: int = 640) -> str:
    """The chart: ``points`` = [[class, k, x, y]] with x, y in [-1, 1]; every point an ``<a>`` to its concept
    page (relative to ``page``) with the concept's name and label as its title."""
    pad, r = 14, 5.5
    scale = (size - 2 * pad) / 2.0
    out = [f'<svg class="concept-map-svg" viewBox="0 0 {size} {size}" role="img" xmlns="http://www.w3.org/2000/svg" '
           f'aria-label="Map of {len(points)} concepts">',
           f'<rect x="0.5" y="0.5" width="{size - 1}" height="{size - 1}" class="frame"/>']
    for c, k, x, y in points:
        cx, cy = pad + (x + 1) * scale, pad + (1 - y) * scale
        href = paths.relative(page, concept_page(model, c, k))
        title = escape(labels.get((c, k), f"class {c} · concept {k + 1}"))
        out.append(f'<a href="{escape(href)}" id="c-{c:04d}-{k:02d}" class="cm-pt"><circle cx="{cx:.1f}" cy="{cy:.1f}" '
                   f'r="{r}" fill="{colors.get(c, "#888")}"/><title>{title}</title></a>')
    out.append("</svg>")
    return "\n".join(out)


def concept_map_pages(b: SiteBuild) -> None:
    """One concept map per model that has concept banks (in the top navigation: the first model's)."""
    first = True
    for me in b.models:
        st = concept_state(b)[me.name]
        banks = st.get("banks") or {}
        if not banks:
            continue
        found = concept_map(b.store, me.name, {c: bank.W for c, bank in banks.items()})
        info = b.plan.models[me.name]
        groups = class_groups(list(banks), b.class_names(me.name), info.wnids)
        order = list(dict.fromkeys(groups[c] for c in sorted(banks)))
        group_color = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(order)}
        colors = {c: group_color[groups[c]] for c in banks}
        labels = {}
        for c, cards in st["cards"].items():
            for card in cards:
                labels[(c, card.index)] = card.title + (f" · {card.label.text}" if card.label.parts else "")
        page = paths.concept_map_page(me.name)
        svg = Markup(map_svg(found["points"], page, me.name, labels, colors))
        b.pages.append(Page(page, "concept_map.html", {
            "model": me, "svg": svg, "count": len(found["points"]), "classes": len(banks), "layer": st["layer"],
            "method": found["method"], "legend": [(g, group_color[g]) for g in order]},
            nav_title="Concept map" if first else None))
        b.search.append({"label": f"concept map · {me.name}", "page": page, "kind": "page"})
        first = False
