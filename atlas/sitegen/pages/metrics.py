"""Metrics in the site: a metrics page per model, a metrics section on every class page and the t-SNE
page. Reads only the stored results (:mod:`atlas.metrics.results`); never loads a model."""
from __future__ import annotations

import json
from typing import Dict, List, Optional

from markupsafe import Markup

from ...metrics.results import load_model_results
from .. import paths
from ..context import ModelEntry, Page, Section, SiteBuild
from ..metrics_tables import KIND_TABLES, build_table, neuron_details
from ..tsne_svg import class_colors, legend_symbol, method_shapes, tsne_svg

METRICS_INDEX = "metrics.html"
TSNE_PAGE = "tsne.html"


def metrics_page(model: str) -> str:
    return f"{paths.model_slug(model)}/metrics.html"


def metrics_json(model: str) -> str:
    return f"{paths.model_slug(model)}/metrics.json"


def results_for(b: SiteBuild, model: str) -> Optional[dict]:
    """The stored results of ``model`` for this build's configuration (read once per build)."""
    cache = vars(b).setdefault("_metrics_results", {})
    if model not in cache:
        cache[model] = load_model_results(b.store, b.config, model, b.plan.classes.get(model, []))
    return cache[model]


def _current_jobs(b: SiteBuild, model: str, method: str, kind: str) -> Dict[str, str]:
    return {f.key: f.meta.get("files", {}).get("image.png", "") for (mo, me, t, _), f in b.figures.items()
            if mo == model and me == method and t.kind == kind and f.status == "done"}


def _stale(b: SiteBuild, unit: dict) -> str:
    now = _current_jobs(b, unit["model"], unit["method"], unit["kind"])
    if now == unit.get("jobs"):
        return ""
    old = unit.get("jobs", {})
    changed = sum(1 for k in set(now) | set(old) if now.get(k) != old.get(k))
    return f"stale: {changed} image(s) changed since the metrics ran (run atlas metrics)"


def model_tables(b: SiteBuild, model: str, res: dict) -> List[dict]:
    """One table per target kind present in the results; the class table starts with the real images."""
    tables = []
    kinds = [k for k in KIND_TABLES if any(u["kind"] == k and u["cells"] for u in res["units"].values())]
    for kind in kinds:
        rows = []
        base = res.get("baseline")
        if kind == "class" and base and base.get("cells"):
            n = base["cells"].get("acc", {}).get("n")
            rows.append((f"Real images (n = {n})", None, base["cells"], True, ""))
        for m in b.config.methods:
            u = res["units"].get(f"{m}/{kind}")
            if u is not None:
                rows.append((b.title(m), next((x["page"] for x in b.methods if x["name"] == m), None),
                             u["cells"], False, _stale(b, u)))
        table = build_table(kind, rows)
        if kind == "neuron":
            table["details"] = neuron_details([(b.title(m), res["units"][f"{m}/neuron"])
                                               for m in b.config.methods if f"{m}/neuron" in res["units"]])
        tables.append(table)
    return tables


def coverage(b: SiteBuild, model: str, res: Optional[dict]) -> List[dict]:
    """Every configured method with the tables it appears in, or why it appears in none."""
    out = []
    for m in b.config.methods:
        units = {k: res["units"][f"{m}/{k}"] for k in KIND_TABLES if res and f"{m}/{k}" in res["units"]}
        kinds = [k for k, u in units.items() if u["cells"]]
        done = any(f.status == "done" for (mo, me, _, _), f in b.figures.items() if mo == model and me == m)
        if kinds:
            reason = ""
        elif units:
            reason = f"no metric applies to its targets ({', '.join(units)}) and the method reports none"
        else:
            reason = "metrics not computed for its images yet: run atlas metrics" if done else "no finished images yet"
        out.append({"title": b.title(m), "tables": [KIND_TABLES[k][0] for k in kinds], "reason": reason})
    return out


def _json_bytes(res: dict) -> bytes:
    """The model's results as published JSON (without the site's private indexes)."""
    units = {n: {k: v for k, v in u.items() if not k.startswith("_")} for n, u in res["units"].items()}
    return json.dumps(dict(res, units=units), indent=1, sort_keys=True).encode()


def metrics_pages(b: SiteBuild) -> None:
    models = []
    for me in b.models:
        res = results_for(b, me.name)
        page = metrics_page(me.name)
        ctx = {"model": me, "results": res, "tables": model_tables(b, me.name, res) if res else [],
               "coverage": coverage(b, me.name, res), "json": metrics_json(me.name),
               "tsne_page": TSNE_PAGE, "created": (res or {}).get("created")}
        if res:
            b.add_asset(metrics_json(me.name), lambda r=res: _json_bytes(r))
        b.pages.append(Page(page, "metrics.html", ctx))
        models.append({"name": me.name, "page": page, "computed": res is not None})
    b.pages.append(Page(METRICS_INDEX, "metrics_index.html", {"metric_models": models, "tsne_page": TSNE_PAGE},
                        nav_title="Metrics"))


