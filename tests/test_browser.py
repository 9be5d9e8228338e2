"""The built site in a real browser (Debian's Chromium driven by Playwright): pages load without console
errors, every image decodes, search and the image/transparency/masked toggles work, from file://."""
import os
import shutil

import pytest

from atlas.cli import main
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
                   '[settings.accentuation]\nsteps = 2\ncrops = 1\nlam = 1.0\nmask_images = 2\nnatural_images = 2\n'
                   '[settings.attribution_vis]\nsteps = 2\nattribution_steps = 2\n')
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
        assert imgs.count() == 2  # MACO and Fourier
        every = cls.locator("img")
        for i in range(every.count()):
            every.nth(i).scroll_into_view_if_needed()
        cls.wait_for_function("Array.from(document.images).filter(i => !i.hidden).every(i => i.complete && i.naturalWidth > 0)")
        assert errs == []
        cls.close()
    assert errors == []


def test_demo_site_shows_four_panels_per_real_image(site, browser):
    """Feature accentuation and attribution visualization: seed | result | mask | masked result for every
    real image of every demo class (2 images x (accentuation toward class and rival, attribution
    visualization toward class)), all loaded."""
    for cid in (285, 967, 665, 872, 985, 657):
        cls, errs = _open(browser, (site / "efficientnet_lite0" / "class" / f"{cid:04d}.html").as_uri())
        rows = cls.locator("[data-seeded]")
        assert rows.count() == 6
        for i in range(rows.count()):
            panels = rows.nth(i).locator("[data-panel] img")
            assert panels.count() == 4
            for j in range(4):
                panels.nth(j).scroll_into_view_if_needed()
        cls.wait_for_function("Array.from(document.querySelectorAll('[data-panel] img'))"
                              ".every(i => i.complete && i.naturalWidth > 0)")
        assert cls.locator("svg.pathsim polyline").count() == 3
        assert errs == []
        cls.close()


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
