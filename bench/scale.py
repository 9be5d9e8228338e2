"""Scale rehearsal: the whole pipeline on many classes of EfficientNet-Lite0 with real jobs, stage by stage.

    python bench/scale.py [--classes 100,1000] [--steps 8] [--workdir DIR] [--keep]
    python bench/scale.py --rows DIR/row-100.json,DIR/row-1000.json     # growth of rows measured before

For each class count N: plan, run, metrics (with t-SNE), render, ``atlas check`` and the index page opened
in Chromium, on a configuration at the cheapest settings that still optimise - MACO and Fourier,
``steps`` steps of 1 crop from a 128-px image, 16 targets per batch, no concepts, neurons, whole layers
or image-seeded targets; metrics with 2 real images per class where the pool has them (the bundled pool:
the six demo classes). The stages run in three fresh child processes per N (plan+run, metrics,
render+check+browser; the later ones plan again, untimed), so that each stage's peak memory is its own
and each picks up the code as it is when it starts. Prints JSON: per N and stage the wall seconds, the
CPU seconds (user + system of the process and its waited-for children: ``atlas check``, the render's
workers, Chromium), both per class, the peak resident memory (MiB, sampled every 0.1 s) and the load
average; per stage the growth from the smallest to the largest N divided by the growth in classes, on
CPU seconds (``growth_over_linear``: 1.0 is linear; well above 1 means something grows faster than the
number of classes; on a shared machine wall seconds measure the neighbours, so the wall figure is
``wall_growth_over_linear``). Each N's row is also written to ``DIR/row-N.json``; ``--rows`` recomputes
the growth from such files (a row may hold a partial run stage, ``"jobs_done"`` of its jobs: its growth
is then taken per job).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Sampler:
    """Peak RSS of this process (and its children's own peaks) during a stage."""

    def __init__(self):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mib())
            self._stop.wait(0.1)

    def __enter__(self):
        self.peak = _rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its waited-for children (``atlas check``'s
    subprocesses, Chromium once closed): on a shared machine the measure of atlas's own work."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def browser_seconds(index: Path) -> dict:
    """Seconds to load the index page in headless Chromium (DOMContentLoaded, then every lazy image
    in view), and how many thumbnails it lists; skipped without Playwright or Chromium."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    if not Path(chromium).exists():
        return {"skipped": "chromium is not installed"}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = b.new_page(viewport={"width": 1280, "height": 900})
        start = time.perf_counter()
        page.goto(index.as_uri(), wait_until="load")
        seconds = time.perf_counter() - start
        thumbs = page.evaluate("document.querySelectorAll('img').length")
        html_kb = index.stat().st_size / 1024
        b.close()
    return {"seconds": round(seconds, 2), "images": thumbs, "index_html_kb": round(html_kb, 1)}


#: The stages, in order, and the child process that runs each group: every group is a fresh process (it
#: plans again, untimed, from the same configuration), so that each stage's peak memory is its own.
GROUPS = (("plan", "run"), ("metrics",), ("render", "check", "browser"))


#: ``--metrics lean``: the metrics judged by the model under study alone (no judges; its own penultimate
#: features stand in for Inception's in FID/KID), two Lite0 passes per FV instead of ~8.5 Lite0-equivalents
#: (Lite1 at 240 px and Lite2 at 260 px as judges, Lite2 as the FID substitute): what fits a shared machine.
LEAN_METRICS = {"judges": [], "substitute": "efficientnet_lite0"}


def child(n: int, steps: int, work: Path, names, metrics: str = "demo") -> dict:
    from common import setup_threads

    setup_threads()
    from atlas.config import config_from_mapping
    from atlas.pipeline import Store, make_plan

    settings = {"steps": steps, "crops": 1, "image_size": 128}
    cfg = config_from_mapping({
        "preset": "demo", "name": f"scale-{n}", "classes": list(range(n)), "methods": ["maco", "fourier"],
        "store": str(work / "store"), "site": str(work / "site"), "batch_size": 16, "batch_sizes": {},
        "settings": {"maco": settings, "fourier": settings},
        "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "layers": [], "kind_methods": {}},
        "metrics": {"real_images": 2, **(LEAN_METRICS if metrics == "lean" else {})},
    })
    stages, out = {}, {"classes": n, "metrics_suite": metrics}

    def timed(name, fn):
        with Sampler() as s:
            start, cpu0 = time.perf_counter(), cpu_seconds()
            result = fn()
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
        stages[name] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                        "per_class_ms": round(1000 * seconds / n, 1), "cpu_per_class_ms": round(1000 * cpu / n, 1),
                        "peak_rss_mib": round(s.peak), "load_average_1min": round(os.getloadavg()[0], 2)}
        print(f"[{n} classes] {name}: {json.dumps(stages[name])}", file=sys.stderr, flush=True)
        return result

    plan = timed("plan", lambda: make_plan(cfg)) if "plan" in names else make_plan(cfg)
    out["jobs"] = len(plan.jobs)
    store = Store(cfg.store)
    if "run" in names:
        from atlas.pipeline import Runner

        timed("run", lambda: Runner(cfg, store, progress=False).run(plan.jobs))
    if "metrics" in names:
        from atlas.metrics import MetricsRunner

        timed("metrics", lambda: MetricsRunner(cfg, store, progress=False).run(plan))
    if "render" in names:
        from atlas.sitegen import render

        timed("render", lambda: render(plan, store, cfg.site))
    if "check" in names:
        from atlas.sitegen.check import check_site

        out["check_problems"] = len(timed("check", lambda: check_site(cfg.site)))
    if "browser" in names:
        out["browser"] = timed("browser", lambda: browser_seconds(Path(cfg.site) / "index.html"))
        out["site_files"] = sum(1 for p in Path(cfg.site).rglob("*") if p.is_file())
    out["stages"] = stages
    return out


def run_n(n: int, steps: int, work: Path, metrics: str = "demo") -> dict:
    """Every stage on ``n`` classes, one child process per group of :data:`GROUPS`."""
    row = {"classes": n, "stages": {}}
    start = time.perf_counter()
    for group in GROUPS:
        cmd = [sys.executable, __file__, "--child", str(n), "--steps", str(steps), "--workdir", str(work),
               "--stages", ",".join(group), "--metrics", metrics]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        if out.returncode != 0:
            raise SystemExit(f"scale run of {n} classes failed in {group} (its stderr is above)")
        part = json.loads(out.stdout.strip().splitlines()[-1])
        row["stages"].update(part.pop("stages"))
        row.update(part)
    row["process_seconds"] = round(time.perf_counter() - start, 1)
    return row


def growth_of(results) -> dict:
    """Per stage: the largest N's figures over the smallest N's, and divided by the growth in classes
    (per job instead where a row's run stage is partial: ``jobs_done`` of ``jobs``)."""
    growth = {}
    if len(results) < 2:
        return growth
    lo, hi = min(results, key=lambda r: r["classes"]), max(results, key=lambda r: r["classes"])
    for stage, s in hi["stages"].items():
        if stage not in lo["stages"]:
            continue
        a = lo["stages"][stage]
        done_lo, done_hi = a.get("jobs_done", lo.get("jobs")), s.get("jobs_done", hi.get("jobs"))
        partial = "jobs_done" in a or "jobs_done" in s
        factor = done_hi / done_lo if partial else hi["classes"] / lo["classes"]
        before, cpu_before = max(a["seconds"], 0.01), max(a["cpu_seconds"], 0.01)
        growth[stage] = {"seconds_ratio": round(s["seconds"] / before, 2),
                         "wall_growth_over_linear": round(s["seconds"] / before / factor, 2),
                         "cpu_seconds_ratio": round(s["cpu_seconds"] / cpu_before, 2),
                         "growth_over_linear": round(s["cpu_seconds"] / cpu_before / factor, 2),
                         "peak_rss_ratio": round(s["peak_rss_mib"] / max(a["peak_rss_mib"], 1), 2),
                         **({"per": "job"} if partial else {})}
    return growth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="100,1000")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stages", default="", help=argparse.SUPPRESS)
    ap.add_argument("--metrics", choices=("demo", "lean"), default="demo",
                    help="demo: the demo's judges and FID substitute; lean: the model under study alone")
    ap.add_argument("--rows", default=None, help="comma-separated row-N.json files: print their growth only")
    args = ap.parse_args()
    if args.rows:
        results = [json.loads(Path(p).read_text()) for p in args.rows.split(",")]
        print(json.dumps({"benchmark": "scale", "results": results, "growth": growth_of(results)}, indent=2))
        return
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, Path(args.workdir), args.stages.split(","), args.metrics)))
        return
    base = Path(args.workdir or tempfile.mkdtemp(prefix="atlas-bench-scale-"))
    results = []
    for n in [int(c) for c in args.classes.split(",")]:
        work = base / f"n{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        row = run_n(n, args.steps, work, args.metrics)
        (base / f"row-{n}.json").write_text(json.dumps(row))
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)  # each N as it finishes
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    growth = growth_of(results)
    from common import machine

    print(json.dumps({"benchmark": "scale", "steps": args.steps, "load_average_1min": round(os.getloadavg()[0], 2),
                      "results": results, "growth": growth, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
