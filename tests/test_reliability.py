"""Reliability: corrupt artifacts, garbled site records, numerical faults, full or read-only disks,
concurrent runners. See RELIABILITY.md for the table of faults and what the user sees."""
import json
import logging

import pytest

from atlas.pipeline import Runner, Store, make_plan
from atlas.pipeline.references import STAGE
from atlas.sitegen import render
from helpers import quick_config


def _run(cfg):
    plan = make_plan(cfg)
    store = Store(cfg.store)
    return plan, store, Runner(cfg, store, progress=False).run(plan.jobs)


def _fourier_toml(tmp_path, classes=(285, 967), metrics=False):
    """A CLI configuration: Fourier, 2 steps of 1 crop, class targets only (metrics off unless asked)."""
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = {list(classes)}\nmethods = ["fourier"]\nstore = "{tmp_path}/store"\n'
                    f'site = "{tmp_path}/site"\n[settings.fourier]\nsteps = 2\ncrops = 1\n'
                    '[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n'
                    + ("" if metrics else "[metrics]\nenabled = false\n"))
    return toml


def test_corrupt_job_image_and_stage_file_are_detected_and_only_they_recomputed(tmp_path, caplog):
    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",))
    plan, store, first = _run(cfg)
    assert first.done == 2
    render(plan, store, cfg.site)
    bad, good = plan.jobs[0].key, plan.jobs[1].key
    good_meta = (store.job_dir(good) / "meta.json").read_bytes()
    image = store.job_dir(bad) / "image.png"
    original = image.read_bytes()
    image.write_bytes(original[: len(original) // 2])  # truncated
    stage_dirs = [d for d in (store.stages_dir / STAGE).iterdir() if not d.name.startswith(".")]
    thumb = next(p for p in sorted(stage_dirs[0].iterdir()) if p.name != "meta.json")
    thumb_bytes = thumb.read_bytes()
    thumb.write_bytes(b"\x00" + thumb_bytes[1:])  # altered in place, same size
    with caplog.at_level(logging.WARNING):
        again = Runner(cfg, store, progress=False).run(plan.jobs)
    assert again.done == 1 and again.cached == 1  # only the corrupt job ran again
    assert any(bad in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert any(STAGE in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert store.meta(bad, verify=True) is not None and image.read_bytes() == original  # deterministic
    assert (store.job_dir(good) / "meta.json").read_bytes() == good_meta  # untouched
    assert thumb.read_bytes() == thumb_bytes
    render(plan, store, cfg.site)
    figure_png = [p for p in (tmp_path / "site").rglob("*.png") if p.read_bytes() == original]
    assert figure_png, "the site holds the recomputed image"


def test_corrupt_job_is_shown_as_pending_not_as_a_broken_image(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan, store, _ = _run(cfg)
    (store.job_dir(plan.jobs[0].key) / "image.png").write_bytes(b"garbage")
    from atlas.sitegen.context import gather

    site = gather(plan, store)
    figs = [f for f in site.manifest["figures"] if f["key"] == plan.jobs[0].key]
    assert figs[0]["status"] == "pending" and figs[0]["png"] is None


@pytest.mark.parametrize("garble", [b"{not json", b"", b"\xff\xfe\x00"])
def test_garbled_manifest_and_file_record_are_rebuilt_on_render(tmp_path, garble):
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan, store, _ = _run(cfg)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    manifest, record = site / "manifest.json", site / ".atlas-files.json"
    good_manifest, good_record = manifest.read_bytes(), record.read_bytes()
    manifest.write_bytes(garble)
    record.write_bytes(garble)
    counts = render(plan, store, cfg.site)
    assert counts["written"] == 2
    assert manifest.read_bytes() == good_manifest and record.read_bytes() == good_record
    assert json.loads(manifest.read_text())["figures"][0]["status"] == "done"


def test_prune_finds_the_files_of_a_dropped_class_even_when_the_file_record_is_garbled(tmp_path):
    """The record of the files a render made is kept twice; with the first garbled, the copy still tells
    which files of a class no longer in the plan ``atlas prune`` removes (and nothing else is touched)."""
    from dataclasses import replace

    from atlas.sitegen.prune import prune

    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",))
    plan, store, _ = _run(cfg)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    mine = site / "notes.txt"
    mine.write_text("a file of the user's")
    espresso = [p for p in site.rglob("*") if p.is_file() and "967" in p.name]
    assert espresso
    (site / ".atlas-files.json").write_bytes(b"{garbled")
    smaller = make_plan(replace(cfg, classes=(285,)))
    counts = render(smaller, store, cfg.site)
    assert counts["removed"] == 0 and counts["kept"] >= len(espresso)  # a render removes nothing
    assert all(p.exists() for p in espresso)
    goes = prune(smaller, store, cfg.site)
    assert len(goes) >= len(espresso)
    assert not [p for p in espresso if p.exists()]
    assert mine.read_text() == "a file of the user's"
    assert json.loads((site / ".atlas-files.json").read_text())  # rebuilt


def test_garbled_job_metadata_counts_as_missing_and_is_recomputed(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan, store, _ = _run(cfg)
    meta = store.job_dir(plan.jobs[0].key) / "meta.json"
    meta.write_text('{"key": "trunc')
    again = Runner(cfg, store, progress=False).run(plan.jobs)
    assert again.done == 1 and store.meta(plan.jobs[0].key, verify=True) is not None


def _nan_for_planned_seeds(monkeypatch, cfg, method_name="fourier"):
    """Mock a numerical fault: the method diverges (NonFiniteLoss at step 1) on class 967 for the target
    seeds the plan gives (a retry's other seed converges)."""
    from atlas.methods import METHODS
    from atlas.optim.loop import NonFiniteLoss

    method = METHODS.get(method_name)
    real = method.run
    seen = []
    planned = {j.target_seed for j in make_plan(cfg).jobs}

    def diverging(ctx, c, targets, seeds):
        seen.append(list(seeds))
        if any(t.class_id == 967 and s in planned for t, s in zip(targets, seeds)):
            raise NonFiniteLoss(1)
        return real(ctx, c, targets, seeds)

    monkeypatch.setattr(method, "run", diverging)
    return seen


def test_retry_failed_reruns_a_diverged_job_with_another_seed_mock_nan(tmp_path, monkeypatch):
    from atlas.pipeline.runner import RETRY_SEED_OFFSET

    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",))
    seen = _nan_for_planned_seeds(monkeypatch, cfg)
    plan, store, first = _run(cfg)
    assert first.done == 1 and len(first.failed) == 1
    key = first.failed[0]
    job = next(j for j in plan.jobs if j.key == key)
    again = Runner(cfg, store, progress=False).run(plan.jobs)  # a plain rerun meets the same NaN
    assert again.failed == [key] and store.failure(key)["step"] == 1
    retried = Runner(cfg, store, progress=False, retry_failed=True).run(plan.jobs)
    assert retried.done == 1 and retried.failed == [] and retried.cached == 1
    assert [job.target_seed + RETRY_SEED_OFFSET] in seen
    meta = store.meta(key, verify=True)
    assert meta["retry_of"]["target_seed"] == job.target_seed
    assert meta["retry_of"]["retry_seed"] == job.target_seed + RETRY_SEED_OFFSET
    assert "NaN" in meta["retry_of"]["reason"] and meta["retry_of"]["step"] == 1
    assert store.failure(key) is None


def test_retry_failed_cli_flag_mock_nan(tmp_path, monkeypatch, capsys):
    from atlas.cli import main

    _nan_for_planned_seeds(monkeypatch, quick_config(tmp_path, classes=(285, 967), methods=("fourier",)))
    toml = _fourier_toml(tmp_path, metrics=True)
    assert main(["-q", "run", "--config", str(toml)]) == 0
    assert "1 failed" in capsys.readouterr().out
    assert main(["-q", "run", "--config", str(toml), "--retry-failed"]) == 0
    assert "1 jobs run" in capsys.readouterr().out
    assert main(["-q", "status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "1 done job(s) were retried" in out and "retried efficientnet_lite0/fourier" in out, out


def test_build_retry_failed_flag_and_status_mock_nan(tmp_path, monkeypatch, capsys):
    from atlas.cli import main

    _nan_for_planned_seeds(monkeypatch, quick_config(tmp_path, classes=(285, 967), methods=("fourier",)))
    toml = _fourier_toml(tmp_path)
    assert main(["-q", "build", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out
    assert main(["-q", "status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out and "retried" not in out
    assert main(["-q", "build", "--config", str(toml), "--retry-failed"]) == 0
    assert "1 jobs run" in capsys.readouterr().out
    assert main(["-q", "status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "1 done job(s) were retried" in out, out


def test_failed_job_shows_its_reason_on_the_class_page_not_an_image_mock_nan(tmp_path, monkeypatch):
    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",))
    _nan_for_planned_seeds(monkeypatch, cfg)
    plan, store, first = _run(cfg)
    render(plan, store, cfg.site)
    failed_job = next(j for j in plan.jobs if j.key == first.failed[0])
    from atlas.sitegen import paths

    bad = (tmp_path / "site" / paths.class_page(failed_job.model, 967)).read_text()
    good = (tmp_path / "site" / paths.class_page(failed_job.model, 285)).read_text()
    assert 'class="failed" role="note">failed: loss became NaN or infinite at step 1' in bad
    assert 'class="failed"' not in good
    assert bad.count("<img") < good.count("<img")  # no image stands in for the failed figure
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    fig = next(f for f in manifest["figures"] if f["key"] == failed_job.key)
    assert fig["status"] == "failed" and fig["png"] is None and "step 1" in fig["reason"]


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS"])
def test_full_or_read_only_store_is_a_one_line_error_and_the_store_stays_consistent(tmp_path, monkeypatch, code):
    """Simulated (we run as root, where chmod does not stop writes): the second job's files cannot be
    written - ENOSPC while flushing them, or EROFS when its temp folder is made."""
    import errno
    import os
    import pathlib

    from atlas.atomic import DiskError

    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",), batch_size=1)
    plan = make_plan(cfg)
    store = Store(cfg.store)
    err = getattr(errno, code)
    calls = {"n": 0}
    if code == "ENOSPC":
        real_fsync = os.fsync

        def fsync(fd):
            calls["n"] += 1
            if calls["n"] > 5:  # the first job's five files (image, alpha, thumbnail, view, meta) get through
                raise OSError(err, os.strerror(err))
            return real_fsync(fd)

        monkeypatch.setattr("atlas.atomic.os.fsync", fsync)
    else:
        real_mkdir, seen = pathlib.Path.mkdir, set()

        def mkdir(self, *a, **kw):
            if self.name.startswith(".tmp-") and self.parent.name == "jobs":
                seen.add(self.name)
                if len(seen) > 1:
                    raise OSError(err, os.strerror(err), str(self))
            return real_mkdir(self, *a, **kw)

        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    with pytest.raises(DiskError) as info:
        Runner(cfg, store, progress=False).run(plan.jobs)
    msg = str(info.value)
    assert "\n" not in msg and str(cfg.store) in msg and "--store" in msg
    assert ("free some disk space" if code == "ENOSPC" else "make it writable") in msg
    monkeypatch.undo()
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith((".tmp-", ".trash-")) or p.name.endswith(".tmp")]
    assert leftovers == []
    done = [d.name for d in store.jobs_dir.iterdir()]
    assert len(done) == 1 and store.meta(done[0], verify=True) is not None  # complete, or absent
    again = Runner(cfg, store, progress=False).run(plan.jobs)  # space freed: the run finishes the rest
    assert again.done == 1 and again.cached == 1


def test_disk_error_in_a_forked_site_writer_is_one_line(tmp_path, monkeypatch, capsys):
    """A full disk met by a forked site-writer process (large sites) reaches the CLI as the same one-line
    error as in the main process, and leaves no temp file behind."""
    import errno
    import os

    from atlas.cli import main
    from atlas.sitegen import writer

    toml = _fourier_toml(tmp_path)
    assert main(["-q", "run", "--config", str(toml)]) == 0
    capsys.readouterr()
    parent, real_replace = os.getpid(), os.replace

    def full_in_children(src, dst, *a, **kw):
        if os.getpid() != parent:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(writer, "PARALLEL_MIN_ITEMS", 0)
    monkeypatch.setenv("ATLAS_RENDER_WORKERS", "2")
    monkeypatch.setattr(writer.os, "replace", full_in_children)
    code = main(["-q", "render", "--config", str(toml)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("atlas: error: cannot write to ") and "No space left on device" in err[0]
    assert str(tmp_path / "site") in err[0] and "--site" in err[0]
    assert not [p for p in (tmp_path / "site").rglob("*.tmp")]
    monkeypatch.setattr(writer.os, "replace", real_replace)  # space freed: the render completes
    assert main(["-q", "render", "--config", str(toml)]) == 0
    assert main(["-q", "check", "--site", str(tmp_path / "site")]) == 0


def test_disk_errors_reach_the_cli_as_one_line(tmp_path, monkeypatch, capsys):
    import errno
    import os

    from atlas.cli import main

    toml = _fourier_toml(tmp_path, classes=(285,))

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("atlas.atomic.os.fsync", full)
    code = main(["-q", "build", "--config", str(toml)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("atlas: error: cannot write to ")
    assert "No space left on device" in err[-1] and str(tmp_path / "store") in err[-1]
    assert not list((tmp_path / "store" / "jobs").iterdir())


def test_a_render_does_not_checksum_again_a_job_unchanged_since_an_earlier_render_but_sees_any_change(
        tmp_path, monkeypatch, caplog):
    """Store folders a render checksummed are stamped (size, times, inode of each file); the next render
    trusts them while the stamps hold, and checksums again - and shows the job as pending - once a file
    changed, even with the same size; a damaged stamps file counts as none."""
    import time

    from atlas.pipeline import store as store_mod
    from atlas.sitegen.context import gather

    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan, store, _ = _run(cfg)
    key = plan.jobs[0].key
    monkeypatch.setattr(store_mod.Stamps, "RACY", 0.0)  # the job was written a moment ago
    time.sleep(0.05)
    stamps_file = store.cache_dir / "verified.json"

    def status():
        return [f for f in gather(plan, store).manifest["figures"] if f["key"] == key][0]["status"]

    assert status() == "done"
    assert f"jobs/{key}" in json.loads(stamps_file.read_text())["folders"]
    checked = []
    real = store_mod.files_intact
    monkeypatch.setattr(store_mod, "files_intact", lambda folder, *a, **k: checked.append(str(folder)) or real(
        folder, *a, **k))
    assert status() == "done" and not [f for f in checked if key in f]  # trusted: no checksum
    assert store.stamps is None  # only while gathering
    image = store.job_dir(key) / "image.png"
    data = image.read_bytes()
    image.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # one bit, same size
    with caplog.at_level(logging.WARNING):
        assert status() == "pending"
    assert any(key in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    image.write_bytes(data)
    stamps_file.write_bytes(b"\xff{garbage")
    assert status() == "done" and [f for f in checked if key in f]  # checksummed again
