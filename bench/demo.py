"""The demo build, timed stage by stage and counted in raw passes, so machines of different speeds compare.

    python bench/demo.py [--workdir DIR] [--keep] [--raw-seconds 6]

Builds the demo (``python build.py``'s ``atlas build``, the ``demo`` preset) into a fresh store and site
under ``--workdir`` (a new temporary folder by default, removed afterwards unless ``--keep``), in this
process, then measures the raw EfficientNet-Lite0 forward+backward throughput at batch 4 (224 px) right
before and right after the build. The raw pass is the model as its library runs it, in a plain process of
its own (atlas's BatchNorm fold, ``atlas.models.fold``, off; glibc's allocator as it comes,
``atlas.allocator`` not applied): the yardstick measures the machine, and what atlas does faster than the
plain model (the folded copy the methods run, the freed memory it keeps) counts for the build. Prints JSON:

* ``seconds``: the whole build and its phases (``import`` of atlas and torch, ``plan``, ``run``,
  ``metrics``, ``render``), every progress stage inside them (``stages``: one entry per bar, e.g.
  ``maco · efficientnet_lite0``, ``CRAFT · efficientnet_lite0``, ``metrics · Lite2 (...)``; nested stages
  such as the MACO spectrum are listed with ``depth`` 1 and are part of their parent's seconds), and the
  model loads (``model_loads``: how many, which, their seconds);
* ``raw_fwd_bwd_img_per_s``: the raw throughput (before, after, and their mean), and ``folded`` the same
  pass through the BatchNorm-folded copy (before, after);
* ``raw_pass_equivalents`` = build seconds x mean raw img/s: the build's cost in raw forward+backward
  passes at batch 4, which is what carries over between machines (goal, issue 20: <= 8 000). The same
  product per phase and stage says where the passes go.
"""
from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from common import machine, setup_threads  # noqa: E402  (installs the composition root)

import atlas.cli as cli  # noqa: E402
import atlas.models as models_pkg  # noqa: E402
import atlas.pipeline.runner as runner_mod  # noqa: E402
from atlas import progress  # noqa: E402

_IMPORT_S = time.perf_counter() - _T0


def _timed(phases: dict, name: str, fn):
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
    return wrapper


def raw_throughput(model, batch: int, size: int, seconds: float, fold: bool = False) -> float:
    """Images per second of the raw model's forward + input-gradient backward at ``batch`` (device
    synchronised); ``fold``: through the model's BatchNorm-folded copy instead of the model itself."""
    model.fold_batchnorm = fold
    x = torch.rand(batch, 3, size, size, device=model.device, requires_grad=True)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    for _ in range(2):
        model(x)[:, 0].sum().backward()
    sync()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        model(x)[:, 0].sum().backward()
        n += 1
    sync()
    return n * batch / (time.perf_counter() - start)


