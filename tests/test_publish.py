"""Publishing and citing: versioned URLs that never change, nothing published ever disappears in a render,
``atlas prune`` removes exactly what it lists, pages and assets in two trees with absolute links between
them, the size estimate and the static hosts' limits. Synthetic stores (no model runs)."""
import json
import os
import re
from dataclasses import replace

import pytest

from atlas.cli import main
from atlas.config import SiteConfig
from atlas.pipeline import Store, make_plan
from atlas.sitegen import gather, render
from atlas.sitegen.check import check_site
from atlas.sitegen.paths import unversioned
from atlas.sitegen.prune import prune, prune_list
from helpers import fake_visualization, quick_config

PLAIN = "efficientnet_lite0/fig/maco/class-0285-s0.html"


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _fill(plan, store):
    for job in plan.jobs:
        if not store.has(job.key):
            store.put(job, fake_visualization(job, size=24))


@pytest.fixture
def two_renders(tmp_path):
    """Render, change MACO's settings, run (fake images) and render again."""
    cfg = quick_config(tmp_path, classes=(285, 967), seeds=[0])
    plan = make_plan(cfg)
    store = Store(cfg.store)
    _fill(plan, store)
    render(plan, store, cfg.site)
    first = _files(tmp_path / "site")
    changed = replace(cfg, settings=tuple((m, kv if m != "maco" else tuple(sorted({**dict(kv), "steps": 3}.items())))
                                          for m, kv in cfg.settings))
    plan2 = make_plan(changed)
    _fill(plan2, store)
    counts = render(plan2, store, changed.site)
    old = next(j for j in plan.jobs if j.method == "maco" and j.target.class_id == 285)
    new = next(j for j in plan2.jobs if j.method == "maco" and j.target.class_id == 285)
    return tmp_path / "site", first, counts, plan, plan2, store, old, new


def test_a_second_render_with_other_settings_loses_no_url_and_changes_no_version(two_renders):
    site, first, counts, plan, plan2, store, old, new = two_renders
    assert old.key != new.key and counts["removed"] == 0
    now = _files(site)
    assert set(first) <= set(now)  # every URL of the first render still resolves
    immutable = [rel for rel in first if rel.endswith((".png", ".webp")) or unversioned(rel)[1]]
    assert len(immutable) == 4 * 5  # 4 figures: a versioned page and four images each
    assert all(now[rel] == first[rel] for rel in immutable)  # every image and versioned page: same bytes
    html = now[PLAIN].decode()
    assert f"class-0285-s0.{new.key}.png" in html and f"class-0285-s0.{old.key}.png" not in html  # the new image
    assert f'href="../../../efficientnet_lite0/fig/maco/class-0285-s0.{old.key}.html"' in html  # links the old
    assert re.search(r"<code>steps</code> 2 → 3", html)  # ... saying what differs
    fourier = now["efficientnet_lite0/fig/fourier/class-0285-s0.html"].decode()
    assert "Earlier versions" not in fourier  # unchanged figures have one version
    manifest = json.loads(now["manifest.json"])
    rec = next(f for f in manifest["figures"] if f["page"] == PLAIN)
    assert [v["key"] for v in rec["versions"]] == [new.key, old.key]
    assert rec["versions"][0]["current"] and rec["versions"][1]["differences"] == [["steps", 2, 3]]
    assert check_site(site) == []
    again = render(plan2, store, site)
    assert again["written"] == 0  # a re-render with nothing changed writes nothing


def test_prune_lists_and_removes_exactly_the_earlier_versions(two_renders):
    site, first, counts, plan, plan2, store, old, new = two_renders
    earlier_maco = {rel for rel in first if "/maco/" in rel and (rel.endswith((".png", ".webp"))
                                                                 or unversioned(rel)[1])}
    assert len(earlier_maco) == 2 * 5  # two figures: a versioned page and four images each
    goes = prune_list(gather(plan2, store))
    listed = set(goes.files["pages"])
    assert listed == earlier_maco and goes.versions == 2 and len(goes) == counts["kept"]
    before = _files(site)
    prune(plan2, store, site)
    after = _files(site)
    assert set(before) - set(after) == earlier_maco  # exactly what was listed, nothing else
    assert "Earlier versions" not in after[PLAIN].decode() and check_site(site) == []
    assert prune_list(gather(plan2, store)).files["pages"] == []


