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

from ...concepts.bank import ConceptBank, find_banks, fit_hash, model_craft_config
from ...concepts.clip_labels import find_clip_labels
from ...concepts.clusters import cluster_fit
from ...concepts.concept_examples import find_concept_examples, unit_key
from ...concepts.examples import find_clusters, find_examples
from ...concepts.labels import DataLabel, data_label
from ...concepts.sweep import diversity_fit
from ...concepts.neurons import Selection, select_neurons
from ...concepts.layers import concept_layer, has_concept_layer
from ...config import layer_config, neuron_config
from ...targets import Target, safe_slug
from .. import assets, paths
from .skipped import skipped_index
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
    label: DataLabel = field(default_factory=DataLabel)
    clip: Optional[dict] = None  # {"word", "cos"} or {"unavailable": reason}
    pool_mosaic: str = ""  # its top patches in the whole pool

    @property
    def title(self) -> str:
        return f"{self.class_name} · concept {self.index + 1}"


def alignment(banks: Dict[int, np.ndarray], top: int = 5) -> Dict[tuple, List[tuple]]:
    """For every concept (class, k): the ``top`` most similar concepts of *other* classes by the cosine of
    their vectors, as ``[(class, k, cos), ...]`` best first (ties in the order of the concepts).

    A block of rows at a time: a partial sort finds each row's ``top``-th best cosine, and only the
    concepts at or above it are sorted (a full sort of every row took ~12 s of lens's render for its 10 000
    concepts; now ~3 s, most of it the product of the vectors)."""
    rows = [(c, k) for c, W in banks.items() for k in range(W.shape[0])]
    if not rows:
        return {}
    V = np.concatenate([banks[c] for c in banks]).astype(np.float64)
    V /= np.linalg.norm(V, axis=1, keepdims=True) + 1e-12
    V = V.astype(np.float32)  # the cosines in single precision: half the time of the product (~2 s for lens)
    owner = np.array([c for c, _ in rows])
    n = len(rows)
    keep = min(top, n)
    out = {}
    for start in range(0, n, 512):
        sims = V[start:start + 512] @ V.T
        sims[owner[start:start + 512, None] == owner[None, :]] = -np.inf
        neg = -sims
        if keep < n:
            bound = np.partition(neg, keep - 1, axis=1)[:, keep - 1:keep]
        else:
            bound = neg.max(axis=1, keepdims=True)
        for i, (s, row) in enumerate(zip(sims, neg <= bound)):
            idx = np.flatnonzero(row)
            best = idx[np.argsort(-s[idx], kind="stable")][:top]
            c, k = rows[start + i]
            out[(c, k)] = [(rows[j][0], rows[j][1], float(s[j])) for j in best if np.isfinite(s[j])]
    return out


def clip_label(record: Optional[dict], unit: str) -> Optional[dict]:
    """A unit's CLIP label from the stored labelling: ``{"word", "cos", "backbone", "vocabulary"}``,
    ``{"unavailable": reason}``, or None when the CLIP stage has not run."""
    if record is None:
        return None
    if not record.get("available"):
        return {"unavailable": record.get("reason") or "CLIP is not available"}
    got = record.get("labels", {}).get(unit)
    if not got:
        return {"unavailable": "no dataset examples were labelled for this unit"}
    return {"word": got[0], "cos": got[1], "backbone": record.get("backbone", "CLIP"),
            "vocabulary": record.get("vocabulary", 0)}


def _clip_record(b: SiteBuild, model: str) -> Optional[dict]:
    cache = b.__dict__.setdefault("_clip_labels", {})
    if model not in cache:
        cache[model] = find_clip_labels(b.store, model)
    return cache[model]


def concept_state(b: SiteBuild) -> dict:
    """Per model: ``{"banks", "cards", "layer", ...}`` (computed once per build)."""
    return _state(b)


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
    fit = fit_hash(cfg, layer, model)
    planned = set(b.plan.classes.get(model, []))
    banks = find_banks(b.store, model, fit, planned)
    similar = alignment({c: bk.W for c, bk in banks.items()})
    pool = find_concept_examples(b.store, model, cfg)
    clip = _clip_record(b, model)
    cards: Dict[int, List[ConceptCard]] = {}
    for c, bank in banks.items():
        cards[c] = [_card(b, model, bank, k, layer, fit, similar.get((c, k), [])) for k in range(bank.k)]
        for card in cards[c]:
            _label_concept(b, card, pool, clip)
    return {"banks": banks, "cards": cards, "layer": layer, "settings": model_craft_config(cfg, model)}


