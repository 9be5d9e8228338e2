"""Planning at the presets' scale: ``make_plan`` and the jobs' keys for the demo, lens and paper presets.

    python bench/plan.py [--presets demo,lens,paper] [--cli]

Every command that reads a plan (``plan``, ``status``, ``submit``, ``render``, each shard and worker at
start-up) plans it first, and the paper preset holds 343 350 jobs. Per preset: the seconds of
``make_plan`` (validation, targets, the dedup, binding each job to its batch), of computing every job's
key and base key afterwards (what the store is asked about), and a SHA-256 over all the keys in plan
order (equal before and after a change to the hashing: the store's keys did not move). ``--cli`` also
times ``atlas plan --preset paper`` in a subprocess (with its imports, the store look-ups and the
estimate). Prints JSON. Pure Python: one core, no model.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine  # noqa: E402

from atlas.config import PRESETS  # noqa: E402
from atlas.pipeline import make_plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="demo,lens,paper")
    ap.add_argument("--cli", action="store_true", help="also time `atlas plan --preset paper`")
    args = ap.parse_args()
    rows = {}
    for name in args.presets.split(","):
        cfg = PRESETS.get(name)()
        start = time.perf_counter()
        plan = make_plan(cfg)
        planned = time.perf_counter() - start
        digest = hashlib.sha256()
        for job in plan.jobs:
            digest.update(job.key.encode())
            digest.update(job.base_key.encode())
        keyed = time.perf_counter() - start - planned
        rows[name] = {"jobs": len(plan.jobs), "make_plan_s": round(planned, 2), "keys_s": round(keyed, 2),
                      "keys_sha256": digest.hexdigest()}
    out = {"benchmark": "plan", "machine": machine(), "presets": rows}
    if args.cli:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "atlas.cli", "plan", "--preset", "paper"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out["atlas_plan_paper_s"] = round(time.perf_counter() - start, 1)
    emit(out)


if __name__ == "__main__":
    main()
