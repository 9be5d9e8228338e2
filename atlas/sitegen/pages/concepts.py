"""Site: concept cards on class pages, one page per concept and per neuron, and a neuron index.

Everything comes from the store (stages ``craft``, ``neuron_examples``, ``neuron_clusters``, the cached
selection) - no model is loaded. URLs are built from ids and safe slugs only (:func:`concept_page`, ...).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Dict, List, Optional

import numpy as np
from markupsafe import Markup

from ...concepts.bank import ConceptBank, find_banks, fit_hash
from ...concepts.clusters import cluster_fit
from ...concepts.examples import find_clusters, find_examples, neuron_targets
from ...concepts.neurons import Selection, select_neurons
from ...concepts.layers import concept_layer, has_concept_layer
from ...config import craft_config, neuron_config
from ...targets import Target, safe_slug
from .. import assets
from ..context import Page, Section, SiteBuild
from ..paths import model_slug
from .cluster_chart import cluster_svg, radviz


# ------------------------------------------------------------------------------------------- paths
def concept_stem(model: str, class_id: int, k: int) -> str:
    return f"{model_slug(model)}/concept/{int(class_id):04d}-{int(k):02d}"


def concept_page(model: str, class_id: int, k: int) -> str:
    return concept_stem(model, class_id, k) + ".html"


def neuron_stem(model: str, layer: str, channel: int) -> str:
    return f"{model_slug(model)}/neuron/{safe_slug(layer)}-{int(channel):04d}"


def neuron_page(model: str, layer: str, channel: int) -> str:
    return neuron_stem(model, layer, channel) + ".html"


NEURON_INDEX = "neurons.html"


# ------------------------------------------------------------------------------------------- data
@dataclass
class ConceptCard:
    model: str
    class_id: int
    class_name: str
    index: int
    page: str
    share: float
    importance: float
    wins: int
    important: bool
    mosaic: str
    map: str
    figures: List[tuple] = field(default_factory=list)
    thumb: str = ""
    similar: List[dict] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.class_name} · concept {self.index + 1}"


def alignment(banks: Dict[int, np.ndarray], top: int = 5) -> Dict[tuple, List[tuple]]:
    """For every concept (class, k): the ``top`` most similar concepts of *other* classes by the cosine of
    their vectors, as ``[(class, k, cos), ...]`` best first."""
    rows = [(c, k) for c, W in banks.items() for k in range(W.shape[0])]
    if not rows:
        return {}
    V = np.concatenate([banks[c] for c in banks]).astype(np.float64)
    V /= np.linalg.norm(V, axis=1, keepdims=True) + 1e-12
    owner = np.array([c for c, _ in rows])
    out = {}
    for start in range(0, len(rows), 512):
        sims = V[start:start + 512] @ V.T
        for i, s in enumerate(sims):
            c, k = rows[start + i]
            s = np.where(owner == c, -np.inf, s)
            best = np.argsort(-s, kind="stable")[:top]
            out[(c, k)] = [(rows[j][0], rows[j][1], float(s[j])) for j in best if np.isfinite(s[j])]
    return out


def _state(b: SiteBuild) -> dict:
    """Per model: banks, cards by class, alignment (computed once per build, cached on the build)."""
    if not hasattr(b, "_concepts"):
        b._concepts = {m.name: _model_concepts(b, m.name) for m in b.models}
    return b._concepts


def _model_concepts(b: SiteBuild, model: str) -> dict:
    cfg = b.config
    if cfg.targets.concepts < 1 or not has_concept_layer(cfg, model):
        return {"banks": {}, "cards": {}}
    layer = concept_layer(cfg, model)
    fit = fit_hash(cfg, layer)
    planned = set(b.plan.classes.get(model, []))
    banks = {c: bank for c, bank in find_banks(b.store, model, fit).items() if c in planned}
    similar = alignment({c: bk.W for c, bk in banks.items()})
    cards: Dict[int, List[ConceptCard]] = {}
    for c, bank in banks.items():
        cards[c] = [_card(b, model, bank, k, layer, fit, similar.get((c, k), [])) for k in range(bank.k)]
    return {"banks": banks, "cards": cards, "layer": layer, "settings": craft_config(cfg)}


def _card(b: SiteBuild, model: str, bank: ConceptBank, k: int, layer: str, fit: str, similar) -> ConceptCard:
    s, c = bank.summary, bank.class_id
    stem = concept_stem(model, c, k)
    mosaic = b.add_asset(f"{stem}-mosaic.png", partial(assets.file_bytes, bank.path / f"mosaic-{k:02d}.png"))
    cmap = b.add_asset(f"{stem}-map.png", partial(assets.file_bytes, bank.path / f"map-{k:02d}.png"))
    figs = b.figures_for(model, Target("concept", class_id=c, concept=k, layer=layer, fit_hash=fit))
    thumb = next((f.thumb for _, _, fs in figs for f in fs if f.status == "done"), "")
    sim = [{"class_id": oc, "class_name": b.class_names(model)[oc], "index": ok, "cos": cos, "page": concept_page(model, oc, ok)}
           for oc, ok, cos in similar]
    return ConceptCard(model=model, class_id=c, class_name=b.class_names(model)[c], index=k, page=concept_page(model, c, k),
                       share=float(s["share"][k]), importance=float(s["importance"][k]), wins=int(s["wins"][k]),
                       important=bool(s["important"][k]), mosaic=mosaic, map=cmap, figures=figs, thumb=thumb,
                       similar=sim)


# ------------------------------------------------------------------------------------------- concepts
def concept_section(b: SiteBuild, model, entry) -> Optional[Section]:
    st = _state(b)[model.name]
    cards = st["cards"].get(entry.id)
    relevant = _relevant_neurons(b, model.name, entry.id)
    if not cards and not relevant:
        return None
    bank = st["banks"][entry.id].summary if cards else None
    chart = _cluster_chart(st["banks"][entry.id], entry.name) if cards else None
    return Section("Concepts (CRAFT)" if cards else "Relevant neurons", "_concepts.html",
                   {"cards": cards or [], "bank": bank, "neurons": relevant, "chart": chart}, order=20)


def _cluster_chart(bank: ConceptBank, class_name: str):
    """The class's cluster chart (:mod:`atlas.concepts.cluster_chart`) as markup, or None without patches."""
    try:
        U = np.load(io.BytesIO(bank.file("bank.npz")))["U"]
    except (OSError, KeyError, ValueError):
        return None
    points = radviz(U)
    if not len(points):
        return None
    labels = [str(i + 1) for i in range(bank.k)]
    title = f"{len(points)} patches of {class_name} placed by their concept coefficients"
    return {"svg": Markup(cluster_svg(points, bank.k, labels, title)), "shown": len(points), "patches": int(U.shape[0])}


