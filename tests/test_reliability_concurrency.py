"""Two ``atlas run`` processes on one store at once: both finish, the store is complete and valid."""
import os
import subprocess
import sys
from pathlib import Path

from atlas.config import resolve_config
from atlas.pipeline import Store, make_plan
from atlas.pipeline.ledger import completions

ROOT = Path(__file__).resolve().parents[1]


def test_two_runs_at_once_on_one_store_leave_it_complete_and_valid(tmp_path):
    toml = tmp_path / "atlas.toml"
    toml.write_text(
        'preset = "demo"\nclasses = [285, 967, 665]\nmethods = ["maco", "fourier"]\nbatch_size = 1\n'
        f'store = "{tmp_path}/store"\nsite = "{tmp_path}/site"\n'
        '[settings.maco]\nsteps = 2\ncrops = 1\nimage_size = 64\n'
        '[settings.fourier]\nsteps = 2\ncrops = 1\nimage_size = 64\n'
        '[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "atlas.cli", "-q", "run", "--config", str(toml)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    cfg = resolve_config(None, str(toml))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    names = sorted(d.name for d in store.jobs_dir.iterdir())
    assert names == sorted(j.key for j in plan.jobs)  # every job once, no temp or trash folder
    assert all(store.meta(k, verify=True) is not None for k in names)  # every checksum holds
    assert not [p for p in store.root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith((".tmp-", ".trash-"))]
    assert not store.failed_dir.exists() or not list(store.failed_dir.iterdir())
    stored = completions(store.root)
    assert set(stored) == set(names) and all(1 <= n <= 2 for n in stored.values())
