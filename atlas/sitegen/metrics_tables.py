"""Metric results -> table data for the templates (methods x metrics, best in bold and second underlined
as in VITAL Table 1 and MACO Tables 1-2; unavailable cells as "n/a" with a numbered reason)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

#: Column order: a prefix and its rank (columns of the same rank keep their first-seen order).
ORDER = ("acc", "transfer:", "clip_top1", "clip_top5", "plausibility", "fid", "kid", "fid_sub", "kid_sub", "fid:",
         "auc", "mad", "reported:")
#: One table per target kind: (title, the papers' tables it reproduces).
KIND_TABLES = {
    "class": ("Class logits", "VITAL supp. Tables 1 and 4; MACO Tables 1 and 2"),
    "image": ("Explanations of real images", "feature accentuation §3; attribution visualization §4.2"),
    "neuron": ("Intermediate neurons", "VITAL supp. Table 2 (CoSy AUC and MAD)"),
    "concept": ("Concepts", "metrics reported by the methods"),
}


def _rank(col: str) -> int:
    for i, p in enumerate(ORDER):
        if col == p or (p.endswith(":") and col.startswith(p)):
            return i
    return len(ORDER)


def format_value(c: dict) -> str:
    v = c["value"]
    if v is None:
        return "n/a"
    if c["title"].endswith("(%)"):
        return f"{v:.1f}"
    return f"{v:.4g}"


class Notes:
    """Numbered footnotes for unavailable reasons (identical reasons share one number)."""

    def __init__(self):
        self.items: List[Tuple[int, str]] = []
        self._index: Dict[str, int] = {}

    def number(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.items) + 1
            self.items.append((self._index[text], text))
        return self._index[text]


def _tip(c: dict) -> str:
    parts = [c.get("backbone") or ""]
    if c.get("n") is not None:
        parts.append(f"n = {c['n']}")
    if c.get("std") is not None:
        parts.append(f"std {c['std']:.3g}")
    if c.get("note"):
        parts.append(c["note"])
    return " · ".join(p for p in parts if p)


def build_table(kind: str, rows: Sequence[Tuple[str, Optional[str], dict, bool, str]]) -> dict:
    """``rows``: (label, link or None, cells {column: cell}, is_baseline, stale note). Returns
    {"title", "source", "columns", "rows", "notes"}; baseline rows are never ranked."""
    cols: List[str] = []
    for _, _, cells, _, _ in rows:
        cols += [c for c in cells if c not in cols]
    seen = {c: i for i, c in enumerate(cols)}
    cols = sorted(cols, key=lambda c: (_rank(c), seen[c]))
    first = {c: next(cells[c] for _, _, cells, _, _ in rows if c in cells) for c in cols}
    columns = [{"id": c, "title": first[c]["title"], "backbone": first[c].get("backbone", ""),
                "arrow": {"higher": "↑", "lower": "↓"}.get(first[c].get("better") or "", "")} for c in cols]
    marks: Dict[Tuple[int, str], str] = {}
    for c in cols:
        better = first[c].get("better")
        if better not in ("higher", "lower"):
            continue
        vals = [(r[2][c]["value"], i) for i, r in enumerate(rows)
                if not r[3] and c in r[2] and r[2][c]["value"] is not None]
        if len(vals) < 2:
            continue
        distinct = sorted({v for v, _ in vals}, reverse=better == "higher")
        for v, i in vals:  # ties share a mark
            if v == distinct[0]:
                marks[(i, c)] = "best"
            elif len(vals) >= 3 and len(distinct) > 1 and v == distinct[1]:
                marks[(i, c)] = "second"
    notes = Notes()
    out_rows = []
    for i, (label, link, cells, baseline, stale) in enumerate(rows):
        row_cells = []
        for c in cols:
            cell = cells.get(c)
            if cell is None:
                row_cells.append({"text": "–", "cls": "none", "tip": "not applicable", "foot": None})
            elif cell["value"] is None:
                row_cells.append({"text": "n/a", "cls": "na", "tip": cell["unavailable"] or "",
                                  "foot": notes.number(f"{cell.get('backbone') or cell['title']}: "
                                                       f"{cell['unavailable']}")})
            else:
                row_cells.append({"text": format_value(cell), "cls": marks.get((i, c), ""), "tip": _tip(cell),
                                  "foot": None})
        out_rows.append({"label": label, "link": link, "cells": row_cells, "baseline": baseline, "stale": stale})
    title, source = KIND_TABLES.get(kind, (kind, ""))
    return {"kind": kind, "title": title, "source": source, "columns": columns, "rows": out_rows,
            "notes": notes.items, "details": None}


def neuron_details(units: Sequence[Tuple[str, dict]]) -> dict:
    """Per neuron x method AUC / MAD: {"methods": [titles], "rows": [{"neuron", "values": [(auc, mad)|None]}]}."""
    slugs: List[str] = []
    for _, u in units:
        slugs += [s for s in u.get("targets", {}) if s not in slugs]
    rows = []
    for s in sorted(slugs):
        vals = []
        for _, u in units:
            d = u.get("targets", {}).get(s) or {}
            vals.append((d["auc"], d["mad"], d.get("n_control"), d.get("n_synthetic")) if "auc" in d else None)
        rows.append({"neuron": s, "cells": vals})
    return {"methods": [t for t, _ in units], "rows": rows}
