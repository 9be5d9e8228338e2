"""The layer page of a 1280-channel layer (EfficientNet-Lite0's ``bn2``): HTML size and time to first paint.

    python bench/layer_page.py [--layer bn2] [--workdir /tmp/bench/layerpage]

A synthetic store (no model run): one finished MACO image per channel (64 px) and dataset examples with
labels for every channel (neuron_examples stage entries), rendered by the real site generator. Then
Chromium (Playwright, Debian's /usr/bin/chromium) opens the layer page from file:// three times and reports
the median first contentful paint, DOMContentLoaded and load event, how many images loaded before any
scrolling (the rest are lazy) and the page's bytes (raw and gzip, as a web server would send it). For
scale, the same figures for the site's class index page (one class).
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

import numpy as np  # noqa: E402

from atlas.concepts.examples import STAGE, VERSION  # noqa: E402
from atlas.config import config_from_mapping, neuron_config, stable_hash  # noqa: E402
from atlas.methods.base import Visualization  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402
from atlas.png import png_bytes  # noqa: E402
from atlas.sitegen import render  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
POOL = ["285/chelsea", "967/coffee", "665/motorcycle_left", "872/camera", "985/flower", "657/rocket"]


def build(work: Path, layer: str) -> Path:
    cfg = config_from_mapping({
        "preset": "demo", "classes": [285], "methods": ["maco"], "store": str(work / "store"),
        "site": str(work / "site"), "metrics": {"enabled": False},
        "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "kind_methods": {}, "layers": [layer],
                    "layer_settings": {"diversity": 0, "negative": False}}})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    rng = np.random.default_rng(0)
    for job in plan.jobs:
        if store.meta(job.key) is None:
            store.put(job, Visualization(job.target, rng.random((64, 64, 3), dtype=np.float32),
                                         rng.random((64, 64), dtype=np.float32), [0.0, 1.0], 0.1))
    ncfg = neuron_config(cfg)
    tile = png_bytes(np.ones((48, 480, 3), dtype=np.float32))
    census = json.dumps({p.split("/")[0]: 12 for p in POOL}).encode()
    for job in plan.jobs:
        t = job.target
        if t.kind != "neuron":
            continue
        key = {"model": job.model, "layer": t.layer, "channel": t.channel, "examples": ncfg.examples,
               "max_images": ncfg.max_images, "mosaic": ncfg.mosaic, "pool": "synthetic", "v": VERSION}
        if store.get_stage(STAGE, stable_hash(key, length=20)) is not None:
            continue
        picks = rng.choice(len(POOL), size=10, p=np.roll([0.5, 0.2, 0.1, 0.1, 0.05, 0.05], t.channel % 6))
        ex = {"layer": t.layer, "channel": t.channel, "sources": [f"{POOL[i]}~{j}" for j, i in enumerate(picks)],
              "boxes": [[0, 0]] * 10, "scores": sorted(rng.random(10).tolist(), reverse=True)}
        store.put_stage(STAGE, stable_hash(key, length=20), {"examples.json": json.dumps(ex).encode(),
                        "pool.json": census, "mosaic.png": tile, "negative.png": tile}, {"inputs": key})
    render(plan, store, cfg.site)
    return Path(cfg.site)


def measure(browser, path: Path, runs: int = 3) -> dict:
    fcp, dcl, load, eager = [], [], [], []
    for _ in range(runs):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10000)
        got = page.evaluate("""() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            return {fcp: paint ? paint.startTime : null, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                    loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
                    images: document.images.length};
        }""")
        fcp.append(got["fcp"])
        dcl.append(got["dcl"])
        load.append(got["load"])
        eager.append(got["loaded"])
        images = got["images"]
        page.close()
    data = path.read_bytes()
    return {"page": path.name, "html_bytes": len(data), "html_gzip_bytes": len(gzip.compress(data, 6)),
            "first_contentful_paint_ms": round(statistics.median(fcp), 1),
            "dom_content_loaded_ms": round(statistics.median(dcl), 1), "load_ms": round(statistics.median(load), 1),
            "images": images, "images_loaded_before_scrolling": int(statistics.median(eager))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", default="bn2")
    ap.add_argument("--workdir", default="/tmp/bench/layerpage")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    site = build(work, args.layer)
    from playwright.sync_api import sync_playwright

    layer_page = site / "efficientnet_lite0" / "layer" / f"{args.layer}.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        rows = [measure(browser, layer_page), measure(browser, site / "efficientnet_lite0" / "class" / "0285.html")]
        browser.close()
    cells = layer_page.read_text().count("<li data-q=")
    emit({"benchmark": "layer_page", "layer": args.layer, "channels": cells, "bytes_per_channel":
          round(rows[0]["html_bytes"] / max(cells, 1), 1), "rows": rows})


if __name__ == "__main__":
    main()
