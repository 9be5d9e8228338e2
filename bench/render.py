"""Site render benchmark: a synthetic store of many classes x methods x seeds with tiny images.

    python bench/render.py [--classes 1000] [--methods 7] [--seeds 3] [--size 16] [--workdir DIR]

Builds (once, cached in ``--workdir``) a store with one finished job per (class, method, seed) of
synthetic methods, tiny random images and reference thumbnails for every class, then times

* ``gather``: phase 1 (read the store, build every page's data);
* ``first_render``: phase 1 + 2 into an empty site folder;
* ``rerender``: the same again with nothing changed (goal: writes nothing);

and reports the site's files and bytes, the largest class page's HTML (goal < 300 KB), whether every
``<img>`` of a class page is lazy, and - as the machine's own baseline, measured in the same run - the
seconds to write the same number of files with the same bytes with plain ``open().write()``
(``render_vs_raw_writes`` = first render / that). CPU seconds (this process and its forked writers) are
reported next to wall-clock seconds, because the wall clock of a shared machine measures the neighbours
too. Goals (issue 8): full render < 60 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

from atlas.config import config_from_mapping  # noqa: E402
from atlas.methods.base import METHODS, Method, Visualization  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402
from atlas.pipeline.references import STAGE, reference_key, webp_bytes  # noqa: E402
from atlas.sitegen import gather, write_site  # noqa: E402


@dataclass(frozen=True)
class SyntheticConfig:
    steps: int = 256
    lr: float = 1.0
    image_size: int = 224


class Synthetic(Method):
    """A stand-in method (random images): the benchmark measures rendering, not optimisation."""

    Config = SyntheticConfig
    paper = "fel2023maco"
    summary = "A synthetic method of the render benchmark; its images are random."

    def __init__(self, k: int):
        super().__init__(f"synthetic{k}")
        self.title = f"Synthetic {k}"


def make_config(args, work: Path):
    names = []
    for k in range(args.methods):
        m = Synthetic(k)
        if m.name not in METHODS:
            METHODS.add(m.name, m)
        names.append(m.name)
    return config_from_mapping({
        "preset": "demo", "name": "bench-render", "classes": list(range(args.classes)), "methods": names,
        "seeds": list(range(args.seeds)), "store": str(work / "store"), "site": str(work / "site"),
        "settings": {}, "data": {"pool": "bench-synthetic", "references": 8},
    })


def fill_store(cfg, plan, size: int) -> float:
    """Write a finished job for every planned job and reference thumbnails for every class (not timed
    as part of the render; fsync disabled while filling, it is a throw-away store)."""
    store = Store(cfg.store)
    rng = np.random.default_rng(0)
    images = [rng.random((size, size, 3), dtype=np.float32) for _ in range(32)]
    alphas = [rng.random((size, size), dtype=np.float32) for _ in range(32)]
    start = time.perf_counter()
    with mock.patch("os.fsync"):
        for i, job in enumerate(plan.jobs):
            if store.has(job.key):
                continue
            store.put(job, Visualization(target=job.target, image=images[i % 32], alpha=alphas[i % 32],
                                         history=[0.0, 0.5, 1.0], seconds=0.01,
                                         scores={"logit_start": 0.0, "logit_end": 1.0, "prob_end": 0.5,
                                                 "rank_end": 1, "top1": job.target.class_id, "top1_prob": 0.5,
                                                 "top2": 0, "top2_prob": 0.1}))
        thumbs = {f"{k:02d}.webp": webp_bytes(images[k].transpose(2, 0, 1)) for k in range(4)}
        for cid in plan.classes[cfg.models[0]]:
            store.cached_stage(STAGE, reference_key(cfg, cid), lambda: (thumbs, {"count": len(thumbs)}))
    return time.perf_counter() - start


def site_stats(site: Path) -> dict:
    files = [p for p in site.rglob("*") if p.is_file()]
    class_pages = sorted(site.glob("*/class/*.html"))
    sizes = [p.stat().st_size for p in class_pages]
    eager = 0
    for p in class_pages[:50]:
        eager += sum(1 for tag in re.findall(r"<img\b[^>]*>", p.read_text()) if 'loading="lazy"' not in tag)
    return {
        "files": len(files), "bytes": sum(p.stat().st_size for p in files),
        "html_pages": sum(1 for p in files if p.suffix == ".html"),
        "class_page_html_bytes_max": max(sizes) if sizes else 0,
        "class_page_html_bytes_mean": round(sum(sizes) / len(sizes)) if sizes else 0,
        "index_html_bytes": (site / "index.html").stat().st_size,
        "search_index_bytes": (site / "search.json").stat().st_size,
        "manifest_bytes": (site / "manifest.json").stat().st_size,
        "class_page_eager_images": eager,
        "_files": files,
    }


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (the forked site writers)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def raw_writes(files, scratch: Path) -> float:
    """Seconds to write the same files (same sizes) with plain writes: the machine's own baseline."""
    shutil.rmtree(scratch, ignore_errors=True)
    blobs = [(scratch / f"{i // 1000}" / f"{i}.bin", p.stat().st_size) for i, p in enumerate(files)]
    payload = os.urandom(max(s for _, s in blobs) if blobs else 1)
    start = time.perf_counter()
    for path, n in blobs:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(payload[:n])
    seconds = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--methods", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--size", type=int, default=16, help="side of the synthetic images (px)")
    ap.add_argument("--workdir", default="/tmp/atlas-bench-render")
    args = ap.parse_args()
    work = Path(args.workdir)
    cfg = make_config(args, work)
    plan = make_plan(cfg)
    fill_seconds = fill_store(cfg, plan, args.size)
    store, site = Store(cfg.store), Path(cfg.site)
    shutil.rmtree(site, ignore_errors=True)

    start, cpu = time.perf_counter(), time.process_time()
    data = gather(plan, store)
    gather_seconds, gather_cpu = time.perf_counter() - start, time.process_time() - cpu
    del data
    start, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
    first = write_site(gather(plan, store), site)
    first_seconds = time.perf_counter() - start
    first_cpu = time.process_time() - cpu + _children_cpu() - child
    start, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
    again = write_site(gather(plan, store), site)
    again_seconds = time.perf_counter() - start
    again_cpu = time.process_time() - cpu + _children_cpu() - child
    stats = site_stats(site)
    raw = raw_writes(stats.pop("_files"), work / "raw-writes")
    emit({
        "benchmark": "render", "classes": args.classes, "methods": args.methods, "seeds": args.seeds,
        "figures": len(plan.jobs), "image_px": args.size, "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2), "store_fill_seconds": round(fill_seconds, 1),
        "gather_seconds": round(gather_seconds, 2), "gather_cpu_seconds": round(gather_cpu, 2),
        "first_render_seconds": round(first_seconds, 2), "first_render_cpu_seconds": round(first_cpu, 2),
        "first_render_written": first["written"], "rerender_seconds": round(again_seconds, 2),
        "rerender_cpu_seconds": round(again_cpu, 2),
        "rerender_written": again["written"], "rerender_removed": again["removed"],
        "raw_write_seconds": round(raw, 2), "render_vs_raw_writes": round(first_seconds / raw, 1) if raw else None,
        **stats,
        "goals": {"first_render_seconds": "< 60", "class_page_html_bytes_max": "< 300000",
                  "class_page_eager_images": "0", "rerender_written": "0"},
    })


if __name__ == "__main__":
    main()
