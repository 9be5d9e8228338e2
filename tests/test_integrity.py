"""Store and site integrity (issue 21, part B): every file atlas reads back is checked by its shape as well as
its checksum, "done" means verified everywhere, every write goes through the one safe write, a job's key
is everything that changes its bytes, and the renderer owns only what it wrote. These tests need no model
(finished jobs are synthetic, ``helpers.fake_visualization``); RELIABILITY.md lists them."""
from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from atlas.atomic import DiskError, atomic_write, disk_errors
from atlas.errors import AtlasError
from atlas.pipeline import Store, make_plan
from atlas.pipeline.cluster import manifests, pending_batches, shard_state
from atlas.pipeline.ledger import completions, read_ledger
from atlas.pipeline.sharding import plan_batches
from atlas.pipeline.status import format_status, status
from atlas.sitegen import render
from atlas.sitegen.check import check_site
from helpers import fake_visualization, quick_config

WRONG_SHAPES = [b"null", b"[]", b"[1, 2]", b"7", b'"x"', b"{}", b'{"files": {}}', b'{"files": 3}', b"true",
                b"\xff\xfe\xfa", b"", b'{"key": "tru', b"[" * 100000]


def _stored(tmp_path, n_classes=2, **extra):
    cfg = quick_config(tmp_path, classes=(285, 967, 665, 872)[:n_classes], methods=("fourier",), **extra)
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job))
    return cfg, plan, store


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------ records read back
@pytest.mark.parametrize("content", WRONG_SHAPES)
def test_job_metadata_of_any_wrong_shape_is_a_missing_job_warned_once(tmp_path, caplog, content):
    cfg, plan, store = _stored(tmp_path)
    bad, good = plan.jobs[0].key, plan.jobs[1].key
    (store.job_dir(bad) / "meta.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # status, plan and render each look several times: one warning
            assert not store.has(bad) and not store.intact(bad) and store.meta(bad) is None
        assert [m["key"] for m in store.iter_metas()] == [good]
        st = status(plan.jobs, store, cfg.batch_size)
    assert st.done == 1 and st.pending == 1
    assert len([m for m in _warnings(caplog) if bad in m]) == 1


def test_metadata_of_another_job_or_with_a_wrong_size_is_not_done(tmp_path):
    cfg, plan, store = _stored(tmp_path)
    a, b = plan.jobs[0].key, plan.jobs[1].key
    (store.job_dir(a) / "meta.json").write_bytes((store.job_dir(b) / "meta.json").read_bytes())
    assert not store.has(a)
    meta = json.loads((store.job_dir(b) / "meta.json").read_text())
    meta["sizes"]["image.png"] += 1
    (store.job_dir(b) / "meta.json").write_text(json.dumps(meta))
    assert not store.has(b)


def test_truncated_image_is_not_done_for_plan_status_and_submit(tmp_path, capsys):
    """``plan``, ``status`` and ``submit`` compare recorded sizes (one stat per file): a truncated image is
    pending everywhere, so ``atlas submit`` sends it to the cluster again."""
    from atlas.cli import main

    cfg, plan, store = _stored(tmp_path)
    job = plan.jobs[0]
    image = store.job_dir(job.key) / "image.png"
    image.write_bytes(image.read_bytes()[:-10])
    assert not store.has(job.key) and store.has(plan.jobs[1].key)
    assert status(plan.jobs, store, cfg.batch_size).done == 1
    todo = pending_batches(plan_batches(plan.jobs, cfg.batch_size), store)
    assert [j.key for b in todo for j in b.jobs if not store.has(j.key)] == [job.key]
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = [285, 967]\nmethods = ["fourier"]\nbatch_sizes = {{}}\nstore = "{cfg.store}"\n'
                    f'[settings.fourier]\nsteps = 2\ncrops = 1\n[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\n'
                    f'images = 0\nkind_methods = {{}}\n')
    assert main(["-q", "plan", "--config", str(toml), "--list"]) == 0
    out = capsys.readouterr().out
    assert f"{job.key}  pending" in out and "1 done" in out


