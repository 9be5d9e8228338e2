"""The long fuzzing run: the test suite's strategies over CLI options and TOML values, many more examples.

    python bench/fuzz.py [--examples 2000] [--seed N] [--verbose]

Runs ``tests/test_fuzz_cli.py`` with ``ATLAS_FUZZ_EXAMPLES`` examples per test and a random seed (printed,
so that a failure can be replayed with ``--seed``): every example must end with an exit status of
``atlas.errors.EXIT_CODES``, at most three lines of output when it fails, no traceback, the tiny store's
finished jobs unchanged, and a clean run afterwards completes. The suite runs 25 examples per test with a
fixed seed; this script explores. ``--verbose`` prints every command line with its status and last line.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000, help="examples per fuzzing test (suite: 25)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: a fresh random seed)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    env = dict(os.environ, ATLAS_FUZZ_EXAMPLES=str(args.examples), ATLAS_FUZZ_SEED=str(seed),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.verbose:
        env["ATLAS_FUZZ_VERBOSE"] = "1"
    print(f"fuzzing with {args.examples} examples per test, seed {seed}", flush=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_fuzz_cli.py")]
    if args.verbose:
        cmd.append("-s")
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    print(f"{'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s (seed {seed})")
    return code


if __name__ == "__main__":
    sys.exit(main())