def tsne_page(b: SiteBuild) -> None:
    by_key = {f.key: f for f in b.figures.values() if f.status == "done"}
    charts = []
    for me in b.models:
        res = results_for(b, me.name) or {}
        t = res.get("tsne")
        charts.append(_chart(b, me, t, by_key) if t else {"model": me.name, "svg": None,
                                                          "reason": "metrics not computed yet: run atlas metrics"})
    b.pages.append(Page(TSNE_PAGE, "tsne.html", {"charts": charts}, nav_title="t-SNE"))


def _chart(b: SiteBuild, me: ModelEntry, t: dict, by_key) -> dict:
    if not t.get("points"):
        return {"model": me.name, "svg": None, "reason": t.get("unavailable", "no points")}
    methods = [m for m in b.config.methods if any(p["method"] == m for p in t["points"])]
    classes = list(t.get("classes") or sorted({p["class_id"] for p in t["points"]}))

    def link(p):
        f = by_key.get(p.get("key"))
        if f is None:
            return None
        return b.href(TSNE_PAGE, f.page), b.href(TSNE_PAGE, f.thumb)

    names = b.class_names(me.name)
    svg = tsne_svg(t["points"], methods, classes, lambda c: f"{names[c]} ({c})", b.title,
                   link, title=f"t-SNE of {me.name} penultimate features")
    shapes, colors = method_shapes(methods), class_colors(classes)
    legend_methods = [(Markup(legend_symbol("circle", "#888", 0.3)), "real images")]
    legend_methods += [(Markup(legend_symbol(shapes[m])), b.title(m)) for m in methods]
    legend_classes = [(colors[c], f"{names[c]} ({c})") for c in classes]
    dist = [(b.title(m), t.get("centroid_distance", {}).get(m)) for m in methods]
    return {"model": me.name, "svg": Markup(svg), "legend_methods": legend_methods, "legend_classes": legend_classes,
            "info": t, "distances": dist, "reason": None}


def class_metrics(b: SiteBuild, me: ModelEntry, e) -> Optional[Section]:
    res = results_for(b, me.name)
    data = {"computed": res is not None, "page": metrics_page(me.name), "rows": [], "real": None, "judges": []}
    if res is None:
        return Section("Metrics", "_metrics_section.html", data, order=70)
    names = b.class_names(me.name)
    base = res.get("baseline") or {}
    real = (base.get("classes") or {}).get(str(e.id))
    if real:
        data["real"] = dict(real, top1_name=names[real["top1"]])
    prefix = f"image-{e.id:04d}-"
    for m in b.config.methods:
        for kind in ("class", "image"):
            u = res["units"].get(f"{m}/{kind}")
            if u is None:
                continue
            for slug, seeds in _class_targets(u, e.id):
                for seed, d in sorted(seeds.items()):
                    if not isinstance(d, dict) or "top2" not in d:
                        continue
                    judges = sorted((d.get("judges") or {}).items())
                    data["judges"] = data["judges"] or [j for j, _ in judges]
                    label = b.title(m) + ("" if kind == "class" else f" · {slug[len(prefix):]}")
                    data["rows"].append({
                        "label": label, "seed": seed, "correct": d["correct"],
                        "top2": [(names[i], p, i == e.id) for i, p in d["top2"]],
                        "judges": [(j, v == e.id, names[v]) for j, v in judges],
                        "clip": names[d["clip_top5"][0]] if d.get("clip_top5") else None,
                        "clip_ok": bool(d.get("clip_top5")) and d["clip_top5"][0] == e.id,
                        "plausibility": d.get("plausibility"),
                        "reported": {k: v for k, v in d.items() if k not in (
                            "top2", "correct", "judges", "clip_top5", "plausibility", "label", "seed")
                            and isinstance(v, (int, float))},
                    })
    return Section("Metrics", "_metrics_section.html", data, order=70)


def _class_targets(unit: dict, class_id: int) -> List[tuple]:
    """(slug, per-seed details) of a unit's targets that belong to ``class_id`` (indexed once per unit)."""
    if "_by_class" not in unit:
        index: Dict[str, List[tuple]] = {}
        for slug, seeds in sorted(unit.get("targets", {}).items()):
            if slug.startswith(("class-", "image-")):
                index.setdefault(slug.split("-")[1], []).append((slug, seeds))
        unit["_by_class"] = index
    return unit["_by_class"].get(f"{class_id:04d}", [])