def test_garbled_ledger_is_skipped_line_by_line_with_one_warning(tmp_path, caplog):
    cfg, plan, store = _stored(tmp_path)
    ledger = store.root / "ledger"
    ledger.mkdir()
    good = {"keys": [plan.jobs[0].key], "seconds": 1.0}
    (ledger / "a.jsonl").write_bytes(json.dumps(good).encode() + b"\n\xff\xfe not utf-8\n[1]\n"
                                     b'{"keys": [[1], {}]}\n{"keys": "x"}\n' + json.dumps(good).encode() + b"\n")
    (ledger / "b.jsonl").write_bytes(b"\x00\x01\x02\xff" * 50)
    (ledger / "c.jsonl").mkdir()
    with caplog.at_level(logging.WARNING):
        records = list(read_ledger(store.root))
        st = status(plan.jobs, store, cfg.batch_size)
    assert len(records) == 2 and completions(store.root)[plan.jobs[0].key] == 2 and st.computed_twice == 1
    assert len([m for m in _warnings(caplog) if "a.jsonl" in m]) == 1


@pytest.mark.parametrize("manifest", [b"null", b"{}", b'{"id": "s1"}', b'{"id": "s1", "executor": "local", '
                                      b'"shards": [{"batches": ["x"]}]}', b'{"id": "s1", "executor": "local", '
                                      b'"shards": [{"index": 0, "batches": [1]}]}', b"\xff"])
def test_shard_manifest_without_its_keys_is_skipped_by_status(tmp_path, manifest):
    cfg, plan, store = _stored(tmp_path)
    sub = store.root / "shards" / "s1"
    sub.mkdir(parents=True)
    (sub / "manifest.json").write_bytes(manifest)
    (sub / "shard-0.json").write_bytes(b'{"state": "running", "host": "h"}')
    assert manifests(store) == [] and shard_state(store, "s1", 0) is None
    lines = format_status(status(plan.jobs, store, cfg.batch_size))
    assert lines == ["2 jobs: 2 done, 0 pending, 0 failed"]


def test_damaged_shard_state_reads_as_queued(tmp_path):
    cfg, plan, store = _stored(tmp_path)
    sub = store.root / "shards" / "s1"
    sub.mkdir(parents=True)
    batch = plan_batches(plan.jobs, cfg.batch_size)[0]
    (sub / "manifest.json").write_text(json.dumps({"id": "s1", "executor": "local", "job_ids": [],
                                                   "shards": [{"index": 0, "batches": [batch.id]}]}))
    for state in (b'{"state": "running", "host": "h", "pid": "12"}', b'{"state": 3}', b'{"pid": 10**30}',
                  b'{"state": "running", "host": "h", "pid": 99999999999999999999}', b"[]"):
        (sub / "shard-0.json").write_bytes(state)
        st = status(plan.jobs, store, cfg.batch_size)
        assert st.shards[0].state in ("queued", "running", "done"), state
        format_status(st)


def test_failure_and_stage_and_calibration_records_of_the_wrong_shape_count_as_missing(tmp_path):
    from atlas.pipeline.calibrate import load_entries

    cfg, plan, store = _stored(tmp_path)
    job = plan.jobs[0]
    store.failed_dir.mkdir()
    for bad in (b"[]", b'{"reason": 3}', b'{"reason": "x", "step": "one"}'):
        (store.failed_dir / f"{job.key}.json").write_bytes(bad)
        assert store.failure(job.key) is None
    store.put_stage("s", "k1", {"a.bin": b"abc"})
    assert store.get_stage("s", "k1") is not None
    for bad in (b"{}", b'{"key": "k1", "files": {"a.bin": "00"}}', b'{"key": "k2", "files": {}}', b"null",
                b'{"key": "k1", "files": {"../x": "' + b"0" * 64 + b'"}}'):
        (store.stage_dir("s", "k1") / "meta.json").write_bytes(bad)
        assert store.get_stage("s", "k1") is None, bad
    for bad in (b"[]", b'{"cpu": []}', b'{"cpu": {"k": {"overhead": "x"}}}', b"\xff"):
        (store.cache_dir).mkdir(exist_ok=True)
        (store.cache_dir / "calibration.json").write_bytes(bad)
        assert load_entries(store) == {}


