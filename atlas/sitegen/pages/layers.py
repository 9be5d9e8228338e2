"""Site: one page per whole layer (``[targets] layers``) - every channel in one lazy grid, each cell its
visualisation, its label from the data and a link to its neuron page - with Distill-style navigation
between the model's swept layers. The cells come from the neuron entries
(:func:`atlas.sitegen.pages.concepts.neuron_entries`), so a layer page and its neuron pages show the same
figures and labels.

Thousands of channels stay fast: the page is plain HTML (no script needed to show it), each cell a few
hundred bytes with a fixed-size lazy thumbnail, and ``content-visibility: auto`` lets the browser skip
laying out the cells off screen (figures in bench/README.md, ``bench/layer_page.py``).
"""
from __future__ import annotations

from typing import Dict, List

from ...concepts.sweep import in_model_order
from ...config import layer_config
from .. import paths
from ..context import Page, SiteBuild
from .concepts import neuron_entries

layer_page = paths.layer_page


def _cell(n) -> Dict[str, object]:
    return {"channel": n.channel, "page": n.page, "thumb": n.thumb, "label": n.label.short,
            "concentration": n.label.concentration if n.label.parts else None,
            "q": f"{n.channel} {n.label.words} {n.clip.get('word', '') if n.clip else ''}".lower().strip()}


def _settings(b: SiteBuild, entries) -> List[dict]:
    """Per method that drew the layer: its title and the settings of the layer's images (from a figure)."""
    out = {}
    for n in entries:
        for name, title, figs in n.figures:
            if name not in out and figs:
                out[name] = {"name": name, "title": title, "settings": figs[0].settings,
                             "page": paths.method_page(name)}
    return list(out.values())


def layer_pages(b: SiteBuild) -> None:
    """A page per (model, swept layer); search entries for the layers."""
    lcfg = layer_config(b.config)
    for me in b.models:
        entries = neuron_entries(b, me.name)
        swept = [lay for lay in b.config.targets.layers if any(n.layer == lay for n in entries)]
        if not swept:
            continue
        order = in_model_order(me.name, swept)
        nav = [(lay, layer_page(me.name, lay)) for lay in order]
        for i, lay in enumerate(order):
            ns = sorted((n for n in entries if n.layer == lay), key=lambda n: n.channel)
            done = sum(1 for n in ns if n.thumb)
            page = layer_page(me.name, lay)
            b.pages.append(Page(page, "layer.html", {
                "model": me, "layer": lay, "cells": [_cell(n) for n in ns], "done": done, "nav": nav,
                "prev_layer": nav[i - 1] if i else None, "next_layer": nav[i + 1] if i + 1 < len(nav) else None,
                "layer_settings": lcfg, "layer_methods": _settings(b, ns),
                "labelled": sum(1 for n in ns if n.label.parts)}))
            b.search.append({"label": f"layer {lay} · {len(ns)} channels", "page": page, "kind": "layer"})
