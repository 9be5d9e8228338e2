"""Fuzzing the command line and the configuration (Hypothesis): whatever the options and TOML values, atlas
ends with an exit status of ``EXIT_CODES``, at most three lines of output when it fails, never a
traceback, and leaves every finished job of the store as it was; a clean run afterwards completes.

A tiny store (one MACO job of 2 steps at 64 px) is built once for this module; every example runs one
command in this process against it (``plan``, ``status``, ``render``, ``check``, ``serve`` with bad
ports, ``run`` with options that cannot start new work). The number of examples is bounded so that the
suite stays fast; ``python bench/fuzz.py --examples 2000`` runs the same strategies for longer, with a
fresh random seed (``ATLAS_FUZZ_EXAMPLES``, ``ATLAS_FUZZ_SEED``).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from atlas.cli import main
from atlas.config.schema import DEVICE_PATTERN
from atlas.errors import EXIT_CODES

EXAMPLES = int(os.environ.get("ATLAS_FUZZ_EXAMPLES", "0")) or None
SEED = os.environ.get("ATLAS_FUZZ_SEED")
#: Per test: few examples in the suite (each runs one command in this process, ~0.1-1 s), many in bench/fuzz.py.
FUZZ = settings(max_examples=EXAMPLES or 25, deadline=None, database=None, derandomize=SEED is None,
                suppress_health_check=list(HealthCheck), print_blob=True)
maybe_seed = seed(int(SEED)) if SEED is not None else (lambda f: f)


# ------------------------------------------------------------------------------------------ TOML writer
def toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_text(d: dict) -> str:
    """Top-level keys, tables written inline (every shape TOML allows, without section ordering rules)."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in d.items())