def _label_concept(b: SiteBuild, card: ConceptCard, pool: Optional[dict], clip: Optional[dict]) -> None:
    """The concept's label from its top patches in the whole pool, its CLIP label and its search entry."""
    c, k = card.class_id, card.index
    ex = (pool or {}).get("examples", {}).get(unit_key(c, k))
    if ex is not None:
        card.label = data_label(ex["sources"], b.class_names(card.model), pool["census"])
        pic = pool["dir"] / f"pool-{c:04d}-{k:02d}.png"
        if pic.is_file():
            card.pool_mosaic = b.add_asset(concept_stem(card.model, c, k) + "-pool.png",
                                           partial(assets.file_bytes, pic))
    card.clip = clip_label(clip, f"concept:{c}:{k}")
    words = card.label.text + (f" · CLIP: {card.clip['word']}" if card.clip and card.clip.get("word") else "")
    b.search.append({"label": f"{card.title}" + (f" · {words}" if words else ""), "page": card.page,
                     "kind": "concept"})


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
                    "model": me, "entry": entries.get(c), "card": card, "bank": bank.summary, "siblings": cards,
                    "concept_map": paths.concept_map_page(me.name)}),
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
    label: DataLabel = field(default_factory=DataLabel)
    clip: Optional[dict] = None  # {"word", "cos", ...} or {"unavailable": reason}
    negative: List[tuple] = field(default_factory=list)  # (method, title, [Figure]) of the channel minimised
    diverse: List[tuple] = field(default_factory=list)  # (method, title, [Figure of image j, ...]) per method
    layer_page: Optional[str] = None  # the page of its whole layer, when the layer is swept
    prev: Optional[str] = None  # neighbouring channels of a swept layer
    next: Optional[str] = None
    skipped: List[dict] = field(default_factory=list)  # {title, reason, page} of methods the plan skipped for it

    @property
    def title(self) -> str:
        return f"{self.layer} #{self.channel}"


def neuron_reasons(b: SiteBuild, model: str, layer: str, channel: int) -> List[str]:
    """Why a neuron is in the atlas (selection reasons; a whole layer; else listed)."""
    got = _selection(b, model).reasons.get((layer, channel))
    if got:
        return got
    if layer in b.config.targets.layers:
        return [f"every channel of layer {layer}"]
    return ["listed"]


def _facets(b: SiteBuild, model: str, layer: str, ch: int) -> tuple:
    """(negative figures, diverse figures) of a channel: ``[(method, title, [Figure])]`` each."""
    if layer not in b.config.targets.layers:
        return [], []
    lcfg = layer_config(b.config)
    negative = b.figures_for(model, Target("neuron", layer=layer, channel=ch, facet="negative"))
    fit = diversity_fit(lcfg)
    by_method: Dict[str, tuple] = {}
    for j in range(lcfg.diversity):
        for name, title, figs in b.figures_for(model, Target("neuron", layer=layer, channel=ch, facet=f"diverse-{j}",
                                                             fit_hash=fit)):
            by_method.setdefault(name, (name, title, []))[2].extend(figs)
    return negative, list(by_method.values())


def neuron_entries(b: SiteBuild, model: str) -> List[NeuronEntry]:
    """Every neuron of ``model`` the plan visualises, with figures, examples, labels (once per build)."""
    cache = b.__dict__.setdefault("_neuron_entries", {})
    if model not in cache:
        cache[model] = _neuron_entries(b, model)
    return cache[model]


def _planned_neurons(b: SiteBuild, model: str) -> List[Target]:
    """The neuron targets of ``model`` as the plan holds them (its jobs and skipped jobs): the renderer
    reads the plan, it never asks the model for its layers."""
    kinds = [j.target for j in b.plan.jobs if j.model == model] + [s.target for s in b.plan.skipped if s.model == model]
    return list(dict.fromkeys(t for t in kinds if t.kind == "neuron"))


