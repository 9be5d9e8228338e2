"""The built site in a real browser (Debian's Chromium driven by Playwright): every page loads without
console errors and its images decode, from file:// and from a sub-path of a web server; search (header
and grid), the method filter, the random-class button, the view toggles, keyboard navigation, the copy
buttons and the compare page work; nothing is wider than a phone. Screenshots at 390 px and 1440 px are
written to ``$ATLAS_TEST_OUTPUT`` (default ``test-output/``)."""
import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from atlas.cli import main
from atlas.config import PRESETS
from atlas.sitegen.check import check_site
from atlas.sitegen.paths import unversioned

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser
DEMO = (285, 967, 665, 872, 985, 657)

if not os.path.exists(CHROMIUM):
    if os.environ.get("ATLAS_REQUIRE_BROWSER"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def out_dir() -> Path:
    out = Path(os.environ.get("ATLAS_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    cfg = tmp / "demo.toml"
    # 2-step images are degenerate by design: shown under their warning ([site] degenerate = "mark")
    cfg.write_text(f'preset = "demo"\nstore = "{tmp}/store"\n[site]\nfolder = "{tmp}/site"\ndegenerate = "mark"\n'
                   '[settings.maco]\nsteps = 2\ncrops = 1\n[settings.fourier]\nsteps = 2\ncrops = 1\n'
                   '[settings.accentuation]\nsteps = 2\ncrops = 1\nlam = 1.0\nmask_images = 2\nnatural_images = 2\n'
                   '[settings.attribution_vis]\nsteps = 2\nattribution_steps = 2\nbaseline = "zero"\n'
                   '[settings.vital]\nsteps = 2\nneuron_steps = 2\nwarmup = 0\n'
                   '[targets.layer_settings]\ndiversity = 0\nnegative = false\n'  # 16 channel jobs, not 64
                   '[targets.layer_settings.settings.maco]\nsteps = 2\ncrops = 1\n'
                   # CRAFT from 3 crops per class with an 8-point design, neurons' examples from 6 pool images
                   # and 2 real images per class in the metrics: every page the demo has, in a third of the
                   # demo's forward passes (CRAFT and the pool sweep were half of this build)
                   '[targets.concept_settings]\nimages = 3\nnb_design = 8\nmin_wins = 1\n'
                   '[targets.neuron_settings]\nmax_images = 6\n[metrics]\nreal_images = 2\n')
    assert main(["-q", "build", "--config", str(cfg)]) == 0
    return tmp / "site"


@pytest.fixture(scope="module")
def sections_site(tmp_path_factory):
    """A synthetic site whose class pages carry extension sections built with the documented CSS hooks
    (panels, importance bars, mosaics, an SVG chart, a wide table), as concept/metrics features will."""
    from atlas.pipeline import Store, make_plan
    from atlas.sitegen import render
    from atlas.sitegen.context import CLASS_SECTIONS, Section
    from atlas.sitegen.writer import templates_dir
    from helpers import fake_visualization, quick_config

    tmp = tmp_path_factory.mktemp("sections")
    tdir = tmp / "templates"
    shutil.copytree(templates_dir(), tdir)
    (tdir / "_probe_cards.html").write_text(
        '<div class="panels">{% for c in section.data %}<div class="panel"><h3>Concept {{ c }}</h3>'
        '<div class="bar" role="img" aria-label="importance {{ c * 10 }}%"><span style="width:{{ c * 10 }}%"></span></div>'
        '<div class="mosaic">{% for r in entry.references %}<img src="{{ url(r.src) }}" alt="{{ r.alt }}" loading="lazy">'
        '{% endfor %}</div></div>{% endfor %}</div>')
    (tdir / "_probe_table.html").write_text(
        '<div class="chart"><svg viewBox="0 0 900 200" role="img" aria-label="a wide chart"><rect width="900" '
        'height="200" fill="currentColor" opacity=".1"/></svg></div><div class="table-wrap"><table class="data">'
        '<tr>{% for i in range(14) %}<th class="num">metric_{{ i }}</th>{% endfor %}</tr><tr class="best">'
        '{% for i in range(14) %}<td class="num">{{ 0.123456 * i }}</td>{% endfor %}</tr></table></div>')
    cfg = quick_config(tmp, classes=(285, 967), seeds=[0, 1, 2], methods=("maco", "fourier", "maco_hr"))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job, size=32))
    from atlas.data import open_pool
    from atlas.pipeline.references import store_class_references

    store_class_references(cfg, store, lambda: open_pool("bundled"), [285, 967], progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATLAS_TEMPLATES", str(tdir))
        mp.setitem(CLASS_SECTIONS._items, "probe-cards",
                   lambda b, m, e: Section("Concepts", "_probe_cards.html", list(range(1, 8)), order=10))
        mp.setitem(CLASS_SECTIONS._items, "probe-table",
                   lambda b, m, e: Section("Metrics", "_probe_table.html", None, order=20, name="probe-metrics"))
        render(plan, store, cfg.site)
    return Path(cfg.site)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def _open(browser, url, width=1280, scheme="light"):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a request cancelled because the page navigated away (keyboard navigation) is not a broken link
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else errors.append(
        f"failed: {r.url} {r.failure}"))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


IMAGES_OK = ("Array.from(document.images).filter(i => i.offsetParent !== null)"
             ".every(i => i.complete && i.naturalWidth > 0)")


def _all_images_load(page):
    # lazy images anywhere on a long page: load them all (that they are lazy is tested on the grid)
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(IMAGES_OK, timeout=15000)


def _page_kind(site: Path, path: Path) -> tuple:
    """What template and content a page has: its folder and the first word of its name, numbers aside
    (``efficientnet_lite0/fig/maco`` + ``neuron``, ``efficientnet_lite0/concept`` + ``N``; the top-level
    pages and the method pages each their own)."""
    return str(path.parent.relative_to(site)), re.sub(r"\d+", "N", re.split(r"[-.]", path.name)[0])


def test_pages_of_every_kind_load_without_errors(site, browser):
    """Every page passes the static check (links, images, sizes); in the browser, the first and last page of
    each kind (:func:`_page_kind`: one template with one kind of content - 28 kinds in this site, every
    figure page's method and target kind among them) and a twelfth of the version copies - 49 of its 276
    pages - load without a console error and with every image decoded. Opening every page but most version
    copies took 80 s of the suite's 15 minutes; pages of one kind differ only in what the static check reads."""
    from atlas.sitegen.hosts import check_host

    assert check_site(site) == []
    assert check_host(site, "github-pages")[1] == []  # the demo fits GitHub Pages (atlas check --host)
    every = sorted(site.rglob("*.html"))
    versioned = [p for p in every if unversioned(p.name)[1]]
    kinds = {}
    for p in every:
        if not unversioned(p.name)[1]:
            kinds.setdefault(_page_kind(site, p), []).append(p)
    pages = sorted({p for group in kinds.values() for p in (group[0], group[-1])}) + versioned[::12]
    assert len(kinds) >= 25 and ("efficientnet_lite0/fig/accentuation", "image") in kinds and versioned
    for path in pages:
        page, errors = _open(browser, path.as_uri())
        _all_images_load(page)
        assert errors == [], (path, errors)
        page.close()


def test_class_pages_show_every_method(site, browser):
    for cid in DEMO:
        page, errors = _open(browser, (site / "efficientnet_lite0" / "class" / f"{cid:04d}.html").as_uri())
        demo = PRESETS.get("demo")()
        from atlas.methods import METHODS

        left_out = [m for m in dict(demo.left_out) if "." not in m]  # whole methods ("vital.neuron": one kind)
        per_class = sum("class" in METHODS.get(m).kinds for m in demo.methods if m not in left_out)
        assert page.locator('img[data-view="image"]').count() == per_class  # one image per class method run
        assert page.get_by_text("left out of this atlas").count() == len(left_out)  # and the reason for the others
        assert page.locator(".real img").count() == 8  # the class's real images
        _all_images_load(page)
        assert errors == []
        page.close()


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


def test_grid_search_by_name_and_id(site, browser):
    page, errors = _open(browser, (site / "index.html").as_uri())
    assert page.locator("[data-search]").count() == 6
    box = page.locator("[data-search-input]")
    box.fill("espresso")
    assert page.locator("[data-search]:visible").count() == 1
    box.fill("872")
    visible = page.locator("[data-search]:visible")
    assert visible.count() == 1 and "tripod" in visible.inner_text()
    box.fill("#657")
    assert "missile" in page.locator("[data-search]:visible").inner_text()
    box.fill("zzzz")
    assert page.locator("[data-search]:visible").count() == 0 and page.locator("[data-empty]").is_visible()
    assert "0 of 6" in page.locator("[data-count]").inner_text()
    assert errors == []


def test_method_filter_switches_thumbnails(site, browser):
    page, errors = _open(browser, (site / "index.html").as_uri())
    page.get_by_label("Fourier").check()
    # the other methods' thumbnails need the versions index, loaded asynchronously on the first switch:
    # wait for the switch (a slow machine is still loading it when check() returns)
    page.wait_for_function("Array.from(document.querySelectorAll('[data-search]:not([hidden]) img'))"
                           ".every(i => i.getAttribute('src').includes('/fourier/'))", timeout=20000)
    imgs = page.locator("[data-search]:visible img")
    assert imgs.count() == 6
    assert all("/fourier/" in imgs.nth(i).get_attribute("src") for i in range(6))
    _all_images_load(page)
    page.get_by_label("any method").check()
    assert "/maco/" in imgs.first.get_attribute("src")
    assert errors == []


def test_random_class_button(site, browser):
    page, errors = _open(browser, (site / "index.html").as_uri())
    page.locator("[data-search-input]").fill("daisy")
    page.locator("[data-random]").click()  # picks among the classes that the filter shows
    page.wait_for_url("**/class/0985.html")
    assert errors == []


def test_header_search_by_name_synonym_and_id_from_any_depth(site, browser):
    page, errors = _open(browser, (site / "efficientnet_lite0/fig/maco/class-0285-s0.html").as_uri())
    box = page.locator("#quick-q")
    box.fill("espress")
    option = page.locator("#quick-list [role=option]").first
    option.wait_for()
    assert "espresso" in option.inner_text()
    box.press("Enter")
    page.wait_for_url("**/efficientnet_lite0/class/0967.html")
    page.keyboard.press("/")  # "/" focuses the search box
    assert page.evaluate("document.activeElement.id") == "quick-q"
    page.keyboard.type("872")
    page.locator("#quick-list [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")
    assert page.locator("#quick-list [aria-selected=true]").inner_text().startswith("tripod")
    page.keyboard.press("Enter")
    page.wait_for_url("**/class/0872.html")
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
    page.locator('[data-show-all="alpha"]').click()  # every figure at once
    n = page.locator('[data-fig] [data-view="image"]').count()
    assert n == 3 and page.locator('[data-view="alpha"]:visible').count() == n  # MACO, Fourier, VITAL
    page.keyboard.press("3")
    assert page.locator('[data-view="masked"]:visible').count() == n
    _all_images_load(page)
    assert errors == []


def test_keyboard_navigation(site, browser):
    page, errors = _open(browser, (site / "efficientnet_lite0" / "class" / "0967.html").as_uri())
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/class/0665.html")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/class/0967.html")
    # every image has alt text, every button a name
    assert page.evaluate("Array.from(document.images).every(i => i.alt && i.alt.length > 3)")
    assert page.evaluate("Array.from(document.querySelectorAll('button')).every(b => b.textContent.trim())")
    assert errors == []