# ------------------------------------------------------------------------------------------ strategies
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NUMBERS = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 15, 16, 17, 63, 64, 1023, 1024, 10**6, 10**6 + 1, 10**9, 10**12, 2**31, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-308, 5e-324, 1e308, 0.5, 1.5, 1e-3]),
)
SCALARS = st.one_of(NUMBERS, st.booleans(), TEXT, st.sampled_from(["all", "cpu", "cuda", "maco", "demo", "", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)

#: Keys of a configuration the fuzzer sets (store and site are fuzzed by the option test, inside tmp).
KEYS = [
    ("models",), ("classes",), ("methods",), ("seeds",), ("batch_size",), ("device",), ("title",), ("name",),
    ("download",), ("preset",), ("data", "pool"), ("data", "references"), ("data", "spectrum_images"),
    ("data", "eval_pool"), ("targets", "concepts"), ("targets", "neurons"), ("targets", "images"),
    ("targets", "random_neurons"), ("targets", "top_neurons"), ("targets", "neuron_layer"),
    ("targets", "concept_settings"), ("targets", "kind_methods"), ("metrics", "real_images"),
    ("metrics", "judges"), ("compute", "precision"), ("cluster", "shards"), ("cluster", "mem_gb"),
    ("settings", "maco", "steps"), ("settings", "maco", "crops"), ("settings", "maco", "image_size"),
    ("settings", "maco", "lr"), ("settings", "maco", "crop_size"), ("settings", "maco", "noise"),
    ("settings", "fourier", "decay"), ("settings", "vital", "patch"), ("settings", "vital", "steps"),
    ("settings", "deepinversion", "batch_size"), ("settings", "plugin_inversion", "stages"),
    ("settings", "accentuation", "mask_percentiles"), ("settings", "attribution_vis", "views"),
    ("settings", "maco"), ("settings",), ("targets",), ("data",), ("bogus",), ("settings", "bogus", "steps"),
]


def base_config(store: Path, site: Path) -> dict:
    return {"preset": "demo", "store": str(store), "site": str(site), "classes": [285], "methods": ["maco"],
            "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "layers": [], "kind_methods": {}},
            "data": {"references": 2, "spectrum_images": 4},
            "settings": {"maco": {"steps": 2, "crops": 1, "image_size": 64}}}


def with_value(cfg: dict, path: tuple, value) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    node = out
    for k in path[:-1]:
        nxt = node.get(k)
        nxt = {kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in nxt.items()} if isinstance(nxt, dict) else {}
        node[k] = nxt
        node = nxt
    node[path[-1]] = value
    return out


# ------------------------------------------------------------------------------------------ harness
class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def run_cli(argv):
    """(exit status, output lines) of one command line in this process: stdout, stderr and warnings."""
    out, err, records = io.StringIO(), io.StringIO(), _Records()
    logging.getLogger().addHandler(records)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        logging.getLogger().removeHandler(records)
    text = out.getvalue() + err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()] + records.lines
    return code, lines, text + "\n".join(records.lines)


def fingerprint(store: Path) -> dict:
    """Every file of the store's finished jobs with its content hash."""
    jobs = store / "jobs"
    return {str(p.relative_to(jobs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(jobs.rglob("*")) if p.is_file()}


VERBOSE = bool(os.environ.get("ATLAS_FUZZ_VERBOSE"))


def check_outcome(code, lines, text, argv):
    if VERBOSE:
        print(f"[{code}] {argv!r} -> {lines[-1][:160] if lines else ''}")
    assert code in EXIT_CODES and code != 130, (code, argv, text[-2000:])
    assert "Traceback" not in text, (argv, text[-3000:])
    if code == 1 and "check" in argv and lines and re.fullmatch(r"\d+ problem\(s\) in .*", lines[-1]):
        return  # atlas check lists the problems it found (exit 1), one per line
    if code != 0:
        assert len(lines) <= 3, (argv, lines)
        assert any(ln.startswith("atlas: error: ") for ln in lines), (argv, lines)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A store with one finished MACO job (2 steps, 64 px), its config file and a clean site folder."""
    root = tmp_path_factory.mktemp("fuzz")
    store, site = root / "store", root / "site"
    clean = root / "clean.toml"
    clean.write_text(toml_text(base_config(store, site)), encoding="utf-8")
    code, lines, text = run_cli(["-q", "run", "--config", str(clean)])
    assert code == 0, text
    prints = fingerprint(store)
    assert any(name.endswith("image.png") for name in prints)
    (root / "a_file").write_text("not a folder")
    return {"root": root, "store": store, "site": site, "clean": clean, "prints": prints}


@pytest.fixture
def in_tmp(tiny, monkeypatch):
    """Relative paths and ``~`` land inside the fuzz folder."""
    monkeypatch.chdir(tiny["root"])
    monkeypatch.setenv("HOME", str(tiny["root"] / "home"))
    monkeypatch.delenv("ATLAS_DEBUG", raising=False)
    return tiny


def finish(tiny):
    """A clean run afterwards completes: every finished job is still there, nothing recomputed."""
    assert fingerprint(tiny["store"]) == tiny["prints"]
    code, lines, text = run_cli(["-q", "run", "--config", str(tiny["clean"])])
    assert code == 0 and "0 jobs run, 1 already in the store" in text, text


# ------------------------------------------------------------------------------------------ TOML values
@FUZZ
@maybe_seed
@given(path=st.sampled_from(KEYS), value=st.one_of(NUMBERS, SCALARS, VALUES),
       also=st.one_of(st.none(), st.tuples(st.sampled_from(KEYS), st.one_of(NUMBERS, VALUES))))
def test_any_toml_value_gives_a_plan_or_one_line(in_tmp, path, value, also):
    cfg = with_value(base_config(in_tmp["store"], in_tmp["site"]), path, value)
    if also is not None:
        cfg = with_value(cfg, *also)
    file = in_tmp["root"] / "fuzz.toml"
    file.write_text(toml_text(cfg), encoding="utf-8")
    argv = ["-q", "plan", "--config", str(file)]
    code, lines, text = run_cli(argv)
    check_outcome(code, lines, text, (path, value, also))
    assert fingerprint(in_tmp["store"]) == in_tmp["prints"]


@FUZZ
@maybe_seed
@given(raw=st.one_of(TEXT.map(lambda s: "steps = " + s), st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                     st.text(max_size=60)))
def test_any_config_text_gives_a_plan_or_one_line(in_tmp, raw):
    file = in_tmp["root"] / "raw.toml"
    file.write_bytes(raw.encode("utf-8", "surrogatepass"))
    code, lines, text = run_cli(["-q", "plan", "--config", str(file)])
    check_outcome(code, lines, text, raw)
    assert fingerprint(in_tmp["store"]) == in_tmp["prints"]


# ------------------------------------------------------------------------------------------ options
def _path_option(tiny):
    """Folder names: fresh ones inside the fuzz folder, unicode, ``~``, a file, a path below a file, empty."""
    name = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1,
                   max_size=10).filter(lambda s: s not in (".", ".."))
    return st.one_of(name, name.map(lambda s: "~/" + s), st.sampled_from(["a_file", "a_file/below", "", " ", "~"]),
                     name.map(lambda s: str(tiny["root"] / "made" / s)))


#: Device strings no machine has (a run with them must stop before any work, on any machine).
NO_DEVICE = st.one_of(st.sampled_from(["gpu", "xla", "meta", "cuda:99", "CPU", "cuda:x", "", "cuda:-1", "mps:1"]),
                      TEXT.filter(lambda d: not re.fullmatch(DEVICE_PATTERN, d)))
DEVICES = st.one_of(st.sampled_from(["cpu", "auto", "gpu", "cuda", "cuda:1", "cuda:99", "mps", "xla", "meta", "CPU",
                                     "cuda:-1", "cuda:x", "", " cpu"]), TEXT)
PORTS = st.one_of(st.integers(min_value=-2**40, max_value=-1), st.integers(min_value=65536, max_value=2**70),
                  st.sampled_from(["x", "", "8000.5", "1e3", "-0"]))


@st.composite
def command_lines(draw, tiny):
    """A command with fuzzed options; none can start new work on the tiny store (run only re-checks it)."""
    command = draw(st.sampled_from(["plan", "status", "render", "check", "serve", "run", "build", "submit",
                                    "metrics", "nonsense"]))
    store, site, clean = str(tiny["store"]), str(tiny["root"] / "site-fuzz"), str(tiny["clean"])
    argv = [command]
    if command in ("plan", "status", "render"):
        argv += ["--config", clean]
        if draw(st.booleans()):
            argv += ["--store", draw(_path_option(tiny))]
        else:
            argv += ["--store", store]
        if draw(st.booleans()):
            argv += ["--site", draw(_path_option(tiny))]
        else:
            argv += ["--site", site]
        if draw(st.booleans()):
            argv += ["--device", draw(DEVICES)]
        if draw(st.booleans()):
            argv += ["--data", draw(st.one_of(st.sampled_from(["a_file", "missing", "", "bundled", "~"]), TEXT))]
        if command == "plan" and draw(st.booleans()):
            argv.append("--list")
    elif command == "check":
        argv += ["--site", draw(st.one_of(_path_option(tiny), st.just(str(tiny["store"]))))]
    elif command == "serve":  # never a reachable site with a usable port: it would serve forever
        if draw(st.booleans()):
            argv += ["--port", str(draw(PORTS))]
        else:
            argv += ["--site", draw(_path_option(tiny)), "--port", "0"]
    elif command in ("run", "build", "metrics", "submit"):
        argv += ["--config", clean, "--device", draw(NO_DEVICE)]
        if command == "submit":
            argv += ["--executor", draw(st.sampled_from(["slurm", "local", "pbs", ""]))]
    if draw(st.booleans()):
        argv.insert(0, "-q")
    if draw(st.integers(0, 5)) == 0:  # an option nobody defined, or one without its value
        argv.append(draw(st.sampled_from(["--bogus", "--store", "--port", "-x", "--config", "--preset"])))
    if draw(st.integers(0, 4)) == 0:
        argv += ["--preset", draw(st.one_of(st.sampled_from(["demo", "paper", "dmeo", ""]), TEXT))]
    return argv


def serves_forever(argv) -> bool:
    """``serve`` of a folder holding a site on a usable port (``-0`` or ``0``) would serve until killed: an
    earlier example's ``render --site <name>`` can have made the site it names (the long run met it)."""
    if "serve" not in argv:
        return False
    site = argv[argv.index("--site") + 1] if "--site" in argv[:-1] else "site"
    try:
        return (Path(site).expanduser() / "index.html").is_file()
    except (OSError, ValueError):
        return False


@FUZZ
@maybe_seed
@given(data=st.data())
def test_any_options_give_a_result_or_one_line(in_tmp, data):
    argv = data.draw(command_lines(in_tmp))
    assume(not serves_forever(argv))
    code, lines, text = run_cli(argv)
    check_outcome(code, lines, text, argv)
    assert fingerprint(in_tmp["store"]) == in_tmp["prints"]


def test_a_clean_run_completes_after_the_fuzzing(in_tmp):
    """Runs last in this module (pytest keeps file order): the store serves every finished job as before."""
    finish(in_tmp)
