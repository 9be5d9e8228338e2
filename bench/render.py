"""Site render benchmark at the ``lens`` preset's real scale: a synthetic store of every lens job with
224-px images like the ones the methods write, the pages and the assets written as two trees.

    python bench/render.py [--classes N] [--one-folder] [--workdir DIR] [--keep]

The plan is the real ``lens`` preset's (ResNet50, 1000 classes x every registered method, 10 CRAFT concepts
per class visualised by the concept methods, 2 real images per class for the image-seeded methods: 64 000
jobs). The store (built once in ``--workdir``, reused) holds a finished job for each, written by the store's
own ``put``: a 224-px PNG with the statistics of a Fourier-parameterised image (1/f^d noise, d drawn in
[1.0, 1.8], so that the PNGs weigh what the demo's real results do, ~113 kB), its transparency map, the
derived WebP thumbnail and view the store makes, and for image targets the seed, mask and composite. To
spare the disk, jobs with the same synthetic image share its files as hard links (32 distinct images; the
site still gets one copy per figure). Each class has a CRAFT bank of 10 concepts (mosaics and maps) and
8 real-image thumbnails. Then it times

* ``gather``: phase 1 (read the store, build every page's data; on a store whose concept map is not cached
  yet, also its t-SNE);
* ``first_render``: phase 1 + 2 into empty trees, every store folder checksummed (no stamps of an earlier
  render: :class:`atlas.pipeline.store.Stamps`);
* ``rerender``: the same again with nothing changed (goal: writes nothing; the stamps of the first render
  spare it the checksums);

and reports files and bytes of the pages tree and of the assets tree, whether the pages tree fits GitHub
Pages (and with room: under 500 MB and 100 000 files), the HTML sizes, and the seconds per 21 000 figures.
CPU seconds (this process and its forked writers) are reported next to wall-clock seconds, because the wall
clock of a shared machine measures the neighbours too. Goals (issue 19): the pages tree of lens under
500 MB and 100 000 files with the assets apart; a full render under 60 s per 21 000 figures on 2 cores; a
re-render with nothing changed writes nothing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Optional
from unittest import mock

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

from atlas.atomic import SEAL, sealed_json  # noqa: E402
from atlas.concepts.bank import STAGE as CRAFT, VERSION as CRAFT_VERSION, fit_hash  # noqa: E402
from atlas.concepts.layers import concept_layer  # noqa: E402
from atlas.config import PRESETS, SiteConfig  # noqa: E402
from atlas.methods.base import Visualization  # noqa: E402
from atlas.pipeline import Store, make_plan  # noqa: E402
from atlas.pipeline.store import Stamps  # noqa: E402
from atlas.pipeline.references import STAGE as REFS, reference_key  # noqa: E402
from atlas.sitegen import gather, write_site  # noqa: E402
from atlas.sitegen.hosts import HOSTS, Measure  # noqa: E402
from atlas.sitegen.paths import unversioned  # noqa: E402

DISTINCT = 32
FIGURES_PER_GOAL = 21_000  # the goal is stated per 21 000 figures


def synthetic_image(rng, size=224, decay=1.4, contrast=2.0, grey=False) -> np.ndarray:
    """An image with a Fourier-parameterised FV's statistics: 1/f^decay noise, standardised, through a
    sigmoid (the colour channels independent; ``grey``: their mean)."""
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1 / size
    shape = (3, size, size // 2 + 1)
    spec = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / f ** decay
    img = np.fft.irfft2(spec, s=(size, size))
    img = (img - img.mean()) / (img.std() + 1e-8)
    out = 1 / (1 + np.exp(-contrast * img.transpose(1, 2, 0)))
    return out.mean(axis=2) if grey else out.astype(np.float32)


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def lens_config(args, work: Path):
    cfg = PRESETS.get("lens")()
    if args.classes:
        cfg = replace(cfg, classes=tuple(range(args.classes)))
    site = SiteConfig(folder=str(work / "site"), url="https://lab.example.org/lens-atlas/",
                      assets_url=None if args.one_folder else "https://storage.example.org/lens-atlas/",
                      assets_folder=None if args.one_folder else str(work / "site-assets"))
    return replace(cfg, store=str(work / "store"), site=site)


def fill_store(cfg, plan) -> dict:
    """A finished job for every planned job, a CRAFT bank per class and reference thumbnails (not timed as
    part of the render; fsync off, it is a throw-away store). Returns what was made and the seconds."""
    store = Store(cfg.store)
    rng = np.random.default_rng(0)
    images = [synthetic_image(rng, decay=1.0 + 0.8 * i / (DISTINCT - 1)) for i in range(DISTINCT)]
    alphas = [synthetic_image(rng, decay=1.6, contrast=3.0, grey=True) for _ in range(DISTINCT)]
    first: dict = {}  # (image index, kind) -> folder of the job stored for real
    start = time.perf_counter()
    made = 0
    with mock.patch("os.fsync"):
        for i, job in enumerate(plan.jobs):
            if store.has(job.key):
                continue
            k = i % DISTINCT
            extras = {}
            if job.target.kind == "image":
                extras = {"seed": images[(k + 1) % DISTINCT], "mask": alphas[(k + 2) % DISTINCT],
                          "composite": images[(k + 3) % DISTINCT] * alphas[(k + 2) % DISTINCT][..., None]}
            kind = (k, job.target.kind == "image")
            if kind not in first:
                vis = Visualization(target=job.target, image=images[k], alpha=alphas[k], extras=extras,
                                    history=list(np.linspace(0, 1, 200)), seconds=12.0,
                                    scores={"logit_start": 0.0, "logit_end": 9.5, "prob_end": 0.8, "rank_end": 1,
                                            "top1": job.target.class_id or 0, "top1_prob": 0.8, "top2": 1,
                                            "top2_prob": 0.05},
                                    info={"batch": 16, "device": "cuda", "precision": "bf16"})
                first[kind] = store.put(job, vis)
            else:
                _link_job(store, job, first[kind])
            made += 1
        banks = _craft_banks(cfg, plan, store, rng)
        thumbs = {f"{i:02d}.webp": _webp(images[i], 128) for i in range(8)}
        for cid in plan.classes[cfg.models[0]]:
            store.cached_stage(REFS, reference_key(cfg, cid), lambda: (thumbs, {"count": len(thumbs)}))
    return {"jobs_stored": made, "banks": banks, "seconds": time.perf_counter() - start}


def _link_job(store: Store, job, source: Path) -> None:
    """Store ``job`` with the files of the job stored in ``source`` (hard links) and its own metadata."""
    meta = json.loads((source / "meta.json").read_text())
    meta.pop(SEAL, None)
    meta.update(job.spec())
    meta.update({"key": job.key, "config_hash": job.config_hash})
    tmp = store.jobs_dir / f".tmp-{job.key}"
    tmp.mkdir()
    for f in source.iterdir():
        if f.name != "meta.json":
            os.link(f, tmp / f.name)
    (tmp / "meta.json").write_bytes(sealed_json(meta, default=float))  # sealed as Store.put seals it
    os.replace(tmp, store.jobs_dir / job.key)


def _webp(arr, size) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))
    img.thumbnail((size, size))
    img.save(buf, format="WEBP", quality=80, method=4)
    return buf.getvalue()


def _craft_banks(cfg, plan, store, rng) -> int:
    """A stored CRAFT bank (10 concepts: W, U, summary, mosaics, maps) for every class, found by the site
    as the real ones are (their recorded inputs)."""
    model, k = cfg.models[0], cfg.targets.concepts
    if k < 1:
        return 0
    layer = concept_layer(cfg, model)
    fit = fit_hash(cfg, layer)
    mosaics = [png(synthetic_image(rng, size=192, decay=1.3)) for _ in range(4)]
    maps = [png(synthetic_image(rng, size=224, decay=1.2)) for _ in range(4)]
    n = 0
    for cid in plan.classes[model]:
        key = {"model": model, "class": int(cid), "layer": layer, "k": k, "fit": fit, "pool": "bench", "v": CRAFT_VERSION}

        def compute(cid=cid):
            W = np.abs(rng.standard_normal((k, 2048))).astype(np.float32)
            U = np.abs(rng.standard_normal((200, k))).astype(np.float32)
            buf = io.BytesIO()
            np.savez_compressed(buf, W=W, U=U)
            share = (np.arange(k, 0, -1) / np.arange(k, 0, -1).sum() * 100).tolist()
            summary = {"class_id": int(cid), "layer": layer, "k": k, "model": model, "images": 500, "patches": 200,
                       "channels": 2048, "importance": [s / 100 for s in share], "share": share,
                       "wins": list(range(k, 0, -1)), "important": [i < 3 for i in range(k)], "min_wins": 5,
                       "errors": {str(k): 0.31}, "relative_error": 0.31, "thresholds": [0.5] * k,
                       "map_percentile": 90, "map_images": 4, "top_patches": [[[0, 0, 0, 64, 64]] * 16] * k,
                       "settings": {"images": 500, "patch": 64}}
            files = {"bank.npz": buf.getvalue(), "summary.json": json.dumps(summary).encode()}
            for c in range(k):
                files[f"mosaic-{c:02d}.png"] = mosaics[(cid + c) % 4]
                files[f"map-{c:02d}.png"] = maps[(cid + c) % 4]
            return files, {"class_id": int(cid)}

        store.cached_stage(CRAFT, key, compute)
        n += 1
    return n


def _concept_map(cfg, plan, store) -> Optional[float]:
    """Compute the concept map (a t-SNE of every concept of the plan, stored as a stage; the render reads
    it) before the timings, as the site does; its CPU seconds (threads included), or None if it was stored."""
    from atlas.concepts.bank import find_banks
    from atlas.concepts.concept_map import concept_map

    model = cfg.models[0]
    if cfg.targets.concepts < 1:
        return None
    layer = concept_layer(cfg, model)
    banks = find_banks(store, model, fit_hash(cfg, layer, model), plan.classes[model])
    before = len(list((Path(cfg.store) / "stages").rglob("meta.json")))
    cpu = time.process_time()
    concept_map(store, model, {c: bank.W for c, bank in banks.items()})
    made = len(list((Path(cfg.store) / "stages").rglob("meta.json"))) > before
    return round(time.process_time() - cpu, 1) if made else None


def tree_stats(root: Path) -> dict:
    if not root.is_dir():
        return {}
    m = Measure.of(root)
    html = [p for p in root.rglob("*.html")]
    plain_fig = [p.stat().st_size for p in html if "/fig/" in p.as_posix() and not unversioned(p.name)[1]]
    versioned = [p.stat().st_size for p in html if unversioned(p.name)[1]]
    classes = [p.stat().st_size for p in html if "/class/" in p.as_posix()]
    concepts = [p.stat().st_size for p in html if "/concept/" in p.as_posix() and not unversioned(p.name)[1]]
    return {"files": m.files, "folders": m.folders, "bytes": m.bytes, "largest_file": list(m.largest),
            "fullest_folder": list(m.fullest), "html_pages": len(html),
            "figure_page_bytes_mean": round(mean(plain_fig)) if plain_fig else 0,
            "versioned_page_bytes_mean": round(mean(versioned)) if versioned else 0,
            "class_page_bytes_max": max(classes) if classes else 0,
            "class_page_bytes_mean": round(mean(classes)) if classes else 0,
            "concept_page_bytes_mean": round(mean(concepts)) if concepts else 0,
            "fits": [h.name for h in HOSTS if not ((h.total_bytes and m.bytes > h.total_bytes)
                                                   or (h.entries and m.files + (m.folders if h.folders_count else 0) > h.entries)
                                                   or (h.per_folder and m.fullest[0] > h.per_folder)
                                                   or (h.largest_file and m.largest[0] > h.largest_file))]}


def _set_aside(work: Path, folders) -> list:
    """Move the trees of an earlier run (and any set aside by a run that was stopped) out of the way, to be
    removed after the timings: the first render writes into empty trees, and not within minutes of the removal
    of ~450 000 files, which on a file system without a journal (ext4 without one, as on the machine measured)
    makes each new file cost ~4x the system time (freed inodes are skipped, one by one, for 1-5 minutes)."""
    aside = sorted(work.glob(".old-site*"))
    for folder in map(Path, folders):
        if folder.exists():
            target = work / f".old-{folder.name}-{os.getpid()}"
            os.rename(folder, target)
            aside.append(target)
    return aside


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (the forked site writers)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=0, help="only the first N classes (default: all 1000)")
    ap.add_argument("--one-folder", action="store_true", help="no assets_url: one folder, as from file://")
    ap.add_argument("--workdir", default="/tmp/atlas-bench-render")
    ap.add_argument("--keep", action="store_true", help="keep the site (default: removed after measuring)")
    ap.add_argument("--skip-gather", action="store_true",
                    help="no separate timed gather (the first render's gather is timed within it)")
    args = ap.parse_args()
    work = Path(args.workdir)
    cfg = lens_config(args, work)
    plan = make_plan(cfg)
    fill = fill_store(cfg, plan)
    store = Store(cfg.store)
    aside = _set_aside(work, (cfg.site.folder, cfg.site.assets_path))
    bad = [job.key for job in plan.jobs[:50] + plan.jobs[-50:] if not store.has(job.key)]
    if bad:
        raise SystemExit(f"{len(bad)} stored jobs are not readable (e.g. {bad[0]}): remove {cfg.store} and run again")

    stamps = Path(cfg.store) / "cache" / Stamps.FILE  # checksums an earlier render made: none for the timings
    load = [os.getloadavg()[0]]
    start, cpu = time.perf_counter(), time.process_time()
    concept_map_cpu = _concept_map(cfg, plan, store)
    concept_map_seconds = time.perf_counter() - start
    gather_seconds = gather_cpu = None
    if not args.skip_gather:
        stamps.unlink(missing_ok=True)
        start, cpu = time.perf_counter(), time.process_time()
        data = gather(plan, store)
        gather_seconds, gather_cpu = time.perf_counter() - start, time.process_time() - cpu
        del data
        load.append(os.getloadavg()[0])
    stamps.unlink(missing_ok=True)  # a first render checksums every job (it was never rendered)
    start, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
    data = gather(plan, store)
    first_gather_cpu = time.process_time() - cpu
    first = write_site(data)
    del data
    first_seconds = time.perf_counter() - start
    first_cpu = time.process_time() - cpu + _children_cpu() - child
    load.append(os.getloadavg()[0])
    start, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
    again = write_site(gather(plan, store))
    again_seconds = time.perf_counter() - start
    again_cpu = time.process_time() - cpu + _children_cpu() - child
    load.append(os.getloadavg()[0])
    pages = tree_stats(Path(cfg.site.folder))
    assets = tree_stats(Path(cfg.site.assets_path)) if cfg.site.external_assets else {}
    per = FIGURES_PER_GOAL / len(plan.jobs)
    emit({
        "benchmark": "render", "preset": "lens", "classes": len(plan.classes[cfg.models[0]]),
        "methods": len(cfg.methods), "figures": len(plan.jobs), "concept_banks": fill["banks"], "image_px": 224,
        "assets_apart": cfg.site.external_assets, "cpus": os.cpu_count(), "load_average_1min": [round(x, 2) for x in load],
        "store_fill_seconds": round(fill["seconds"], 1), "jobs_stored_now": fill["jobs_stored"],
        "concept_map_seconds": round(concept_map_seconds, 1), "concept_map_cpu_seconds": concept_map_cpu,
        "gather_seconds": gather_seconds and round(gather_seconds, 1),
        "gather_cpu_seconds": gather_cpu and round(gather_cpu, 1),
        "first_render_seconds": round(first_seconds, 1), "first_render_cpu_seconds": round(first_cpu, 1),
        "first_render_gather_cpu_seconds": round(first_gather_cpu, 1),
        "first_render_seconds_per_21000_figures": round(first_seconds * per, 1),
        "first_render_cpu_seconds_per_21000_figures": round(first_cpu * per, 1),
        "first_render_written": first["written"], "rerender_seconds": round(again_seconds, 1),
        "rerender_cpu_seconds": round(again_cpu, 1), "rerender_written": again["written"],
        "pages_tree": pages, "assets_tree": assets,
        "goals": {"pages_tree": "< 500 MB and < 100 000 files (assets apart)",
                  "first_render_seconds_per_21000_figures": "< 60 on 2 cores", "rerender_written": "0"},
    })
    for folder in aside + ([] if args.keep else [Path(cfg.site.folder), Path(cfg.site.assets_path)]):
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
