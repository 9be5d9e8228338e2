"""The built site in a real browser (Debian's Chromium driven by Playwright): pages load without console
errors, every image decodes, search and the image/transparency/masked toggles work, from file://."""
import os
import shutil

import pytest

from atlas.cli import main
from atlas.config import PRESETS
from atlas.sitegen.check import check_site

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    if os.environ.get("ATLAS_REQUIRE_BROWSER"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    cfg = tmp / "demo.toml"
    cfg.write_text(f'preset = "demo"\nstore = "{tmp}/store"\nsite = "{tmp}/site"\n'
                   '[settings.maco]\nsteps = 2\ncrops = 1\n[settings.fourier]\nsteps = 2\ncrops = 1\n'
                   '[settings.deepinversion]\nsteps = 2\n[settings.deepinversion_ms]\nlow_res_steps = 2\nsteps = 2\n'
                   '[settings.plugin_inversion]\nsteps = 2\nviews = 1\n')
    assert main(["-q", "build", "--config", str(cfg)]) == 0
    return tmp / "site"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def _open(browser, url, width=1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


def test_demo_site_every_class_has_an_image_per_method(site, browser):
    assert check_site(site) == []
    page, errors = _open(browser, (site / "index.html").as_uri())
    cards = page.locator("[data-search]")
    assert cards.count() == 6
    for cid in (285, 967, 665, 872, 985, 657):
        cls, errs = _open(browser, (site / "efficientnet_lite0" / "class" / f"{cid:04d}.html").as_uri())
        imgs = cls.locator('img[data-view="image"]')
        assert imgs.count() == len(PRESETS.get("demo")().methods)  # one image per method
        for i in range(imgs.count()):
            imgs.nth(i).scroll_into_view_if_needed()
        cls.wait_for_function("Array.from(document.images).filter(i => !i.hidden).every(i => i.complete && i.naturalWidth > 0)")
        assert errs == []
        cls.close()
    assert errors == []


def test_search_by_name_and_id(site, browser):
    page, errors = _open(browser, (site / "index.html").as_uri())
    box = page.locator("[data-search-input]")
    box.fill("espresso")
    assert page.locator("[data-search]:visible").count() == 1
    box.fill("872")
    visible = page.locator("[data-search]:visible")
    assert visible.count() == 1 and "tripod" in visible.inner_text()
    box.fill("zzzz")
    assert page.locator("[data-search]:visible").count() == 0 and page.locator("[data-empty]").is_visible()
    assert errors == []


def test_toggles_switch_views(site, browser):
    page, errors = _open(browser, (site / "efficientnet_lite0" / "class" / "0285.html").as_uri())
    fig = page.locator("[data-fig]").first
    assert fig.locator('[data-view="image"]').is_visible()
    fig.locator('[data-show="alpha"]').click()
    assert fig.locator('[data-view="alpha"]').is_visible() and not fig.locator('[data-view="image"]').is_visible()
    fig.locator('[data-show="masked"]').click()
    assert fig.locator('[data-view="masked"]').is_visible()
    assert fig.locator('[data-show="masked"]').get_attribute("aria-pressed") == "true"
    assert errors == []


def test_screenshots_phone_and_desktop(site, browser, tmp_path_factory):
    out = os.environ.get("ATLAS_TEST_OUTPUT", "test-output")
    os.makedirs(out, exist_ok=True)
    for width in (390, 1440):
        page, errors = _open(browser, (site / "efficientnet_lite0" / "class" / "0967.html").as_uri(), width)
        page.screenshot(path=os.path.join(out, f"class-0967-{width}.png"), full_page=True)
        # nothing wider than the viewport at phone width
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        assert errors == []


def test_tsne_hover_shows_the_visualization_and_metrics_page_loads(site, browser):
    page, errors = _open(browser, (site / "tsne.html").as_uri())
    points = page.locator("a.tsne-pt")
    from atlas.config import PRESETS
    from atlas.methods import METHODS

    demo = PRESETS.get("demo")()
    assert points.count() == len(demo.classes) * sum("class" in METHODS.get(m).kinds for m in demo.methods)
    tip = page.locator(".tsne-tip").first
    assert not tip.is_visible()
    points.last.hover()  # the last point is drawn on top (2-step FVs overlap)
    assert tip.is_visible()
    src = tip.locator("img").get_attribute("src")
    assert src.endswith("-thumb.webp")
    page.wait_for_function("document.querySelector('.tsne-tip img').naturalWidth > 0")
    assert "seed 0" in tip.locator("figcaption").inner_text()
    page.mouse.move(0, 0)
    assert not tip.is_visible()
    metrics, errs = _open(browser, (site / "efficientnet_lite0" / "metrics.html").as_uri(), 390)
    assert metrics.locator("table.mtable").count() >= 1 and "MACO" in metrics.inner_text("main")
    assert metrics.evaluate("document.documentElement.scrollWidth") <= 391
    assert errors == [] and errs == []
def test_demo_concept_and_neuron_pages_show_their_images(site, browser):
    """Every demo class has 3 concept pages and concept cards; the demo's neurons have pages; every image on
    them (visualisations, mosaics, concept maps, dataset examples) decodes in the browser."""
    lite = site / "efficientnet_lite0"
    pages = [lite / "concept" / f"{c:04d}-{k:02d}.html" for c in (285, 967, 665, 872, 985, 657) for k in range(3)]
    neurons = sorted((lite / "neuron").glob("*.html"))
    assert len(neurons) == 2 and all(p.is_file() for p in pages)
    for path in [pages[0], pages[2], *neurons, site / "neurons.html", lite / "class" / "0285.html"]:
        page, errors = _open(browser, path.as_uri())
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        page.wait_for_function("Array.from(document.images).filter(i => !i.hidden).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("img").count() >= 2 and errors == []
        page.close()
    cls, _ = _open(browser, (lite / "class" / "0285.html").as_uri())
    assert cls.locator(".concept-card").count() == 3
