"""Shards through submitit's real LocalExecutor (there is no SLURM controller here): a 4-shard run stores
what a single process stores; a killed shard is resubmitted and nothing is computed twice; a pre-empted
shard is requeued and resumes. The SLURM side is checked on the sbatch script submitit would submit."""
import json
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import fake_visualization

from atlas.app import install
from atlas.cli import main
from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.pipeline import Runner, Store, make_plan
from atlas.pipeline.cluster import (
    ShardTask,
    make_executor,
    manifests,
    shard_state,
    slurm_parameters,
    submit,
    write_manifest,
)
from atlas.pipeline.estimate import relative_cost
from atlas.pipeline.ledger import completions, read_ledger
from atlas.pipeline.sharding import plan_batches
from atlas.pipeline.status import format_status, status

pytest.importorskip("submitit")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    """Shard processes import this checkout of atlas (submitit starts them with the same environment)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)


def write_config(tmp_path, name, classes, methods, batch_size, steps, extra=""):
    path = tmp_path / f"{name}.toml"
    settings = "".join(f"[settings.{m}]\nsteps = {steps[m]}\ncrops = 1\n" for m in methods)
    path.write_text(
        f'preset = "demo"\nclasses = {list(classes)}\nmethods = {json.dumps(list(methods))}\n'
        f'store = "{tmp_path / name}-store"\nsite = "{tmp_path / name}-site"\nbatch_size = {batch_size}\n'
        f'[data]\nspectrum_images = 4\n[cluster]\ntimeout_min = 30\n'
        f'[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n{extra}{settings}')
    return path


def wait_for(predicate, timeout=600.0, what="condition"):
    start = time.time()
    while time.time() - start < timeout:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def finish(jobs):
    for job in jobs:
        try:
            job.result()
        except Exception:
            pass


def test_four_local_shards_store_what_one_process_stores(tmp_path, capsys):
    toml = write_config(tmp_path, "a", (285, 967, 665, 872), ("maco", "fourier"), 2, {"maco": 4, "fourier": 2})
    cfg = load_config(toml)
    plan = make_plan(cfg)
    single = Store(tmp_path / "single")
    Runner(cfg, single, progress=False).run(plan.jobs)

    assert main(["-q", "submit", "--config", str(toml), "--executor", "local", "--shards", "4", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "4 shard(s), 8 jobs missing" in out and "8 done, 0 pending, 0 failed" in out
    sharded = Store(cfg.store)
    keys = {j.key for j in plan.jobs}
    assert {m["key"] for m in sharded.iter_metas()} == keys == {m["key"] for m in single.iter_metas()}
    for k in keys:  # same batches, same random streams, same device: the same bytes
        assert (sharded.job_dir(k) / "image.png").read_bytes() == (single.job_dir(k) / "image.png").read_bytes()
        assert (sharded.job_dir(k) / "alpha.png").read_bytes() == (single.job_dir(k) / "alpha.png").read_bytes()
    shards = {r["shard"] for r in read_ledger(sharded.root)}
    assert shards == {0, 1, 2, 3} and set(completions(sharded.root).values()) == {1}
    assert main(["-q", "render", "--config", str(toml)]) == 0  # one site from the merged store
    assert (Path(cfg.site) / "index.html").is_file()
    assert main(["-q", "submit", "--config", str(toml), "--executor", "local"]) == 0
    assert "nothing to submit: all 8 jobs" in capsys.readouterr().out


def test_killed_shard_is_resubmitted_and_nothing_is_computed_twice(tmp_path):
    toml = write_config(tmp_path, "k", (285, 967, 665, 872, 985, 657), ("fourier",), 1, {"fourier": 6})
    cfg = load_config(toml)
    store = Store(cfg.store)
    plan = make_plan(cfg)
    batches = plan_batches(plan.jobs, cfg.batch_size)

    def cost(b):
        return relative_cost(b.jobs)

    ex = make_executor("local", Path(cfg.store) / "submitit", cfg.cluster)
    manifest, jobs = submit(cfg, store, batches, 2, ex, "local", cost, setup=install)
    sid = manifest["id"]
    try:
        wait_for(lambda: any(r.get("shard") == 0 for r in read_ledger(store.root)), what="shard 0's first batch")
        pid = shard_state(store, sid, 0)["pid"]
        os.kill(pid, signal.SIGKILL)  # a node failure: no chance to record anything
    finally:
        finish(jobs)
    first = completions(store.root)
    st = status(plan.jobs, store, cfg.batch_size)
    assert 0 < st.pending < len(plan.jobs)
    assert st.shards[0].state == "stopped" and "ended without recording" in st.shards[0].reason
    assert st.shards[1].state == "done" and st.shards[1].done == st.shards[1].jobs
    assert "resubmit" in "\n".join(format_status(st))

    again, jobs = submit(cfg, store, batches, 2, ex, "local", cost, setup=install)
    finish(jobs)
    assert sum(s["jobs"] for s in again["shards"]) == st.pending  # only what was missing
    counts = completions(store.root)
    assert all(store.has(j.key) for j in plan.jobs)
    assert set(counts) == {j.key for j in plan.jobs} and set(counts.values()) == {1}
    assert not set(first) & {k for r in read_ledger(store.root) if r.get("submission") == again["id"]
                             for k in r["keys"]}
    assert [m["id"] for m in manifests(store)] == [sid, again["id"]]
    assert status(plan.jobs, store, cfg.batch_size).pending == 0


def test_preempted_shard_is_requeued_and_resumes(tmp_path):
    toml = write_config(tmp_path, "p", (285, 967, 665), ("fourier",), 1, {"fourier": 6})
    cfg = load_config(toml)
    store = Store(cfg.store)
    plan = make_plan(cfg)
    ex = make_executor("local", Path(cfg.store) / "submitit", cfg.cluster)
    manifest, jobs = submit(cfg, store, plan_batches(plan.jobs, 1), 1, ex, "local", lambda b: 1.0, setup=install)
    try:
        wait_for(lambda: len(list(read_ledger(store.root))) >= 1, what="the first batch")
        os.kill(shard_state(store, manifest["id"], 0)["pid"], signal.SIGUSR2)  # SLURM's pre-emption warning
        assert jobs[0].result()["done"] >= 1
    finally:
        finish(jobs)
    state = shard_state(store, manifest["id"], 0)
    assert state["state"] == "done" and state["attempt"] == 2
    assert all(store.has(j.key) for j in plan.jobs)
    assert set(completions(store.root).values()) == {1}


def test_shard_of_a_changed_config_fails_with_its_reason(tmp_path):
    toml = write_config(tmp_path, "c", (285, 967), ("fourier",), 1, {"fourier": 2})
    cfg = load_config(toml)
    store = Store(cfg.store)
    batches = plan_batches(make_plan(cfg).jobs, 1)
    manifest = write_manifest(store, cfg, [batches], "local", lambda b: 1.0)
    changed = load_config(write_config(tmp_path, "c", (285, 967), ("fourier",), 1, {"fourier": 3}))
    with pytest.raises(AtlasError, match="does not match the configuration"):
        ShardTask(changed, manifest["id"], 0)()
    st = status(make_plan(changed).jobs, store, 1)
    assert st.shards[0].state == "failed" and "does not match" in st.shards[0].reason


def test_status_lists_failures_with_reasons(tmp_path, capsys):
    toml = write_config(tmp_path, "s", (285, 967, 665), ("fourier",), 1, {"fourier": 2})
    cfg = load_config(toml)
    store = Store(cfg.store)
    jobs = make_plan(cfg).jobs
    store.put(jobs[0], fake_visualization(jobs[0]))
    store.put_failure(jobs[1], "loss became NaN or infinite at step 7", 7)
    assert main(["status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "3 jobs: 1 done, 1 pending, 1 failed" in out
    assert "failed efficientnet_lite0/fourier/class-0967/s0: loss became NaN or infinite at step 7" in out


def test_slurm_script_carries_the_cluster_settings(tmp_path):
    from dataclasses import replace

    from submitit.slurm.slurm import _make_sbatch_string

    cfg = load_config(write_config(tmp_path, "q", (285,), ("fourier",), 1, {"fourier": 2}))
    cluster = replace(cfg.cluster, partition="gpu-h100", gpus=1, cpus=12, mem_gb=80, timeout_min=180,
                      account="lab", qos="high", array_parallelism=8)
    script = _make_sbatch_string(command="python -m submitit.core._submit x", folder=str(tmp_path),
                                 map_count=32, **slurm_parameters(cluster, "paper"))
    for line in ("--partition=gpu-h100", "--gpus-per-node=1", "--cpus-per-task=12", "--mem=80GB",
                 "--time=180", "--account=lab", "--qos=high", "--array=0-31%8", "--signal=USR2@120",
                 "--job-name=atlas-paper"):
        assert f"#SBATCH {line}" in script


def test_submit_to_slurm_without_slurm_exits_2_and_writes_nothing(tmp_path, capsys):
    toml = write_config(tmp_path, "n", (285,), ("fourier",), 1, {"fourier": 2})
    assert main(["submit", "--config", str(toml), "--executor", "slurm"]) == 2
    assert "cannot submit to SLURM from this machine" in capsys.readouterr().err
    assert not (tmp_path / "n-store" / "shards").exists()


def test_submit_refuses_while_a_shard_still_runs(tmp_path, capsys):
    toml = write_config(tmp_path, "r", (285, 967), ("fourier",), 1, {"fourier": 2})
    cfg = load_config(toml)
    store = Store(cfg.store)
    manifest = write_manifest(store, cfg, [plan_batches(make_plan(cfg).jobs, 1)], "local", lambda b: 1.0)
    import socket

    state = {"state": "running", "host": socket.gethostname(), "pid": os.getpid(), "attempt": 1}
    (store.root / "shards" / manifest["id"] / "shard-0.json").write_text(json.dumps(state))
    assert main(["submit", "--config", str(toml), "--executor", "local"]) == 2
    assert "may still be running" in capsys.readouterr().err
    assert len(manifests(store)) == 1  # nothing new submitted


def test_submit_refuses_a_batch_that_cannot_fit_the_clusters_gpus_before_submitting(tmp_path, capsys):
    """``[cluster] gpu_memory_gb``: the login node checks the plan's largest batch against the GPUs the
    shards will get (no GPU here: the estimate, as ``atlas run`` checks its own device), one line, exit 2,
    nothing submitted; unset, nothing is checked."""
    from atlas.pipeline.compute import plan_precision
    from atlas.pipeline.memory import check_cluster_memory

    toml = write_config(tmp_path, "m", (285,), ("fourier",), 1, {"fourier": 2})
    toml.write_text(toml.read_text().replace("timeout_min = 30\n", "timeout_min = 30\ngpu_memory_gb = 0.5\n"))
    assert main(["submit", "--config", str(toml), "--executor", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fourier on efficientnet_lite0: 1 target(s) x 1 image(s) per step" in err
    assert "more than the 0.5 GiB of a cluster GPU ([cluster] gpu_memory_gb = 0.5); lower image_size" in err
    assert not (tmp_path / "m-store" / "shards").exists()
    cfg = load_config(toml)
    jobs = make_plan(cfg).jobs
    fits = check_cluster_memory(jobs, 1, 80.0, plan_precision(cfg))
    assert fits.fits and "of 80 GiB (a cluster GPU ([cluster] gpu_memory_gb = 80))" in fits.line()
    half = check_cluster_memory(jobs, 1, 80.0, "bf16")
    assert half.need.bytes < fits.need.bytes  # bf16 autocast keeps activations at half the bytes
    assert check_cluster_memory(jobs, 1, None, "fp32") is None
