"""Whole layers, labels, search and the concept map on a built site (the shared concept build of
conftest.py, EfficientNet-Lite0 with every channel of ``blocks.0``), a planted unit that must be labelled
with its class, and the pages in Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from atlas.cli import main
from atlas.models.handle import Block, ModelHandle

LITE = "efficientnet_lite0"


def _links(html: str, tag: str = "a", attr: str = "href"):
    return re.findall(rf'<{tag}\b[^>]*\b{attr}="([^"#]+)[^"]*"', html)


def test_layer_page_lists_every_channel_with_an_image_and_links_every_neuron_page(concept_build):
    site = concept_build / "site"
    page = site / LITE / "layer" / "blocks.0.html"
    html = page.read_text()
    grid = re.search(r'<ul class="unit-grid" id="units">(.*?)</ul>', html, re.S).group(1)
    cells = re.findall(r"<li\b.*?</li>", grid, re.S)
    assert len(cells) == 16  # blocks.0 of Lite0 has 16 channels
    for ch, cell in enumerate(cells):
        href = _links(cell)[0]
        assert href.endswith(f"neuron/blocks.0-{ch:04d}.html") and (page.parent / href).resolve().is_file()
        src = _links(cell, "img", "src")[0]
        assert (page.parent / src).resolve().is_file()
    neuron = (site / LITE / "neuron" / "blocks.0-0005.html").read_text()
    assert "Diversity" in neuron and "Negative" in neuron and "Bottom examples" in neuron
    assert neuron.count("neuron-blocks.0-0005-diverse-") >= 2 and "neuron-blocks.0-0005-negative-s0" in neuron
    assert 'href="../../efficientnet_lite0/layer/blocks.0.html"' in neuron  # back to the layer
    index = (site / "neurons.html").read_text()
    assert "layer/blocks.0.html" in index and "blocks.0 #5" not in index  # the index links the layer instead


def test_neurons_and_concepts_carry_labels_from_their_data(concept_build):
    site = concept_build / "site"
    bundled = {"Egyptian cat", "espresso", "moped", "tripod", "daisy", "missile"}
    for path in [site / LITE / "neuron" / "blocks.0-0003.html", site / LITE / "neuron" / "blocks.6-0011.html",
                 site / LITE / "concept" / "0285-00.html"]:
        text = re.sub(r"<[^>]+>", "", path.read_text())
        got = re.search(r"Label from the data: (.+?)\s+concentration ([\d.]+)", text)
        assert got, path
        names = [re.sub(r" \d+%$", "", part.strip()) for part in got.group(1).split(",")]
        assert names and set(names) <= bundled and 0.0 <= float(got.group(2)) <= 1.0
        assert "CLIP label" in text and "unavailable" in text  # no CLIP weights here: said so, as in the metrics


def test_search_index_holds_neurons_and_concepts_with_their_labels(concept_build):
    index = json.loads((concept_build / "site" / "search.json").read_text())
    pages = index["pages"]
    neurons = [p for p in pages if p["kind"] == "neuron"]
    concepts = [p for p in pages if p["kind"] == "concept"]
    assert len(neurons) == 16 + 2 and len(concepts) == 6
    assert any(p["kind"] == "layer" and p["page"].endswith("layer/blocks.0.html") for p in pages)
    assert all("%" in p["label"] for p in neurons + concepts)  # every one labelled
    for p in neurons + concepts:
        assert (concept_build / "site" / p["page"]).is_file()


def test_concept_map_has_one_working_link_per_concept(concept_build):
    site = concept_build / "site"
    page = site / LITE / "concept-map.html"
    html = page.read_text()
    svg = re.search(r"<svg class=\"concept-map-svg\".*?</svg>", html, re.S).group(0)
    links = re.findall(r'<a href="([^"]+)" id="c-(\d{4})-(\d{2})"', svg)
    assert sorted((int(c), int(k)) for _, c, k in links) == [(c, k) for c in (285, 967) for k in range(3)]
    for href, c, k in links:
        assert href == f"concept/{c}-{k}.html" and (page.parent / href).is_file()
        concept = (page.parent / href).read_text()
        assert f"concept-map.html#c-{c}-{k}" in concept  # and the concept page points back at its dot
    assert "Concept map" in (site / "index.html").read_text()


# ------------------------------------------------------------------------------------------- a planted unit
class Units(nn.Module):
    """Three channels per pixel: 0 = minus the colour saturation (|r-g| + |g-b| + |b-r|; highest on grey
    images - among the bundled photos only the camera, class 872 'tripod', is grey), 1 = red minus blue,
    2 = brightness."""

    def forward(self, x):
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        sat = (r - g).abs() + (g - b).abs() + (b - r).abs()
        return torch.stack([-sat, r - b, (r + g + b) / 3], 1)


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.units = Units()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 1000)

    def forward(self, x):
        return self.fc(self.pool(self.units(x)).flatten(1))


def planted_handle(download: bool = False) -> ModelHandle:
    from atlas.models.classes import imagenet_classes

    names, wnids = imagenet_classes()
    module = Planted().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return ModelHandle(name="planted", family="test", module=module, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                       input_size=64, class_names=names, wnids=wnids, blocks=(Block("units"),),
                       penultimate="fc:in", concept_layer="units")


PLANTED = """preset = "demo"
models = ["planted"]
classes = [872]
methods = ["maco"]
store = "{tmp}/store"
site = "{tmp}/site"
[data]
spectrum_images = 4
[settings.maco]
steps = 2
crops = 1
image_size = 64
[targets]
classes = false
concepts = 0
random_neurons = 0
images = 0
layers = ["units"]
[targets.layer_settings]
diversity = 0
negative = false
[targets.neuron_settings]
max_images = 0
examples = 10
[metrics]
enabled = false
"""


def test_a_planted_unit_is_labelled_with_its_class_and_a_high_concentration(tmp_path, monkeypatch):
    """A channel that responds to one class's images (grey ones: the camera photo, 'tripod') gets that class
    as its label, at concentration 1; the channel for red (which the grey photo lacks) is labelled otherwise."""
    from atlas.models.zoo import MODELS

    monkeypatch.setitem(MODELS._items, "planted", planted_handle)
    (tmp_path / "p.toml").write_text(PLANTED.format(tmp=tmp_path))
    assert main(["-q", "build", "--config", str(tmp_path / "p.toml")]) == 0

    def label(ch):
        text = re.sub(r"<[^>]+>", "", (tmp_path / "site" / "planted" / "neuron" / f"units-{ch:04d}.html").read_text())
        got = re.search(r"Label from the data: (.+?)\s+concentration ([\d.]+)", text)
        return got.group(1).strip(), float(got.group(2))

    text, conc = label(0)
    assert text == "tripod 100%" and conc == 1.0
    assert "tripod" not in label(1)[0]
    layer = (tmp_path / "site" / "planted" / "layer" / "units.html").read_text()
    assert "tripod 100%" in layer
    index = json.loads((tmp_path / "site" / "search.json").read_text())
    assert any(p["kind"] == "neuron" and "tripod" in p["label"] and p["page"].endswith("units-0000.html")
               for p in index["pages"])


# ------------------------------------------------------------------------------------------- in Chromium
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else errors.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


@pytest.mark.browser
def test_layer_neuron_concept_and_map_pages_load_without_console_errors(concept_build, browser):
    site = concept_build / "site"
    for path in [site / LITE / "layer" / "blocks.0.html", site / LITE / "neuron" / "blocks.0-0000.html",
                 site / LITE / "concept" / "0285-00.html", site / LITE / "concept-map.html", site / "neurons.html"]:
        page, errors = _open(browser, path)
        page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert errors == [], (path, errors)
        page.close()


@pytest.mark.browser
def test_layer_filter_and_header_search_find_a_neuron_by_its_label(concept_build, browser):
    site = concept_build / "site"
    page, errors = _open(browser, site / LITE / "layer" / "blocks.0.html")
    word = page.locator("#units li").first.get_attribute("data-q").split()[1]  # a word of channel 0's label
    page.fill("[data-unit-filter]", word)
    shown = page.locator("#units li:not([hidden])").count()
    assert 1 <= shown <= 16 and page.locator("#units li:not([hidden])").first.get_attribute("data-q").find(word) >= 0
    page.fill("#quick-q", word)
    page.wait_for_selector("#quick-list li a")
    hits = [a.get_attribute("href") for a in page.locator("#quick-list li a").all()]
    assert any("/neuron/blocks." in h for h in hits), hits
    page.locator("#quick-list li a", has_text="neuron blocks.").first.click()
    page.wait_for_load_state("load")
    assert "/neuron/blocks." in page.url and errors == []
    page.close()
    page, errors = _open(browser, site / LITE / "concept-map.html")
    page.locator("a.cm-pt").first.click()
    page.wait_for_load_state("load")
    assert "/concept/" in page.url and "Label from the data" in page.inner_text("main") and errors == []
    page.close()