def _neuron_entries(b: SiteBuild, model: str) -> List[NeuronEntry]:
    import json

    targets = _planned_neurons(b, model)
    if not targets:
        return []
    examples = find_examples(b.store, model, b.config)
    clusters = find_clusters(b.store, model, b.config)
    clip = _clip_record(b, model)
    fit = cluster_fit(b.config)
    entries = []
    names = b.class_names(model)
    shown = neuron_config(b.config).mosaic
    skipped = skipped_index(b)  # e.g. the demo's VITAL neurons, left out with the reason
    for layer, ch in dict.fromkeys((t.layer, t.channel) for t in targets):
        stem = neuron_stem(model, layer, ch)
        figs = b.figures_for(model, Target.of_neuron(layer, ch))
        n = NeuronEntry(model, layer, ch, neuron_page(model, layer, ch), neuron_reasons(b, model, layer, ch),
                        figs, next((f.thumb for _, _, fs in figs for f in fs if f.status == "done"), ""),
                        skipped=skipped.get((model, Target.of_neuron(layer, ch)), []))
        n.negative, n.diverse = _facets(b, model, layer, ch)
        d = examples.get((layer, ch))
        if d is not None:
            ex = json.loads((d / "examples.json").read_bytes())
            census = json.loads((d / "pool.json").read_bytes()) if (d / "pool.json").is_file() else None
            mosaic = b.add_asset(f"{stem}-examples.png", partial(assets.file_bytes, d / "mosaic.png"))
            n.examples = {"mosaic": mosaic,
                          "count": len(ex["sources"]), "scores": ex["scores"], "sources": ex["sources"],
                          "shown": min(len(ex["sources"]), shown),
                          "negative_count": len(ex.get("negative_sources", [])),
                          "negative_scores": ex.get("negative_scores", []),
                          "negative_shown": min(len(ex.get("negative_sources", [])), shown)}
            if (d / "negative.png").is_file():
                n.examples["negative_mosaic"] = b.add_asset(f"{stem}-negative-examples.png",
                                                            partial(assets.file_bytes, d / "negative.png"))
            n.label = data_label(ex["sources"], names, census)
        n.clip = clip_label(clip, f"neuron:{layer}:{ch}")
        _neuron_clusters(b, model, n, clusters.get((layer, ch)), fit, stem)
        entries.append(n)
    by_layer: Dict[str, List[NeuronEntry]] = {}
    for n in entries:
        by_layer.setdefault(n.layer, []).append(n)
    for layer, ns in by_layer.items():
        if layer in b.config.targets.layers:
            ns.sort(key=lambda e: e.channel)
            for i, n in enumerate(ns):
                n.prev = ns[i - 1].page if i else None
                n.next = ns[i + 1].page if i + 1 < len(ns) else None
    return entries


def _neuron_clusters(b: SiteBuild, model: str, n: NeuronEntry, d, fit: str, stem: str) -> None:
    """The k-means clusters of a polysemantic neuron (stage folder ``d``; None: not clustered)."""
    import json

    if d is None:
        return
    for j, cl in enumerate(json.loads((d / "clusters.json").read_bytes())):
        t = Target("neuron", layer=n.layer, channel=n.channel, cluster=j, fit_hash=fit)
        n.clusters.append({"index": j, "size": cl["size"], "figures": b.figures_for(model, t),
                           "mosaic": b.add_asset(f"{stem}-k{j}-examples.png",
                                                 partial(assets.file_bytes, d / f"mosaic-k{j}.png"))})


def neuron_search_label(n: NeuronEntry) -> str:
    """What the search box matches for a neuron: its name, its label from the data and its CLIP label."""
    label = f"neuron {n.title}"
    if n.label.parts:
        label += f" · {n.label.text}"
    if n.clip and n.clip.get("word"):
        label += f" · CLIP: {n.clip['word']}"
    return label


def neuron_pages(b: SiteBuild) -> None:
    """A page per neuron; the neuron index lists the neurons that are not part of a whole layer (those are
    on their layer's page) and links the layer pages."""
    from .layers import layer_page

    by_model, layers = [], []
    for me in b.models:
        entries = neuron_entries(b, me.name)
        if not entries:
            continue
        swept = [lay for lay in b.config.targets.layers if any(n.layer == lay for n in entries)]
        for n in entries:
            if n.layer in swept:
                n.layer_page = layer_page(me.name, n.layer)
            made_by = {"selected as": "; ".join(n.reasons), "figures": _figure_versions(n.figures),
                       "examples": n.examples["mosaic"] if n.examples else "",
                       "clusters": {str(cl["index"]): f"{cl['mosaic']} {_figure_versions(cl['figures'])}"
                                    for cl in n.clusters}}
            b.publish_page(Page(n.page, "neuron.html", {"model": me, "neuron": n}), made_by)
            b.search.append({"label": neuron_search_label(n), "page": n.page, "kind": "neuron"})
        listed = [n for n in entries if n.layer not in swept or n.reasons != [f"every channel of layer {n.layer}"]]
        by_model.append((me, listed))
        layers.extend((me, lay, layer_page(me.name, lay), sum(n.layer == lay for n in entries)) for lay in swept)
    if by_model:
        b.pages.append(Page(NEURON_INDEX, "neurons.html", {"by_model": by_model, "layers": layers},
                            nav_title="Neurons"))