def test_compare_page(site, browser):
    page, errors = _open(browser, (site / "compare.html").as_uri())
    rows = page.locator(".crow")
    assert rows.count() == 6
    assert "MACO" in rows.first.locator("figcaption").first.inner_text()
    assert "Fourier" in rows.first.locator("figcaption").nth(1).inner_text()
    _all_images_load(page)
    page.locator('[data-compare] input[name="q"]').fill("cat")
    assert rows.count() == 1 and "Egyptian cat" in rows.first.inner_text()
    page.select_option('select[name="b-method"]', "maco")
    assert rows.first.locator("figcaption").nth(1).inner_text().startswith("MACO")
    rows.first.locator("img").nth(1).click()  # images link to their permalinks
    page.wait_for_url("**/fig/maco/class-0285-s0.html")
    assert errors == []


def test_cite_box_copy_and_absolute_permalink_under_a_sub_path(site, browser, tmp_path):
    www = tmp_path / "www" / "lab" / "atlas"
    www.parent.mkdir(parents=True)
    www.symlink_to(site, target_is_directory=True)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/lab/atlas/"
        page, errors = _open(browser, base + "efficientnet_lite0/fig/maco/class-0285-s0.html")
        newest = base + "efficientnet_lite0/fig/maco/class-0285-s0.html"
        permalink = page.locator("[data-permalink] code").inner_text()  # this version's address, absolute
        assert re.fullmatch(re.escape(newest[:-5]) + r"\.[0-9a-f]{20}\.html", permalink)
        version, errs = _open(browser, permalink)  # its versioned page points back to the newest, absolute
        assert version.locator("[data-newest] code").inner_text() == newest and errs == []
        version.close()
        bib = page.locator("[data-copy-src]").first.inner_text()
        assert "\\url{" + permalink + "}" in bib
        button = page.locator("[data-copy]").first
        button.click()
        page.wait_for_function("document.querySelector('[data-copy]').textContent === 'Copied'")
        with page.expect_download() as dl:
            page.get_by_text("Download PNG").click()
        assert dl.value.suggested_filename.endswith(".png")
        _all_images_load(page)
        for rel in ("index.html", "compare.html", "efficientnet_lite0/class/0285.html"):
            p, errs = _open(browser, base + rel)
            _all_images_load(p)
            assert errs == [], (rel, errs)
            p.close()
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()


