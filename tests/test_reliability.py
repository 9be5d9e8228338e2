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


def test_garbled_job_metadata_counts_as_missing_and_is_recomputed(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan, store, _ = _run(cfg)
    meta = store.job_dir(plan.jobs[0].key) / "meta.json"
    meta.write_text('{"key": "trunc')
    again = Runner(cfg, store, progress=False).run(plan.jobs)
    assert again.done == 1 and store.meta(plan.jobs[0].key, verify=True) is not None
