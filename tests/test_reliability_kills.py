"""Kill-and-rerun: a tiny build SIGKILLed at >= 12 random moments, then rerun, equals an uninterrupted one.

Every kill costs a process start (imports, plan, model load: most of the test's time), so the count is the
test's time budget (20 kills took 226 s on an idle 2-core machine; the suite's whole budget is 15 min). So
does every resumed build that finishes before its kill: the kill window is the work the build has left
(12 kills: 10 builds finished between them and 178 s with a whole build's window, 7 and 137 s now)."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMP_MARKS = (".tmp-", ".trash-")
KILLS = 12


def _config(folder: Path) -> Path:
    path = folder / "atlas.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'preset = "demo"\nclasses = [285, 967, 665]\nmethods = ["maco", "fourier"]\nbatch_size = 3\n'
        'store = "store"\nsite = "site"\n'  # relative: both builds have the same configuration hash
        '[settings.maco]\nsteps = 3\ncrops = 1\nimage_size = 64\n'
        '[settings.fourier]\nsteps = 3\ncrops = 1\nimage_size = 64\n'
        '[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n[metrics]\nenabled = false\n')
    return path


def _cmd(cfg: Path):
    return [sys.executable, "-m", "atlas.cli", "build", "--config", cfg.name]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _state(store: Path):
    """The finished artifacts of a store (names of files outside temp folders)."""
    if not store.is_dir():
        return frozenset()
    return frozenset(str(p.relative_to(store)) for p in store.rglob("*")
                     if p.is_file() and "ledger" not in p.parts and not any(".tmp" in q or ".trash" in q for q in p.parts))


def _images(store: Path):
    return {d.name: (d / "image.png").read_bytes() for d in (store / "jobs").iterdir()}


#: What may differ between two builds of one configuration: when a job was made and how long it took
#: (the figure pages and manifest.json show both). Everything else must be byte-identical.
_TIMES = [(re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), b"<when>"),
          (re.compile(rb"steps in [0-9.]+ s"), b"steps in <t> s"),
          (re.compile(rb'"seconds": ?[0-9.eE+-]+'), b'"seconds": <t>')]


def _site(site: Path):
    out = {}
    for p in site.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            if p.name in (".atlas-files.json", ".atlas-files.copy.json"):
                # the writer's record holds each file's size, and pages hold timings: compare its file list
                data = json.dumps(sorted(json.loads(data)["files"])).encode()
            elif p.suffix in (".html", ".json"):
                for pattern, repl in _TIMES:
                    data = pattern.sub(repl, data)
            out[str(p.relative_to(site))] = data
    return out


def _temp_files(*roots):
    return [p for r in roots for p in r.rglob("*")
            if p.name.endswith(".tmp") or any(p.name.startswith(m) for m in TEMP_MARKS)]


@pytest.mark.slow
def test_random_sigkills_then_rerun_equal_an_uninterrupted_build(tmp_path):
    ref = _config(tmp_path / "ref")
    with open(tmp_path / "ref-stderr.txt", "wb") as err:  # time the work after start-up, to place kills in it
        proc = subprocess.Popen(_cmd(ref), cwd=ref.parent, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        while (tmp_path / "ref-stderr.txt").stat().st_size == 0 and proc.poll() is None:
            time.sleep(0.05)
        begun = time.monotonic()
        assert proc.wait(timeout=600) == 0
        work = max(0.5, time.monotonic() - begun)
    cfg = _config(tmp_path / "killed")
    a, b = tmp_path / "ref", tmp_path / "killed"
    rnd = random.Random(10)
    kills, rounds, stalled, state = 0, 0, 0, _state(b / "store")
    spent = 0.0  # work time the killed runs of this build got through: a resumed build has less left
    log = tmp_path / "stderr.txt"
    while kills < KILLS:
        with open(log, "wb") as err:
            proc = subprocess.Popen(_cmd(cfg), cwd=cfg.parent, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 120
            while log.stat().st_size == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # imports and model load done: the first progress bar is out
            # a random moment in the work this build has left (a window of the whole build's length made
            # most resumed builds finish before their kill: a process start wasted each time); after kills
            # that cost the run all its work (a step longer than the window), the window moves on by half
            # the build each time, so kills land in every phase of the build
            wait = rnd.uniform(0.05, 0.95) * max(0.25 * work, work - spent) + 0.5 * work * stalled
            time.sleep(wait)
            if proc.poll() is not None:  # the resumed build finished before its kill: check it, start over
                assert proc.returncode == 0
                _assert_same(a, b)
                rounds += 1
                assert rounds <= 30, f"builds keep finishing before their kill ({kills} kills so far)"
                shutil.rmtree(b / "store"), shutil.rmtree(b / "site")
                stalled, state, spent = 0, frozenset(), 0.0  # a fresh build: the kill window starts over
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            spent += wait
            now = _state(b / "store")
            stalled, state = (0 if now != state else stalled + 1), now
    done = subprocess.run(_cmd(cfg), cwd=cfg.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same(a, b)
    print(f"{kills} kills, {rounds} builds completed between kills")


def _assert_same(a: Path, b: Path):
    ref_images, images = _images(a / "store"), _images(b / "store")
    assert len(ref_images) == 6 and set(images) == set(ref_images)
    assert all(images[k] == ref_images[k] for k in ref_images)
    assert _site(b / "site") == _site(a / "site")
    assert _temp_files(a / "store", a / "site", b / "store", b / "site") == []
