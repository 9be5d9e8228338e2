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
    assert html.count('data-view="alpha"') == 4 and html.count('data-view="masked"') == 4
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


def test_stale_pages_are_removed_but_foreign_files_kept(built, tmp_path):
    cfg, plan, store, site, _ = built
    (site / "mine.txt").write_text("user file")
    smaller = make_plan(quick_config(tmp_path, classes=(285,), seeds=[0, 1]))
    counts = render(smaller, store, cfg.site)
    assert counts["removed"] > 0
    assert not (site / "efficientnet_lite0" / "class" / "0967.html").exists()
    assert (site / "mine.txt").read_text() == "user file"
    assert check_site(site) == []


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
    monkeypatch.setitem(PAGE_SOURCES._items, "probe",
                        lambda b: b.pages.append(Page("probe/index.html", "probe.html", {}, nav_title="Probe")))
    cfg = quick_config(tmp_path, classes=(285,))
    plan = make_plan(cfg)
    render(plan, Store(cfg.store), cfg.site)
    html = (tmp_path / "site" / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert "<p class='probe'>285 for Egyptian cat</p>" in html
    assert 'href="../../probe/index.html">Probe</a>' in html
    assert check_site(tmp_path / "site") == []
