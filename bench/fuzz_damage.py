"""The damage fuzzer of ``tests/test_fuzz_damage.py``, for as long as you like.

    python bench/fuzz_damage.py [--examples 200] [--seed 0] [--workdir /tmp/atlas-fuzz] [--kind "job metadata"]

Builds the small atlas of ``tests/damage.py`` once (Lite0, two classes, MACO and Fourier in batches of two, a
folder pool, a rendered site, a submission), then for each example copies it, damages one file (truncated,
emptied, JSON of the wrong shape, binary garbage, a flipped bit, unreadable, deleted), runs one command
(run, render, status, plan, check) and checks what the suite checks: a documented exit code, no traceback, at
most three lines of errors and warnings, every untouched finished job unchanged, and a clean run afterwards
that completes and restores every image byte for byte. Prints JSON: examples run, seconds, counts per
(kind of file, damage, command, exit code), and every failure with its reproduction (seed and index).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.app import install  # noqa: E402

install()

from damage import COMMANDS, KINDS_OF_DAMAGE, Chooser, build_base, run_example  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the base atlas is built (default: a temp folder)")
    ap.add_argument("--kind", default=None, help="only this kind of file (see tests/damage.py FILE_KINDS)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="atlas-fuzz-"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    start = time.perf_counter()
    base = build_base(root / "base")
    built = time.perf_counter() - start
    counts: Counter = Counter()
    failures = []
    for i in range(args.examples):
        rng = random.Random(f"{args.seed}-{i}")
        kind = args.kind or rng.choice(base.kinds())
        rel = rng.choice(base.files_of(kind))
        how = rng.choice(KINDS_OF_DAMAGE)
        command = rng.choice(COMMANDS)
        garbage = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        work = root / f"example-{i}"
        work.mkdir()
        try:
            outcome = run_example(base, work, rel, how, command, Chooser(rng.randint, rng.choice), garbage)
            counts[f"{kind} | {how} | {command} | exit {outcome.code}"] += 1
            print(f"example {i}: {kind} | {rel} | {how} | {command} | exit {outcome.code} | ok "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)  # survives a kill
        except Exception as exc:  # noqa: BLE001 - a failure is the result
            failures.append({"example": i, "seed": args.seed, "file": rel, "damage": how, "command": command,
                             "error": "".join(traceback.format_exception(exc)).strip()[-3000:]})
            print(json.dumps(failures[-1], indent=1), file=sys.stderr, flush=True)
            counts[f"{kind} | {how} | {command} | FAILED"] += 1
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"examples": args.examples, "seed": args.seed, "build_seconds": round(built, 1),
                      "seconds": round(time.perf_counter() - start, 1), "failures": failures,
                      "counts": dict(sorted(counts.items()))}, indent=1))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
