import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas.errors import AtlasError
from atlas.pipeline import Runner, Store, make_plan
from atlas.pipeline.estimate import estimate_seconds
from atlas.pipeline.runner import batches
from helpers import fake_visualization, quick_config


def test_plan_lists_model_method_class_seed(tmp_path):
    plan = make_plan(quick_config(tmp_path, seeds=[0, 1]))
    assert len(plan.jobs) == 2 * 2 * 2
    assert len({j.key for j in plan.jobs}) == len(plan.jobs)
    assert {j.target.class_id for j in plan.jobs} == {285, 967}


def test_keys_change_only_with_what_made_the_job(tmp_path):
    a = {(j.method, j.target, j.seed): j.key for j in make_plan(quick_config(tmp_path)).jobs}
    b = {(j.method, j.target, j.seed): j.key for j in make_plan(quick_config(tmp_path)).jobs}
    assert a == b
    changed = quick_config(tmp_path, settings={"maco": {"steps": 3, "crops": 1}, "fourier": {"steps": 2, "crops": 1}})
    c = {(j.method, j.target, j.seed): j.key for j in make_plan(changed).jobs}
    assert all((a[k] != c[k]) == (k[0] == "maco") for k in a)
    other_data = {(j.method, j.target, j.seed): j.key for j in make_plan(quick_config(tmp_path, data={"references": 3})).jobs}
    assert all((a[k] != other_data[k]) == (k[0] == "maco") for k in a)  # Fourier uses no real images


@pytest.mark.parametrize("raw, needle", [
    ({"models": ["resnet5"]}, "did you mean 'resnet50'"),
    ({"methods": ["macco"]}, "did you mean 'maco'"),
    ({"classes": [1000]}, "0-999"),
    ({"classes": ["espreso"]}, "did you mean 'espresso'"),
    ({"settings": {"maco": {"stepz": 2}}}, "did you mean 'steps'"),
    ({"settings": {"vitall": {"steps": 2}}}, "unknown method in [settings]"),
])
def test_bad_plans_are_one_line_errors(tmp_path, raw, needle):
    from atlas.config import config_from_mapping

    with pytest.raises(AtlasError) as err:
        make_plan(config_from_mapping({"preset": "demo", **raw}))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_classes_listed_twice_are_planned_once_in_first_seen_order():
    from atlas.config import config_from_mapping
    from atlas.pipeline.planner import resolve_classes

    cfg = config_from_mapping({"preset": "demo", "classes": ["3-5", 4, "espresso", 967, 2, "0-3"]})
    assert resolve_classes(cfg) == [3, 4, 5, 967, 2, 0, 1]


def test_paper_plan_needs_no_weights_or_data():
    from atlas.config import PRESETS

    plan = make_plan(PRESETS.get("paper")())
    assert len({j.model for j in plan.jobs}) == 5
    assert len({j.target.class_id for j in plan.jobs if j.target.kind == "class"}) == 1000
    assert estimate_seconds(plan.jobs, device="cuda") > 0


def test_batches_keep_groups_apart(tmp_path):
    plan = make_plan(quick_config(tmp_path, classes=(285, 967, 665), seeds=[0, 1]))
    bs = batches(plan.jobs, 2)
    for b in bs:
        assert len({j.batch_group() for j in b}) == 1 and len(b) <= 2
    assert sum(len(b) for b in bs) == len(plan.jobs)


def test_store_is_atomic_and_verifies_checksums(tmp_path):
    plan = make_plan(quick_config(tmp_path))
    store = Store(tmp_path / "store")
    job = plan.jobs[0]
    assert not store.has(job.key)
    folder = store.put(job, fake_visualization(job))
    assert store.has(job.key) and folder.name == job.key
    assert [p.name for p in store.jobs_dir.iterdir()] == [job.key]  # no temp folder left
    meta = store.meta(job.key, verify=True)
    assert meta["method"] == job.method and set(meta["files"]) == {"image.png", "alpha.png"}
    (folder / "image.png").write_bytes(b"truncated")
    assert store.meta(job.key, verify=True) is None  # corruption is detected
    store.put(job, fake_visualization(job))  # and a rewrite replaces the corrupt folder
    assert store.meta(job.key, verify=True) is not None


