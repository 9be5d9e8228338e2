"""Metrics in the site: a metrics page per model listing every method with numbers or a reason, a metrics
section on class pages, the t-SNE page with one symbol per method and links that resolve; no model loaded."""
import re
import shutil

import pytest

from atlas.metrics import MetricsRunner
from atlas.sitegen import gather, render
from atlas.sitegen.check import check_site
from helpers import fake_visualization
from metrics_setup import tiny_build


@pytest.fixture
def site(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    MetricsRunner(cfg, store, progress=False).run(plan)
    render(plan, store, cfg.site)
    return cfg, plan, store, tmp_path / "site"


def test_metrics_page_lists_every_method_with_numbers_or_reasons(site):
    cfg, plan, store, root = site
    assert check_site(root) == []
    html = (root / "tiny64" / "metrics.html").read_text()
    for title in ("MACO", "Fourier"):
        assert f">{title}</a>" in html
    assert "Real images (n = 8)" in html and "Class logits" in html and "Intermediate neurons" in html
    assert "unavailable: Inception-v3 pool3 (pytorch-fid weights): Inception-v3 FID weights" in html
    assert "substitute for Inception-v3" in html
    assert "no metrics:" not in html
    assert (root / "tiny64" / "metrics.json").is_file()
    # plausibility: exactly one of the two methods is best (bold) - unless they tie
    row = re.search(r"Plausibility.*?</thead>", html, re.S)
    assert row and html.count("<strong>") >= 1
    index = (root / "metrics.html").read_text()
    assert 'href="tiny64/metrics.html"' in index


def test_class_page_has_a_metrics_section(site):
    *_, root = site
    html = (root / "tiny64" / "class" / "0285.html").read_text()
    assert re.search(r"<h2[^>]*>Metrics</h2>", html) and "Top-2 predictions" in html
    assert html.count("seed 0</small>") == 2  # MACO and Fourier
    assert "tiny64_judge top-1" in html and "Real images of this class (n = 4)" in html


def test_tsne_page_has_one_symbol_per_method_and_working_links(site):
    cfg, plan, store, root = site
    html = (root / "tsne.html").read_text()
    assert html.count('class="tsne-pt"') == 4  # 2 classes x 2 methods
    assert html.count("fill-opacity=\"0.3\"") >= 8  # real images
    shapes = set(re.findall(r'<a href="[^"]+" data-src="[^"]+" data-label="(MACO|Fourier)[^"]*" class="tsne-pt">'
                            r'<path class="pt" d="M([^ ]+ [^ ]+ [^ ]+)', html))
    assert {m for m, _ in shapes} == {"MACO", "Fourier"}
    assert 'src="static/tsne.js"' in html and "real images" in html
    assert check_site(root) == []  # data-src thumbnails and figure links resolve


def test_pages_say_when_metrics_are_missing_or_stale(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    render(plan, store, cfg.site)
    assert "have not been computed yet" in (tmp_path / "site" / "tiny64" / "metrics.html").read_text()
    assert "Metrics not computed yet" in (tmp_path / "site" / "tiny64" / "class" / "0285.html").read_text()
    MetricsRunner(cfg, store, progress=False).run(plan)
    job = next(j for j in plan.jobs if j.method == "fourier" and j.target.kind == "class")
    shutil.rmtree(store.job_dir(job.key))
    vis = fake_visualization(job, size=64)
    vis.image = vis.image[::-1].copy()
    store.put(job, vis)
    render(plan, store, cfg.site)
    assert "stale: 1 image(s) changed" in (tmp_path / "site" / "tiny64" / "metrics.html").read_text()


def test_render_with_metrics_loads_no_model(site, monkeypatch):
    import atlas.models.zoo as zoo

    cfg, plan, store, root = site
    monkeypatch.setattr(zoo, "load_model", lambda *a, **k: pytest.fail("render loaded a model"))
    monkeypatch.setattr(MetricsRunner, "run", lambda *a, **k: pytest.fail("render ran the metrics"))
    pages = {p.path for p in gather(plan, store).pages}
    assert {"metrics.html", "tsne.html", "tiny64/metrics.html"} <= pages