def plain_throughput(seconds: float) -> float:
    """:func:`raw_throughput` of the plain model (no fold), in a fresh process whose allocator atlas leaves
    alone (``ATLAS_KEEP_FREED_MEMORY=0``): the machine's yardstick, whatever this process has set."""
    env = dict(os.environ, ATLAS_KEEP_FREED_MEMORY="0")
    out = subprocess.run([sys.executable, __file__, "--yardstick", "--raw-seconds", str(seconds)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def _per_stage(stages, raw: float) -> dict:
    """Raw-pass equivalents of each top-level stage name (a stage that ran twice, e.g. a CRAFT check after
    the jobs, adds up instead of replacing the first)."""
    out: dict = {}
    for s in stages:
        if s["depth"] == 0:
            out[s["stage"]] = out.get(s["stage"], 0.0) + s["seconds"] * raw
    return {k: round(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the store and site")
    ap.add_argument("--raw-seconds", type=float, default=6.0)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--config", default=None, help="a TOML configuration instead of the preset")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes of the build (atlas build --workers); default: as python build.py "
                         "chooses (2 on a CPU with two or more cores, else 1)")
    ap.add_argument("--yardstick", action="store_true", help=argparse.SUPPRESS)  # plain_throughput's child
    args = ap.parse_args()
    if args.yardstick:
        setup_threads()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(raw_throughput(models_pkg.load_model("efficientnet_lite0", device=device), 4, 224, args.raw_seconds))
        return
    if args.workers is None:
        from build import default_workers  # the README's command: the demo as a reader builds it

        chosen = default_workers([])
        args.workers = int(chosen[1]) if chosen else 1
    threads = setup_threads()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="atlas-bench-demo-"))
    store, site = work / "store", work / "site"
    if store.exists() or site.exists():
        raise SystemExit(f"{work} already holds a store or site: the benchmark needs a fresh folder")

    device = "cuda" if torch.cuda.is_available() else "cpu"  # as the build picks it (device = "auto")
    lite0 = models_pkg.load_model("efficientnet_lite0", device=device)
    raw_before = plain_throughput(args.raw_seconds)
    folded_before = raw_throughput(lite0, 4, 224, seconds=args.raw_seconds, fold=True)
    del lite0

    phases: dict = {}
    loads: list = []
    real_load = models_pkg.load_model

    def counting_load(name, *a, **kw):
        start = time.perf_counter()
        handle = real_load(name, *a, **kw)
        loads.append((name, time.perf_counter() - start))
        return handle

    models_pkg.load_model = counting_load
    runner_mod.load_model = counting_load
    for name in ("_plan", "_run", "_metrics", "_render"):
        setattr(cli, name, _timed(phases, name.lstrip("_"), getattr(cli, name)))
    progress.TIMINGS.clear()
    start = time.perf_counter()
    what = ["--config", str(Path(args.config).resolve())] if args.config else ["--preset", args.preset]
    with contextlib.redirect_stdout(sys.stderr):  # the build's own lines; stdout carries the JSON alone
        rc = cli.main(["-q", "build", *what, "--store", str(store), "--site", str(site),
                       "--workers", str(args.workers)])
    build_s = time.perf_counter() - start
    models_pkg.load_model = real_load
    runner_mod.load_model = real_load
    if rc != 0:
        raise SystemExit(f"the demo build failed (exit {rc})")
    stages = [{"stage": d, "seconds": round(s, 2), "depth": depth} for d, s, depth in progress.TIMINGS]

    lite0 = real_load("efficientnet_lite0", device=device)
    raw_after = plain_throughput(args.raw_seconds)
    folded_after = raw_throughput(lite0, 4, 224, seconds=args.raw_seconds, fold=True)
    raw = (raw_before + raw_after) / 2
    files = sum(1 for p in site.rglob("*") if p.is_file())
    jobs = sum(1 for p in (store / "jobs").iterdir() if p.is_dir() and not p.name.startswith(".")) if (store / "jobs").is_dir() else None
    top = sum(s["seconds"] for s in stages if s["depth"] == 0)
    result = {
        "benchmark": "demo", "preset": args.config or args.preset, "workdir": str(work), "threads": threads,
        "workers": args.workers,
        "device": device,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "seconds": {
            "import": round(_IMPORT_S, 2), "build": round(build_s, 2),
            "build_plus_import": round(build_s + _IMPORT_S, 2),
            **{k: round(v, 2) for k, v in phases.items()},
            "stages_top_level": round(top, 2), "outside_stages": round(build_s - top, 2),
        },
        "stages": stages,
        "model_loads": {"count": len(loads), "seconds": round(sum(s for _, s in loads), 2),
                        "models": [n for n, _ in loads]},
        "raw_fwd_bwd_img_per_s": {"batch": 4, "before": round(raw_before, 2), "after": round(raw_after, 2),
                                  "mean": round(raw, 2),
                                  "folded": {"before": round(folded_before, 2), "after": round(folded_after, 2)}},
        "raw_pass_equivalents": {
            "build_plus_import": round((build_s + _IMPORT_S) * raw),
            **{k: round(v * raw) for k, v in phases.items()},
            "stages": _per_stage(stages, raw),
            "goal": 8000,
        },
        "site_files": files, "job_folders": jobs, "machine": machine(),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