def _figure_versions(figs) -> Dict[str, str]:
    """What the figures on a page are: ``{"<method> seed <s>": job key or status}`` (a page's version
    changes when one of its images does)."""
    return {f"{name} seed {f.seed}": f.version or f.status for name, _, fs in figs for f in fs}


def concept_pages(b: SiteBuild) -> None:
    for me in b.models:
        st = _state(b)[me.name]
        entries = {e.id: e for e in me.classes}
        for c, cards in st["cards"].items():
            bank = st["banks"][c]
            for card in cards:
                made_by = {"concept bank": bank.path.name if bank.path else "", "layer": st["layer"],
                           "craft": bank.summary.get("settings", {}), "figures": _figure_versions(card.figures),
                           "similar concepts": ", ".join(f"{s['class_id']}-{s['index']}" for s in card.similar),
                           "siblings": ", ".join(f"{s.index}:{s.share:.3g}" for s in cards)}
                b.publish_page(Page(card.page, "concept.html", {
                    "model": me, "entry": entries.get(c), "card": card, "bank": bank.summary, "siblings": cards}),
                    made_by)


# ------------------------------------------------------------------------------------------- neurons
def _selection(b: SiteBuild, model: str):
    cache = b.__dict__.setdefault("_selection", {})
    if model not in cache:
        skipped = any(m == model and src == "neuron_selection" for m, src, _ in b.plan.source_skips)
        cache[model] = Selection() if skipped else select_neurons(b.config, model, b.plan.classes.get(model, []))
    return cache[model]


def _relevant_neurons(b: SiteBuild, model: str, class_id: int) -> List[dict]:
    sel = _selection(b, model)
    out = []
    for (layer, ch), by_class in sel.relevance.items():
        if class_id in by_class:
            out.append({"layer": layer, "channel": ch, "relevance": by_class[class_id],
                        "page": neuron_page(model, layer, ch)})
    return sorted(out, key=lambda d: -d["relevance"])


@dataclass
class NeuronEntry:
    model: str
    layer: str
    channel: int
    page: str
    reasons: List[str]
    figures: List[tuple]
    thumb: str = ""
    examples: Optional[Dict[str, Any]] = None
    clusters: List[dict] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.layer} #{self.channel}"


def neuron_pages(b: SiteBuild) -> None:
    import json

    by_model = []
    for me in b.models:
        model = me.name
        targets = neuron_targets(b.config, model)
        if not targets:
            continue
        sel = _selection(b, model)
        examples = find_examples(b.store, model, b.config)
        clusters = find_clusters(b.store, model, b.config)
        fit = cluster_fit(b.config)
        entries = []
        for layer, ch in dict.fromkeys((t.layer, t.channel) for t in targets):
            stem = neuron_stem(model, layer, ch)
            figs = b.figures_for(model, Target.of_neuron(layer, ch))
            n = NeuronEntry(model, layer, ch, neuron_page(model, layer, ch), sel.reasons.get((layer, ch), ["listed"]),
                            figs, next((f.thumb for _, _, fs in figs for f in fs if f.status == "done"), ""))
            d = examples.get((layer, ch))
            if d is not None:
                ex = json.loads((d / "examples.json").read_bytes())
                mosaic = b.add_asset(f"{stem}-examples.png", partial(assets.file_bytes, d / "mosaic.png"))
                n.examples = {"mosaic": mosaic,
                              "count": len(ex["sources"]), "scores": ex["scores"], "sources": ex["sources"],
                              "shown": min(len(ex["sources"]), neuron_config(b.config).mosaic)}
            d = clusters.get((layer, ch))
            if d is not None:
                for j, cl in enumerate(json.loads((d / "clusters.json").read_bytes())):
                    t = Target("neuron", layer=layer, channel=ch, cluster=j, fit_hash=fit)
                    n.clusters.append({"index": j, "size": cl["size"], "figures": b.figures_for(model, t),
                                       "mosaic": b.add_asset(f"{stem}-k{j}-examples.png",
                                                             partial(assets.file_bytes, d / f"mosaic-k{j}.png"))})
            entries.append(n)
        by_model.append((me, entries))
        for n in entries:
            made_by = {"selected as": "; ".join(n.reasons), "figures": _figure_versions(n.figures),
                       "examples": n.examples["mosaic"] if n.examples else "",
                       "clusters": {str(cl["index"]): f"{cl['mosaic']} {_figure_versions(cl['figures'])}"
                                    for cl in n.clusters}}
            b.publish_page(Page(n.page, "neuron.html", {"model": me, "neuron": n}), made_by)
    if by_model:
        b.pages.append(Page(NEURON_INDEX, "neurons.html", {"by_model": by_model}, nav_title="Neurons"))