def test_runner_runs_then_skips(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    first = Runner(cfg, store, progress=False).run(plan.jobs)
    assert first.done == 1 and first.cached == 0
    meta = store.meta(plan.jobs[0].key)
    assert meta["steps_run"] == 2 and meta["scores"]["logit_end"] is not None
    second = Runner(cfg, store, progress=False).run(plan.jobs)
    assert second.done == 0 and second.cached == 1


def test_nan_job_is_recorded_and_the_build_goes_on(tmp_path, monkeypatch):
    from atlas.methods import METHODS
    from atlas.optim.loop import NonFiniteLoss

    cfg = quick_config(tmp_path, classes=(285, 967), methods=("fourier",))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    method = METHODS.get("fourier")
    real = method.run

    def flaky(ctx, c, targets, seeds):
        if any(t.class_id == 967 for t in targets):
            raise NonFiniteLoss(1)
        return real(ctx, c, targets, seeds)

    monkeypatch.setattr(method, "run", flaky)
    report = Runner(cfg, store, progress=False).run(plan.jobs)
    assert report.done == 1 and len(report.failed) == 1
    failure = store.failure(report.failed[0])
    assert failure["step"] == 1 and "NaN" in failure["reason"]


def _build_cmd(cfg_path):
    return [sys.executable, "-m", "atlas.cli", "-q", "build", "--config", str(cfg_path)]


def test_killed_build_resumes_without_recomputing(tmp_path):
    """SIGKILL a build at random moments; the rerun finishes every job, recomputes none that had finished,
    and leaves no temp file in the store or the site."""
    cfg_path = tmp_path / "atlas.toml"
    cfg_path.write_text(f'preset = "demo"\nclasses = [285, 967, 665]\nmethods = ["maco", "fourier"]\n'
                        f'store = "{tmp_path}/store"\n'
                        f'site = "{tmp_path}/site"\n[settings.maco]\nsteps = 3\ncrops = 1\n'
                        f'[settings.fourier]\nsteps = 3\ncrops = 1\n'
                        f'[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\n')  # class jobs only
    rnd = random.Random(0)
    jobs_dir = tmp_path / "store" / "jobs"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for _ in range(3):
        proc = subprocess.Popen(_build_cmd(cfg_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(2.0, 7.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {}
    if jobs_dir.is_dir():
        for d in jobs_dir.iterdir():
            if not d.name.startswith("."):
                finished[d.name] = json.loads((d / "meta.json").read_text())["created"]
    subprocess.run(_build_cmd(cfg_path), env=env, check=True, capture_output=True, timeout=600)
    done = {d.name: json.loads((d / "meta.json").read_text())["created"] for d in jobs_dir.iterdir()}
    assert len(done) == 6
    assert all(done[k] == created for k, created in finished.items())  # nothing finished was recomputed
    leftovers = [p for p in (tmp_path / "store").rglob("*") if ".tmp" in p.name]
    leftovers += [p for p in (tmp_path / "site").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (tmp_path / "site" / "index.html").is_file()


def test_stages_are_cached_and_recomputed_when_corrupt(tmp_path):
    store = Store(tmp_path / "store")
    calls = []

    def compute():
        calls.append(1)
        return {"w.npy": b"abc", "sub/x.txt": b"x"}, {"k": 3}

    d1 = store.cached_stage("craft", {"class": 285, "k": 3}, compute)
    d2 = store.cached_stage("craft", {"class": 285, "k": 3}, compute)
    assert d1 == d2 and len(calls) == 1 and (d1 / "sub" / "x.txt").read_bytes() == b"x"
    assert json.loads((d1 / "meta.json").read_text())["inputs"] == {"class": 285, "k": 3}
    (d1 / "w.npy").write_bytes(b"abd")
    store.cached_stage("craft", {"class": 285, "k": 3}, compute)
    assert len(calls) == 2 and (d1 / "w.npy").read_bytes() == b"abc"
    assert not [p for p in (tmp_path / "store" / "stages" / "craft").iterdir() if p.name.startswith(".")]


def test_listed_neurons_are_planned_for_methods_that_take_them(tmp_path):
    cfg = quick_config(tmp_path, classes=(285,), targets={"neurons": [["blocks.4", 3], ["blocks.5", 7]]})
    plan = make_plan(cfg)
    kinds = sorted((j.method, j.target.kind) for j in plan.jobs)
    assert kinds.count(("maco", "neuron")) == 2 and kinds.count(("fourier", "neuron")) == 2
    assert plan.skipped == []