def test_metric_results_are_sealed_any_change_is_damage(tmp_path, caplog):
    from atlas.metrics.results import read_index, read_result, write_index, write_result

    store = Store(tmp_path / "store")
    write_result(store, "k1", {"kind": "class", "cells": {"acc": {"title": "Accuracy", "value": np.float32(0.5)}}})
    write_index(store, "scope", {"units": {"maco/class": "k1"}, "baseline": None})
    assert read_result(store, "k1")["cells"]["acc"]["value"] == 0.5 and read_index(store, "scope")
    path = store.metrics_dir / "results" / "k1.json"
    good = path.read_text()
    for bad in (good.replace("0.5", "0.7"), json.dumps({"kind": "class"}), "null", good[:-20]):
        path.write_text(bad)
        with caplog.at_level(logging.WARNING):
            assert read_result(store, "k1") is None
    assert any("atlas metrics" in m for m in _warnings(caplog))


# ------------------------------------------------------------------------------------------- writes
def test_short_writes_on_a_full_disk_are_the_one_line_disk_error(tmp_path, monkeypatch):
    """``os.write`` that stops short and then fails (a full disk) is an OSError with ENOSPC - never the
    errno-less "n requested and m written" that numpy's file writer raised - and no temp file stays."""
    real_write, calls = os.write, {"n": 0}

    def short(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short)
    with pytest.raises(DiskError) as info:
        with disk_errors(tmp_path / "store"):
            atomic_write(tmp_path / "store" / "cache" / "x.npy", b"z" * 75936)
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert not list((tmp_path / "store").rglob("*.tmp")) and not (tmp_path / "store" / "cache" / "x.npy").exists()


def test_full_disk_while_the_spectrum_cache_is_written_is_the_stores_one_line_error(tmp_path, monkeypatch):
    from atlas.data import BundledPool
    from atlas.data.spectrum import load_or_estimate_spectrum

    store = Store(tmp_path / "store")
    real_write = os.write

    def full(fd, data):
        if len(data) > 10000:  # the array (a small meta.json would still fit)
            n = real_write(fd, bytes(data)[:4096])
            if n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskError, match="cannot write to .*No space left on device.*--store"):
        with disk_errors(store.root):
            load_or_estimate_spectrum(BundledPool(), 64, 2, store.cache_dir)
    assert not [p for p in store.root.rglob("*") if p.name.startswith((".tmp-", ".trash-"))]
    monkeypatch.undo()
    assert load_or_estimate_spectrum(BundledPool(), 64, 2, store.cache_dir).shape == (3, 64, 33)


def test_bit_rot_in_the_cached_spectrum_is_detected_and_estimated_again(tmp_path, caplog):
    from atlas.data import BundledPool
    from atlas.data.spectrum import load_or_estimate_spectrum, spectrum_path

    pool = BundledPool()
    first = load_or_estimate_spectrum(pool, 32, 2, tmp_path)
    path = spectrum_path(tmp_path, pool, 32, 2)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # a low mantissa bit of the last value: still finite, right shape
    path.write_bytes(bytes(data))
    rotten = np.load(path)
    assert np.isfinite(rotten).all() and rotten.shape == first.shape and not np.array_equal(rotten, first)
    with caplog.at_level(logging.WARNING):
        again = load_or_estimate_spectrum(pool, 32, 2, tmp_path)
    assert np.array_equal(again, first) and np.array_equal(np.load(path), first)
    assert any("spectrum" in m and "checksum" in m for m in _warnings(caplog))


