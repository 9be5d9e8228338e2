"""CRAFT for one class vs the raw model's forward throughput, on EfficientNet-Lite0 at 224 px.

    python bench/concepts.py [--images 8] [--k 3] [--nb-design 32] [--repeats 2]

CRAFT forwards ``images x 16`` patches (no backward), then fits the NMF, projects the full images on the
bank and estimates Sobol indices with the cheap head (classifier on the spatial mean). Prints JSON: patch
passes per second of the whole CRAFT run, the raw forward images per second at the same batch (64 =
4 images x 16 patches) measured in the same run, their ratio (goal >= 0.8: CRAFT is the forward pass plus
little else), and the seconds of each part. Best of ``repeats`` for each, interleaved.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_forward, setup_threads  # noqa: E402

from atlas.concepts.craft import concept_maps, fit_nmf, head_function, patch_activations, sobol_importance  # noqa: E402
from atlas.config import CraftConfig  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.models import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--nb-design", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0")
    cfg = CraftConfig(images=args.images, nb_design=args.nb_design)
    images = open_pool("bundled").reference_images(285, args.images, 224, seed=0)
    runs, raw = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        acts = patch_activations(model, images, "bn2").numpy()
        t1 = time.perf_counter()
        nmf, _, W, _ = fit_nmf(acts, args.k, cfg)
        t2 = time.perf_counter()
        maps = concept_maps(model, nmf, images, "bn2")
        t3 = time.perf_counter()
        sobol_importance(maps, W, head_function(model, "bn2", images), 285, cfg.nb_design)
        t4 = time.perf_counter()
        runs.append({"patches": t1 - t0, "nmf": t2 - t1, "maps": t3 - t2, "sobol": t4 - t3, "total": t4 - t0})
        raw.append(raw_forward(model, 64, 224))
    best = min(runs, key=lambda r: r["total"])
    passes = acts.shape[0] / best["total"]
    emit({
        "benchmark": "craft", "model": "efficientnet_lite0", "layer": "bn2", "images": args.images,
        "patches": int(acts.shape[0]), "k": args.k, "nb_design": args.nb_design,
        "craft_patch_passes_per_s": round(passes, 2), "raw_fwd_img_per_s": round(max(raw), 2),
        "ratio": round(passes / max(raw), 3), "seconds": {k: round(v, 3) for k, v in best.items()},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