def test_extension_sections_fit_a_phone(sections_site, browser):
    assert check_site(sections_site) == []
    url = (sections_site / "efficientnet_lite0" / "class" / "0285.html").as_uri()
    for width in (390, 1440):
        page, errors = _open(browser, url, width)
        assert page.locator("#sec-concepts .panel").count() == 7
        assert page.locator("#sec-probe-metrics table.data").is_visible()
        assert page.locator('.jump a[href="#sec-probe-metrics"]').count() == 1
        _all_images_load(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        page.screenshot(path=str(out_dir() / f"sections-class-0285-{width}.png"), full_page=True)
        assert errors == []
        page.close()


SHOTS = {"index": "index.html", "class-0967": "efficientnet_lite0/class/0967.html",
         "figure": "efficientnet_lite0/fig/maco/class-0967-s0.html", "compare": "compare.html",
         "method-maco": "methods/maco.html", "model": "efficientnet_lite0/index.html", "about": "about.html"}


def test_screenshots_phone_and_desktop(site, browser):
    out = out_dir()
    for name, rel in SHOTS.items():
        for width, scheme in ((390, "light"), (1440, "light"), (390, "dark")):
            page, errors = _open(browser, (site / rel).as_uri(), width, scheme)
            _all_images_load(page)
            suffix = "" if scheme == "light" else "-dark"
            page.screenshot(path=str(out / f"{name}-{width}{suffix}.png"), full_page=True)
            # nothing wider than the viewport at phone width, nothing hidden by the layout
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, (name, width)
            assert errors == []
            page.close()
    assert (out / "class-0967-390.png").stat().st_size > 10_000




def test_tsne_hover_shows_the_visualization_and_metrics_page_loads(site, browser):
    page, errors = _open(browser, (site / "tsne.html").as_uri())
    points = page.locator("a.tsne-pt")
    from atlas.config import PRESETS
    from atlas.methods import METHODS

    demo = PRESETS.get("demo")()
    run = [m for m in demo.methods if m not in dict(demo.left_out)]
    assert points.count() == len(demo.classes) * sum("class" in METHODS.get(m).kinds for m in run)
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
    neurons = sorted(p for p in (lite / "neuron").glob("blocks.6-*.html")  # blocks.0, the whole layer: test_layer_site.py
                     if unversioned(p.name)[1] is None)
    assert len(neurons) == 2 and all(p.is_file() for p in pages)
    assert (lite / "layer" / "blocks.0.html").is_file() and (lite / "concept-map.html").is_file()
    for path in [pages[0], pages[2], *neurons, site / "neurons.html", lite / "class" / "0285.html"]:
        page, errors = _open(browser, path.as_uri())
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        page.wait_for_function("Array.from(document.images).filter(i => !i.hidden).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("img").count() >= 2 and errors == []
        page.close()
    cls, _ = _open(browser, (lite / "class" / "0285.html").as_uri())
    assert cls.locator(".concept-card").count() == 3


# ------------------------------------------------------------------ pages and assets on two origins
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def two_origins(tmp_path_factory):
    """A synthetic store (two classes, MACO and Fourier, two seeds, real-image thumbnails) rendered with its
    assets apart, then MACO's settings changed and rendered again (so figures have earlier versions): the
    pages served by one local HTTP server, the assets by another on another port (cross-origin, as on a CDN)."""
    from dataclasses import replace

    from atlas.data import open_pool
    from atlas.pipeline import Store, make_plan
    from atlas.pipeline.references import store_class_references
    from atlas.sitegen import render
    from helpers import fake_visualization, quick_config

    tmp = tmp_path_factory.mktemp("origins")
    (tmp / "pages").mkdir()
    (tmp / "assets").mkdir()
    pages, assets = _serve(tmp / "pages"), _serve(tmp / "assets")
    try:
        base, cdn = (f"http://127.0.0.1:{s.server_port}/" for s in (pages, assets))
        cfg = quick_config(tmp, classes=(285, 967), seeds=[0, 1], site={
            "folder": str(tmp / "pages"), "url": base, "assets_url": cdn, "assets_folder": str(tmp / "assets")})
        store = Store(cfg.store)
        store_class_references(cfg, store, lambda: open_pool("bundled"), [285, 967], progress=False)
        for settings in (cfg.settings, tuple((m, tuple(sorted({**dict(kv), "steps": 3}.items())) if m == "maco" else kv)
                                             for m, kv in cfg.settings)):
            plan = make_plan(replace(cfg, settings=settings))
            for job in plan.jobs:
                if not store.has(job.key):
                    store.put(job, fake_visualization(job, size=224))
            render(plan, store, cfg.site)
        yield tmp, base, cdn
    finally:
        for s in (pages, assets):
            s.shutdown()
            s.server_close()


def _origin_problems(page, errors):
    _all_images_load(page)
    assert errors == [], errors
    assert page.evaluate("typeof window.atlas") == "object"  # the site's script ran


def test_pages_and_assets_on_two_origins_load_and_work(two_origins, browser):
    tmp, base, cdn = two_origins
    assert check_site(tmp / "pages") == []  # atlas check passes on both trees
    assert not list((tmp / "pages").rglob("*.png")) and list((tmp / "assets").rglob("*.png"))
    lite = "efficientnet_lite0/"
    plain = ["index.html", lite + "index.html", lite + "class/0285.html", "methods/maco.html",
             lite + "fig/maco/class-0285-s0.html", lite + "fig/fourier/class-0967-s1.html"]
    for rel in plain:
        page, errors = _open(browser, base + rel)
        _origin_problems(page, errors)
        srcs = page.evaluate("Array.from(document.images).map(i => i.src)")
        assert srcs and all(s.startswith(cdn) for s in srcs if "/static/" not in s), rel  # images from the CDN
        for href in page.evaluate("Array.from(document.querySelectorAll('a[download]')).map(a => a.href)"):
            assert href.startswith(cdn) and page.request.get(href).status == 200  # downloads resolve
        page.close()
    # the versioned page lives with the assets and links back to the pages
    fig, errors = _open(browser, base + lite + "fig/maco/class-0285-s0.html")
    versioned = fig.locator("[data-permalink]").get_attribute("href")
    assert versioned.startswith(cdn) and re.search(r"class-0285-s0\.[0-9a-f]{20}\.html$", versioned)
    assert f"\\url{{{versioned}}}" in fig.locator("[data-copy-src]").first.inner_text()
    fig.close()
    vpage, errors = _open(browser, versioned)
    _origin_problems(vpage, errors)
    assert "never changes" in vpage.inner_text("main")
    vpage.locator("[data-newest]").first.click()
    vpage.wait_for_url(base + lite + "fig/maco/class-0285-s0.html")
    # the permalink lists the earlier version (steps 2 -> 3), whose page and images still load from the CDN
    old = vpage.locator(".version-list a").first
    assert "steps" in vpage.locator(".version-list li").first.inner_text()
    old.click()
    vpage.wait_for_url(cdn + "**")
    _all_images_load(vpage)
    vpage.close()
    # toggles, the method filter and the compare page build their image URLs across the origins
    cls, errors = _open(browser, base + lite + "class/0285.html")
    cls.locator('[data-show-all="masked"]').click()
    assert cls.locator('[data-view="masked"]:visible').count() == 4
    _origin_problems(cls, errors)
    cls.close()
    index, errors = _open(browser, base + "index.html")
    index.get_by_label("Fourier").check()
    index.wait_for_function("Array.from(document.querySelectorAll('[data-search] img')).every(i => i.src.indexOf('/fourier/') > 0)")
    assert index.locator("[data-search] img").first.get_attribute("src").startswith(cdn)
    _origin_problems(index, errors)
    index.close()
    compare, errors = _open(browser, base + "compare.html")
    compare.wait_for_function("document.querySelectorAll('.crow img').length >= 4")
    assert compare.locator(".crow").count() == 2
    assert compare.locator(".crow img").first.get_attribute("src").startswith(cdn)
    _origin_problems(compare, errors)
    compare.locator(".crow img").first.click()
    compare.wait_for_url("**/fig/maco/class-0285-s0.html")
    compare.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_masked_view_is_drawn_from_the_image_and_its_transparency(two_origins, browser, scheme):
    """No masked file is stored: the browser composites the image over the page (white in light mode, black
    in dark) with the transparency map as alpha, even with the images on another origin."""
    import io

    import numpy as np
    from PIL import Image

    tmp, base, cdn = two_origins
    page, errors = _open(browser, base + "efficientnet_lite0/fig/maco/class-0285-s0.html", scheme=scheme)
    page.add_style_tag(content=".fig.big .views img, .fig.big .masked { width: 224px !important; height: 224px !important; }")
    fig = page.locator("[data-fig]").first
    fig.locator('[data-show="masked"]').click()
    masked = fig.locator('[data-view="masked"]')
    page.wait_for_function("Array.from(document.querySelectorAll('.masked img')).every(i => i.complete && i.naturalWidth > 0)")
    box = masked.locator("img:not(.mask)").bounding_box()  # the composite, at the image's natural size
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB"), dtype=np.float64)
    src = lambda sel: (tmp / "assets" / masked.locator(sel).get_attribute("src")[len(cdn):])  # noqa: E731
    image = np.asarray(Image.open(src("img:not(.mask)")).convert("RGB"), dtype=np.float64)
    alpha = np.asarray(Image.open(src("img.mask")).convert("L"), dtype=np.float64)[..., None] / 255
    expected = alpha * image + (1 - alpha) * (255 if scheme == "light" else 0)
    assert shot.shape == expected.shape
    assert np.abs(shot - expected).mean() < 4  # the composite, within rounding of the blend
    assert np.abs(shot - image).mean() > 4 * np.abs(shot - expected).mean()  # and not the plain image
    assert errors == []
    page.close()