def test_pages_and_assets_in_two_trees_link_across_with_absolute_urls(tmp_path):
    pages_url, assets_url = "https://lab.example.org/atlas/", "https://storage.example.org/my-atlas/"
    cfg = quick_config(tmp_path, classes=(285, 967), seeds=[0],
                       site={"folder": str(tmp_path / "pages"), "url": pages_url, "assets_url": assets_url})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    _fill(plan, store)
    render(plan, store, cfg.site)
    pages, assets = _files(tmp_path / "pages"), _files(tmp_path / "pages-assets")
    assert not [p for p in pages if p.endswith((".png", ".webp")) and not p.startswith("static/")]
    assert not [p for p in pages if unversioned(p)[1]] and "manifest.json" in assets
    assert any(unversioned(p)[1] for p in assets if p.endswith(".html"))  # versioned pages never change: assets
    html = pages[PLAIN].decode()
    assert f'src="{assets_url}efficientnet_lite0/img/maco/class-0285-s0.' in html
    assert f'data-assets="{assets_url}"' in html and 'data-root="../../../"' in html
    versioned = next(p for p in assets if p.startswith("efficientnet_lite0/fig/maco/class-0285-s0."))
    vhtml = assets[versioned].decode()
    assert f'href="{pages_url}efficientnet_lite0/fig/maco/class-0285-s0.html"' in vhtml  # back to the pages
    assert f'src="{pages_url}static/atlas.js"' in vhtml and 'src="../../../efficientnet_lite0/img/' in vhtml
    for tree, files in (("pages", pages), ("pages-assets", assets)):  # each tree lists its files
        listed = files["atlas-files.txt"].decode().splitlines()
        assert set(listed) == {p for p in files if not p.startswith(".atlas-") and p != "atlas-files.txt"}
    sitemap = pages["sitemap.xml"].decode()
    assert f"<loc>{pages_url}{PLAIN}</loc>" in sitemap and assets_url not in sitemap
    assert check_site(tmp_path / "pages") == []
    # the checker follows the absolute links into the assets tree: a missing image is found
    os.remove(tmp_path / "pages-assets" / next(p for p in assets if p.endswith("-view.webp")))
    assert any("broken reference" in p or "missing" in p for p in check_site(tmp_path / "pages"))


def test_the_store_makes_the_views_once_and_the_site_copies_them(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), methods=("maco",), seeds=[0])
    plan = make_plan(cfg)
    store = Store(cfg.store)
    _fill(plan, store)
    job = plan.jobs[0]
    meta = store.meta(job.key)
    assert set(meta["derived"]) == {"thumb.webp", "view.webp"} and set(meta["files"]) == {"image.png", "alpha.png"}
    render(plan, store, cfg.site)
    thumb = next((tmp_path / "site").rglob("*-thumb.webp"))
    assert thumb.read_bytes() == (store.job_dir(job.key) / "thumb.webp").read_bytes()
    # a job stored before derived images existed (or with a damaged one): the site makes it from the PNG
    (store.job_dir(job.key) / "view.webp").write_bytes(b"damaged")
    other = tmp_path / "other"
    render(plan, store, SiteConfig(folder=str(other)))
    view = next(other.rglob("*-view.webp"))
    assert view.read_bytes()[:4] == b"RIFF" and check_site(other) == []