def test_a_folder_in_the_way_of_a_write_is_one_line(tmp_path):
    (tmp_path / "store" / "cache" / "pools.json").mkdir(parents=True)
    with pytest.raises(DiskError, match="in the way"):
        with disk_errors(tmp_path / "store"):
            atomic_write(tmp_path / "store" / "cache" / "pools.json", b"{}")


# -------------------------------------------------------------------------------------------- job keys
def test_batch_size_is_part_of_the_key_and_a_lone_job_keeps_its_key(tmp_path):
    one = make_plan(quick_config(tmp_path, classes=(285, 967, 665), methods=("maco",), batch_size=1))
    two = make_plan(quick_config(tmp_path, classes=(285, 967, 665), methods=("maco",), batch_size=2))
    assert [j.batch for j in two.jobs] == [2, 2, 1]
    assert one.jobs[0].key != two.jobs[0].key and one.jobs[1].key != two.jobs[1].key
    assert one.jobs[2].key == two.jobs[2].key  # optimised alone either way: the same bytes, the same key
    assert [b.keys for b in plan_batches(two.jobs, 2)] == [[two.jobs[0].key, two.jobs[1].key], [two.jobs[2].key]]
    assert two.jobs[0].base_key == one.jobs[0].key


def test_a_batch_coupled_methods_key_names_its_batch_mates(tmp_path):
    """DeepInversion matches BatchNorm statistics over its batch: another batch-mate is another image."""
    settings = {"deepinversion": {"steps": 2, "batch_size": 2}}
    a = make_plan(quick_config(tmp_path, classes=(285, 967), methods=("deepinversion",), settings=settings))
    b = make_plan(quick_config(tmp_path, classes=(285, 665), methods=("deepinversion",), settings=settings))
    assert a.jobs[0].target == b.jobs[0].target and a.jobs[0].key != b.jobs[0].key
    assert a.jobs[0].batch_mates == (a.jobs[0].base_key, a.jobs[1].base_key)
    m = make_plan(quick_config(tmp_path, classes=(285, 967), methods=("maco",), batch_size=2))
    n = make_plan(quick_config(tmp_path, classes=(285, 665), methods=("maco",), batch_size=2))
    assert m.jobs[0].key == n.jobs[0].key  # MACO: the size counts, not who the batch-mate is


def test_changing_batch_size_on_an_existing_store_reruns_the_batched_jobs(tmp_path, monkeypatch):
    from atlas.methods import METHODS
    from atlas.pipeline import Runner

    calls = []

    def fake_run(ctx, cfg, targets, seeds):
        calls.append(len(targets))
        return [fake_visualization(type("J", (), {"key": str((t, s)), "target": t})()) for t, s in zip(targets, seeds)]

    monkeypatch.setattr(METHODS.get("maco"), "run", fake_run)
    monkeypatch.setattr(Runner, "context", lambda self, model: None)
    monkeypatch.setattr(Runner, "store_references", lambda self, jobs: 0)
    cfg1 = quick_config(tmp_path, classes=(285, 967, 665), methods=("maco",), batch_size=1)
    plan1 = make_plan(cfg1)
    assert Runner(cfg1, Store(cfg1.store), progress=False).run(plan1.jobs).done == 3
    cfg2 = replace(cfg1, batch_size=2)
    report = Runner(cfg2, Store(cfg2.store), progress=False).run(make_plan(cfg2).jobs)
    assert report.done == 2 and report.cached == 1 and calls == [1, 1, 1, 2]


