"""Fuzzing damage to a small store and site (issue 21): Hypothesis picks a kind of file, one file of that
kind, a kind of damage (truncated, emptied, JSON of the wrong shape, binary garbage, one flipped bit,
unreadable, deleted) and a command (``run``, ``render``, ``status``, ``plan``, ``check``); every example
must give a documented exit code, no traceback, at most three lines of errors and warnings, leave every
finished job it did not touch as it was, and a later clean run must complete and restore every image
byte for byte. The checks are in ``tests/damage.py``; ``bench/fuzz_damage.py`` runs as many examples as
asked. The tiny atlas is built once per session and copied per example."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from damage import COMMANDS, KINDS_OF_DAMAGE, Chooser, build_base, run_example

#: examples per run of the suite (each costs about 1-3 s; a job recomputed loads Lite0); the benchmark runs more
EXAMPLES = int(os.environ.get("ATLAS_DAMAGE_EXAMPLES", 12))


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("damage-base"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # an example costs seconds: report it, do not shrink it
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_files_cost_one_line_and_no_finished_job(base, data):
    kind = data.draw(st.sampled_from(base.kinds()), label="kind of file")
    rel = data.draw(st.sampled_from(base.files_of(kind)), label="file")
    how = data.draw(st.sampled_from(KINDS_OF_DAMAGE), label="damage")
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    garbage = data.draw(st.binary(min_size=1, max_size=300), label="garbage")
    pick = Chooser(lambda lo, hi: data.draw(st.integers(lo, hi)), lambda seq: data.draw(st.sampled_from(seq)))
    with tempfile.TemporaryDirectory() as work:
        run_example(base, Path(work), rel, how, command, pick, garbage)


def test_the_base_holds_every_kind_of_file(base):
    """The fuzzer can reach every kind of file a store and a site hold."""
    from damage import FILE_KINDS

    assert base.kinds() == [k for k, _ in FILE_KINDS]


@pytest.mark.parametrize("kind", ["job metadata", "ledger", "shard manifest", "site file record", "spectrum cache"])
@pytest.mark.parametrize("how", ["wrong-shape json", "garbage", "unreadable"])
def test_each_kind_of_record_survives_each_kind_of_damage(base, kind, how, tmp_path):
    """The cases the issue met as tracebacks, always (the fuzzer draws them only sometimes)."""
    import random

    rng = random.Random(0)
    files = base.files_of(kind)
    command = {"job metadata": "render", "ledger": "status", "shard manifest": "status",
               "site file record": "render", "spectrum cache": "run"}[kind]
    pick = Chooser(rng.randint, rng.choice)
    run_example(base, tmp_path, files[0], how, command, pick, bytes(rng.randrange(256) for _ in range(64)))