def test_check_host_passes_a_small_site_and_fails_a_large_one_with_what_to_change(tmp_path, capsys):
    cfg = quick_config(tmp_path, classes=(285,), seeds=[0])
    plan = make_plan(cfg)
    store = Store(cfg.store)
    _fill(plan, store)
    render(plan, store, cfg.site)
    site = str(tmp_path / "site")
    assert main(["check", "--site", site, "--host", "github-pages", "--host", "gitlab-pages"]) == 0
    assert "github-pages: fits" in capsys.readouterr().out
    with open(tmp_path / "site" / "efficientnet_lite0" / "big.bin", "wb") as fh:  # sparse: 1.2 GB on paper
        fh.truncate(1_200_000_000)
    assert main(["check", "--site", site, "--host", "github-pages"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"github-pages: the site \(one folder\) is 1\.2 GB, over GitHub Pages's 1\.0 GB: put the "
                     r"images on object storage with \[site\] assets_url", out)
    assert "github-pages: efficientnet_lite0/big.bin is 1.2 GB, over GitHub Pages's 104.9 MB per file" in out
    assert main(["check", "--site", site, "--host", "geocities"]) == 2


def test_check_host_counts_files_folders_and_files_per_folder(tmp_path, monkeypatch):
    import atlas.sitegen.hosts as hosts

    root = tmp_path / "s"
    (root / "a" / "b").mkdir(parents=True)
    (root / "index.html").write_text("<p>x</p>")
    for i in range(5):
        (root / "a" / "b" / f"{i}.txt").write_text("x")
    small = (hosts.HostLimits("tiny", "Tiny", entries=7, folders_count=True, per_folder=4),)
    monkeypatch.setattr(hosts, "HOSTS", small)
    lines, problems = hosts.check_host(root, "tiny")
    assert "6 files in 2 folders" in lines[0]
    assert any("has 8 files and folders, over Tiny's 7" in p for p in problems)
    assert any("folder a/b holds 5 files, over Tiny's 4 per folder" in p for p in problems)


def test_size_estimate_counts_the_files_a_render_writes_and_sizes_lens(tmp_path):
    from atlas.config import PRESETS
    from atlas.sitegen.sizeplan import estimate, size_lines

    cfg = quick_config(tmp_path, classes=(285, 967, 665), seeds=[0, 1],
                       site={"folder": str(tmp_path / "p"), "url": "https://a.org/", "assets_url": "https://b.org/"})
    plan = make_plan(cfg)
    _fill(plan, Store(cfg.store))
    render(plan, Store(cfg.store), cfg.site)
    est = estimate(plan)
    pages = [p for p in _files(tmp_path / "p") if not p.startswith(".atlas-")]
    assets = [p for p in _files(tmp_path / "p-assets") if not p.startswith(".atlas-")]
    assert abs(est.pages_files - len(pages)) <= 0.25 * len(pages)  # fixed pages are a guess; figures exact
    assert est.assets_files - 3 * 8 == len(assets) - 1  # the classes' 8 real images are not in this store
    lens = make_plan(replace(PRESETS.get("lens")(), store=str(tmp_path / "lens")))
    lines = size_lines(lens)
    assert re.search(r"too large for github-pages, gitlab-pages: with \[site\] assets_url the pages alone "
                     r"\(\d+ files, [\d.]+ MB\) fit github-pages", lines[1]), lines


def test_cli_plan_prints_the_size_and_prune_lists_before_it_removes(tmp_path, capsys):
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = [285]\nmethods = ["maco"]\nstore = "{tmp_path}/store"\n'
                    f'site = "{tmp_path}/site"\n[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n'
                    '[settings.maco]\nsteps = 2\n')
    assert main(["-q", "plan", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"site \(estimate, every job done\): pages \d+ files, [\d.]+ kB; assets \d+ files", out)
    assert "site: one folder fits github-pages, gitlab-pages, netlify" in out
    from atlas.config import load_config

    cfg = load_config(toml)
    plan = make_plan(cfg)
    store = Store(cfg.store)
    _fill(plan, store)
    render(plan, store, cfg.site)
    toml.write_text(toml.read_text().replace("steps = 2", "steps = 5"))
    plan2 = make_plan(load_config(toml))
    _fill(plan2, store)
    assert main(["-q", "render", "--config", str(toml)]) == 0
    assert "published earlier kept (atlas prune lists them)" in capsys.readouterr().out
    old = plan.jobs[0].key
    assert main(["-q", "prune", "--config", str(toml), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"pages: efficientnet_lite0/fig/maco/class-0285-s0.{old}.html" in out and "5 files" in out
    assert (tmp_path / f"site/efficientnet_lite0/fig/maco/class-0285-s0.{old}.html").is_file()  # only listed
    assert main(["-q", "prune", "--config", str(toml), "--yes"]) == 0
    assert "removed 5 files" in capsys.readouterr().out
    assert not (tmp_path / f"site/efficientnet_lite0/fig/maco/class-0285-s0.{old}.html").exists()
    assert check_site(tmp_path / "site") == []