def test_seeds_listed_twice_compute_and_show_one_figure(tmp_path):
    cfg, plan, store = _stored(tmp_path, seeds=[0, 0, 1, 0])
    assert [j.seed for j in plan.jobs] == [0, 0, 1, 1] and len({j.key for j in plan.jobs}) == 4
    assert plan.config.seeds == (0, 1)
    render(plan, store, cfg.site)
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert len(manifest["figures"]) == 4 and manifest["seeds"] == [0, 1]
    html = (tmp_path / "site" / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert html.count('data-view="image"') == 2


def _folder_pool(root, files=2):
    from atlas.models.classes import imagenet_classes

    wnids = imagenet_classes()[1]
    for cid in (285, 967):
        d = root / wnids[cid]
        d.mkdir(parents=True, exist_ok=True)
        for i in range(files):
            Image.fromarray(np.full((8, 8, 3), 40 * i + cid % 50, np.uint8)).save(d / f"img{i}.png")
    return root


def test_data_folder_is_keyed_by_its_normalised_path_and_its_contents(tmp_path, monkeypatch):
    pool = _folder_pool(tmp_path / "mixed")
    monkeypatch.chdir(tmp_path)
    keys = {}
    for spelling in ("mixed", "./mixed", "mixed/", str(tmp_path / "mixed"), str(tmp_path / "x" / ".." / "mixed")):
        plan = make_plan(quick_config(tmp_path, classes=(285,), methods=("maco",), data={"pool": spelling}))
        keys[spelling] = plan.jobs[0].key
    assert len(set(keys.values())) == 1, keys
    (pool / "n02124075" / "img0.png").write_bytes((pool / "n02124075" / "img1.png").read_bytes() + b"\0")
    changed = make_plan(quick_config(tmp_path, classes=(285,), methods=("maco",), data={"pool": "mixed"}))
    assert changed.jobs[0].key != keys["mixed"]  # an image re-encoded: other jobs
    fourier = make_plan(quick_config(tmp_path, classes=(285,), methods=("fourier",), data={"pool": "mixed"}))
    assert fourier.jobs[0].data == ()  # methods that use no image are not keyed by the data


def test_without_the_data_folder_a_plan_finds_the_keys_a_run_recorded(tmp_path):
    from atlas.pipeline.datakey import remember

    pool = _folder_pool(tmp_path / "mixed")
    cfg = quick_config(tmp_path, classes=(285,), methods=("maco",), data={"pool": str(pool)})
    here = make_plan(cfg)
    remember(cfg.store, dict(here.jobs[0].data))
    pool.rename(tmp_path / "elsewhere")
    away = make_plan(cfg)
    assert away.jobs[0].key == here.jobs[0].key and away.unknown_data is None
    nowhere = make_plan(replace(cfg, store=str(tmp_path / "other")))
    assert nowhere.unknown_data == os.path.realpath(pool) and nowhere.jobs[0].key != here.jobs[0].key


# ------------------------------------------------------------------------------------ the site's files
def test_render_refuses_a_folder_atlas_did_not_write(tmp_path, monkeypatch, capsys):
    from atlas.cli import main

    cfg, plan, store = _stored(tmp_path)
    mine = tmp_path / "homepage"
    mine.mkdir()
    (mine / "index.html").write_text("<p>my own page</p>")
    (mine / "style.css").write_text("body { color: red }")
    with pytest.raises(AtlasError, match="did not write"):
        render(plan, store, mine)
    assert (mine / "index.html").read_text() == "<p>my own page</p>" and len(list(mine.iterdir())) == 2
    monkeypatch.chdir(mine)
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = [285, 967]\nmethods = ["fourier"]\nbatch_sizes = {{}}\nstore = "{cfg.store}"\n'
                    f'[settings.fourier]\nsteps = 2\ncrops = 1\n[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\n'
                    f'images = 0\nkind_methods = {{}}\n')
    for site in ("", ".", str(mine)):
        assert main(["-q", "render", "--config", str(toml), "--site", site]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("atlas: error:"), err
    assert (mine / "index.html").read_text() == "<p>my own page</p>" and len(list(mine.iterdir())) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    render(plan, store, empty)  # an empty folder is fine
    assert (empty / "index.html").is_file()


def test_render_with_a_mistyped_store_keeps_the_sites_figures(tmp_path, capsys):
    from atlas.cli import main

    cfg, plan, store = _stored(tmp_path)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = [285, 967]\nmethods = ["fourier"]\nbatch_sizes = {{}}\nsite = "{site}"\n'
                    f'[settings.fourier]\nsteps = 2\ncrops = 1\n[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\n'
                    f'images = 0\nkind_methods = {{}}\n')
    assert main(["-q", "render", "--config", str(toml), "--store", str(tmp_path / "stroe")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no finished job" in err[0] and "--store" in err[0]
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert main(["-q", "render", "--config", str(toml), "--store", str(cfg.store)]) == 0


def test_the_renderer_removes_only_files_it_wrote_and_claims_them_before_writing(tmp_path, monkeypatch):
    from atlas.sitegen import writer

    cfg, plan, store = _stored(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    calls = {"n": 0}
    real = writer.write_if_changed

    def killed(path, data, made=None):  # the render dies after a few files
        calls["n"] += 1
        if calls["n"] > 5 and path.name != writer.RECORD:
            raise KeyboardInterrupt
        return real(path, data, made)

    monkeypatch.setattr(writer, "write_if_changed", killed)
    with pytest.raises(KeyboardInterrupt):
        render(plan, store, site)
    monkeypatch.undo()
    record = json.loads((site / writer.RECORD).read_text())["files"]
    assert all(p.relative_to(site).as_posix() in record for p in site.rglob("*") if p.is_file()
               and p.name != writer.RECORD)
    (site / "notes.txt").write_text("mine")
    render(plan, store, site)  # the half-written site is atlas's: the render completes
    smaller = make_plan(replace(cfg, classes=(285,)))
    counts = render(smaller, store, site)  # a render removes nothing it published: only atlas prune does
    assert counts["removed"] == 0 and counts["kept"] > 0
    from atlas.sitegen.prune import prune

    assert len(prune(smaller, store, site)) == counts["kept"]  # exactly the files of its record, not notes.txt
    assert (site / "notes.txt").read_text() == "mine" and check_site(site) == []


def test_zero_byte_thumbnail_fails_check_and_is_written_again(tmp_path, capsys):
    from atlas.cli import main

    cfg, plan, store = _stored(tmp_path)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    thumb = next(site.rglob("*-thumb.webp"))
    good = thumb.read_bytes()
    thumb.write_bytes(b"")
    assert main(["-q", "check", "--site", str(site)]) == 1
    out = capsys.readouterr().out
    assert "empty file" in out and thumb.relative_to(site).as_posix() in out
    render(plan, store, cfg.site)
    assert thumb.read_bytes() == good and check_site(site) == []
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF  # same size, rewritten: not the file the renderer wrote
    thumb.write_bytes(bytes(data))
    render(plan, store, cfg.site)
    assert thumb.read_bytes() == good


@pytest.mark.parametrize("name", ["manifest.json", "search.json", ".atlas-files.json"])
@pytest.mark.parametrize("content", [b"null", b"[]", b'{"figures": [1]}', b'{"patterns": {}}', b"\xff", b"[" * 100000])
def test_check_reports_damaged_site_records_in_one_line_each(tmp_path, name, content):
    cfg, plan, store = _stored(tmp_path)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    (site / name).write_bytes(content)
    problems = check_site(site)
    mine = [p for p in problems if p.startswith(name)]
    assert problems and len(mine) <= 2 and len(problems) <= 2, problems
    render(plan, store, cfg.site)
    assert check_site(site) == []


def test_site_config_hash_does_not_change_with_the_output_folders(tmp_path, monkeypatch):
    from atlas.sitegen.context import site_config_hash

    monkeypatch.chdir(tmp_path)
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    same = [replace(cfg, store="a", site="b"), replace(cfg, store=str(tmp_path / "elsewhere"), site="/tmp/s"),
            replace(cfg, data=replace(cfg.data, pool="bundled"))]
    assert len({site_config_hash(c) for c in [cfg, *same]}) == 1
    assert site_config_hash(replace(cfg, data=replace(cfg.data, pool="./d/"))) == site_config_hash(
        replace(cfg, data=replace(cfg.data, pool=str(tmp_path / "d"))))
    assert site_config_hash(replace(cfg, seeds=(1,))) != site_config_hash(cfg)


def test_a_damaged_stage_or_metric_result_is_warned_about_not_silently_dropped(tmp_path, caplog):
    """A garbled reference-thumbnail stage costs the class page its real images only with a warning that
    says how to get them back (the next run recomputes them); a damaged metric result likewise names
    ``atlas metrics``. Nothing crashes."""
    from atlas.metrics.results import read_result, write_result
    from atlas.pipeline.references import STAGE, class_reference_files, reference_key
    from atlas.config import stable_hash

    cfg, plan, store = _stored(tmp_path)
    key = stable_hash(reference_key(cfg, 285), length=20)
    store.put_stage(STAGE, key, {"00.webp": b"RIFF....WEBP", "01.webp": b"RIFF....WEBP"})
    assert len(class_reference_files(cfg, store, 285)) == 2
    (store.stage_dir(STAGE, key) / "meta.json").write_bytes(b'{"files": "garbled"')
    with caplog.at_level(logging.WARNING):
        assert class_reference_files(cfg, store, 285) == []
        render(plan, store, cfg.site)
    assert [m for m in _warnings(caplog) if STAGE in m and "atlas run" in m]
    write_result(store, "r1", {"kind": "class", "cells": {}})
    (store.metrics_dir / "results" / "r1.json").write_text("[]")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read_result(store, "r1") is None
    assert [m for m in _warnings(caplog) if "r1" in m and "atlas metrics" in m]


def test_job_records_read_by_several_processes_are_those_one_process_reads_with_warnings_and_stamps(
        tmp_path, caplog, monkeypatch):
    """A large site's gather reads the jobs' records in forked processes: the same records as one process
    reads, the warnings of a damaged one logged here, the folders they verified stamped here."""
    import time

    from atlas.pipeline import store as store_mod
    from atlas.sitegen.figures import read_metas

    cfg, plan, store = _stored(tmp_path, n_classes=4)
    keys = [job.key for job in plan.jobs]
    assert len(keys) >= 2
    bad = keys[-1]  # in the last share: read by a forked process
    meta = store.job_dir(bad) / "meta.json"
    meta.write_bytes(meta.read_bytes()[:-5])
    monkeypatch.setattr(store_mod.Stamps, "RACY", 0.0)
    time.sleep(0.05)
    with store.stamped():
        with caplog.at_level(logging.WARNING):
            many = read_metas(store, keys, workers=2, min_jobs=0)
        stamped = dict(store.stamps.new)
    one = {k: store.meta(k, verify=True) for k in keys}
    assert many == one and many[bad] is None and all(many[k] is not None for k in keys if k != bad)
    assert any(bad in m and "treated as missing" in m for m in _warnings(caplog))
    assert set(stamped) == {f"jobs/{k}" for k in keys if k != bad}


def test_a_copied_store_file_is_an_independent_file_also_where_the_kernel_cannot_copy(tmp_path, monkeypatch):
    import errno
    import os

    from atlas.atomic import atomic_copy

    src = tmp_path / "image.png"
    src.write_bytes(bytes(range(256)) * 5000)
    for broken in (False, True):
        if broken:  # another file system on an old kernel: read and written instead
            def refuse(*a, **k):
                raise OSError(errno.EXDEV, "cross-device")

            monkeypatch.setattr(os, "copy_file_range", refuse)
        out = tmp_path / f"copy-{broken}.png"
        assert atomic_copy(src, out) == src.stat().st_size and out.read_bytes() == src.read_bytes()
        assert out.stat().st_ino != src.stat().st_ino and out.stat().st_nlink == 1
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    src.write_bytes(b"changed")  # the store's file replaced: the copies keep their bytes
    assert (tmp_path / "copy-False.png").read_bytes()[:256] == bytes(range(256))
