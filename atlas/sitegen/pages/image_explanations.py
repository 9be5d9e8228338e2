"""Class-page sections of the image-seeded methods.

* "Real images explained": for every image of the class and every image-seeded method and goal, the four
  panels seed | result | mask | masked result (``templates/seeded_section.html``).
* "Path similarity": per layer, the correlation of the class's accentuations with natural images of the
  class, of the natural images among themselves and of the accentuations with their seeds (feature-
  accentuation paper Fig. 8 A/C), drawn as SVG at build time (``templates/path_similarity.html``); the
  numbers are also written to ``<model>/path-similarity.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ...path_similarity import summarize_path_similarity
from ..context import ClassEntry, Figure, ModelEntry, Section, SiteBuild
from ..paths import model_slug

PANELS = (("seed", "seed image"), ("result", "result"), ("mask", "mask"), ("composite", "masked result"))
SCORE_LABELS = (
    ("lambda", "λ"), ("reg_distance_end", "early-layer distance"), ("path_similarity", "path similarity"),
    ("beta", "β (mask area)"), ("mask_mean", "mask mean"), ("visualization_correlation", "visualization correlation"),
    ("classification_consistency", "goal in top-5"),
)


@dataclass
class Row:
    method: str
    method_title: str
    goal: str
    figure: Figure
    panels: List[tuple] = field(default_factory=list)  # (label, site path or "")
    numbers: List[tuple] = field(default_factory=list)  # (label, value)


@dataclass
class SeedImage:
    image: str
    source: str
    rows: List[Row] = field(default_factory=list)


def image_methods(build: SiteBuild) -> List[str]:
    return [m for m in build.config.methods if "image" in build.plan.methods[m].kinds]


def image_figures(build: SiteBuild, model: str, class_id: int) -> List[Figure]:
    """Every figure of an image target of ``class_id`` on ``model``, in plan order.

    The (model, class) index is built once per site build and kept on the build object (1000 classes x
    every figure would otherwise be scanned once per class page).
    """
    index = getattr(build, "_seeded_index", None)
    if index is None:
        methods = set(image_methods(build))
        index = {}
        for (mo, me, t, s), f in build.figures.items():
            if me in methods and t.kind == "image":
                index.setdefault((mo, t.class_id), []).append(f)
        build._seeded_index = index
    return index.get((model, class_id), [])


def panel_paths(fig: Figure) -> List[tuple]:
    if fig.status != "done":
        return [(label, "") for _, label in PANELS]
    stem = fig.png[:-4]
    files = fig.meta.get("files", {})
    out = []
    for name, label in PANELS:
        if name == "result":
            out.append((label, fig.png))
        else:
            out.append((label, f"{stem}-{name}.png" if f"{name}.png" in files else ""))
    return out


def goal_label(fig: Figure, names) -> str:
    t = fig.target
    own = f"{names[t.class_id]} ({t.class_id})"
    if fig.status == "done":
        g = fig.meta.get("info", {}).get("goal", t.class_id)
        goal = f"{names[g]} ({g})"
    else:
        goal = "resolved when it runs"
    if t.toward is None:
        return f"toward its class: {own}"
    if t.toward == "rival":
        info = fig.meta.get("info", {})
        if fig.status == "done" and info.get("seed_top1", t.class_id) != t.class_id:
            return f"toward the predicted class (misclassified): {goal}"
        return f"toward its rival: {goal}"
    return f"toward {goal}"


def seeded_section(build: SiteBuild, model: ModelEntry, entry: ClassEntry) -> Optional[Section]:
    figs = image_figures(build, model.name, entry.id)
    if not figs:
        return None
    images: Dict[str, SeedImage] = {}
    for f in figs:
        info = f.meta.get("info", {})
        img = images.setdefault(f.target.image, SeedImage(f.target.image, info.get("source", "")))
        img.source = img.source or info.get("source", "")
        scores = f.meta.get("scores", {})
        numbers = [(label, scores[key]) for key, label in SCORE_LABELS if scores.get(key) is not None]
        img.rows.append(Row(f.method, f.method_title, goal_label(f, build.class_names(model.name)), f, panel_paths(f), numbers))
    return Section(title="Real images explained", template="seeded_section.html",
                   data={"images": list(images.values())}, order=60)


def path_records(figs: List[Figure]) -> List[dict]:
    return [f.meta["info"]["path_similarity"] for f in figs
            if f.status == "done" and f.method == "accentuation" and f.target.toward is None
            and "path_similarity" in f.meta.get("info", {})]


def chart(summary: dict, width: int = 560, height: int = 220, pad: int = 36) -> dict:
    """SVG coordinates of the path-similarity curves (correlation in [-0.2, 1] against layer index)."""
    layers = summary["layers"]
    n = len(layers)
    lo, hi = -0.2, 1.0
    x = [pad + (width - 2 * pad) * (i / max(n - 1, 1)) for i in range(n)]

    def y(v):
        return height - pad - (height - 2 * pad) * (min(max(v, lo), hi) - lo) / (hi - lo)

    series = []
    for key, label, css in (("to_natural", "accentuations ↔ natural images", "s1"),
                            ("natural", "natural ↔ natural images", "s2"),
                            ("to_seed", "accentuations ↔ their seeds", "s3")):
        pts = [(x[i], y(v)) for i, v in enumerate(summary[key]) if v is not None]
        series.append({"label": label, "css": css, "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in pts),
                       "dots": pts, "vals": summary[key]})
    ticks = [{"v": v, "y": y(v)} for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return {"width": width, "height": height, "pad": pad, "x": x, "layers": layers, "series": series,
            "ticks": ticks, "n": summary.get("n", 0)}


def path_section(build: SiteBuild, model: ModelEntry, entry: ClassEntry) -> Optional[Section]:
    records = path_records(image_figures(build, model.name, entry.id))
    if not records:
        return None
    path = f"{model_slug(model.name)}/path-similarity.json"
    if path not in build.assets:
        build.add_asset(path, lambda b=build, m=model: path_json(b, m))
    return Section(title="Path similarity", template="path_similarity.html",
                   data={"chart": chart(summarize_path_similarity(records)), "json": path}, order=61)


def path_json(build: SiteBuild, model: ModelEntry) -> bytes:
    """Per class: the summary curves and every accentuation's record (for programmatic use)."""
    out = {}
    for e in model.classes:
        figs = [f for f in image_figures(build, model.name, e.id) if f.status == "done" and f.method == "accentuation"]
        recs = path_records(figs)
        if recs:
            out[str(e.id)] = {"summary": summarize_path_similarity(recs), "jobs": {
                f.key: {"image": f.target.image, **f.meta["info"]["path_similarity"]}
                for f in figs if f.target.toward is None and "path_similarity" in f.meta.get("info", {})}}
    return json.dumps({"model": model.name, "metric": "path similarity (Pearson, per layer)", "classes": out},
                      indent=1, sort_keys=True).encode()
