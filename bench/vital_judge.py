"""Does Lite0 (self) and Lite2 (an independent judge) see the class in VITAL's images more often than in
MACO's? The check of issue 3, on the demo preset's classes and settings.

    python bench/vital_judge.py [--store store] [--seeds 0]

Runs (or reuses from ``--store``, e.g. the store ``python build.py`` wrote: the job keys are the same) the
demo preset's MACO and VITAL class jobs, then classifies every image with EfficientNet-Lite0 at 224 px and
EfficientNet-Lite2 (the image resized to 260 px). Prints JSON: per method the top-1 rate and the mean
probability of the target class under each model, and the per-class results.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, setup_threads  # noqa: E402

from atlas.config import PRESETS, TargetsConfig, freeze_settings  # noqa: E402
from atlas.methods.base import class_scores  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.pipeline import Runner, Store, make_plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="store")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default="maco,vital")
    ap.add_argument("--vital", default="{}", help="JSON overrides of the demo's vital settings")
    args = ap.parse_args()
    setup_threads()
    cfg = PRESETS.get("demo")()
    settings = {m: dict(kv) for m, kv in cfg.settings}
    settings["vital"] = {**settings.get("vital", {}), **json.loads(args.vital)}
    cfg = replace(cfg, methods=tuple(args.methods.split(",")), seeds=tuple(int(s) for s in args.seeds.split(",")),
                  targets=TargetsConfig(), store=args.store, settings=freeze_settings(settings))
    plan = make_plan(cfg)
    jobs = [j for j in plan.jobs if j.target.kind == "class"]
    store = Store(cfg.store)
    Runner(cfg, store, progress=True).run(jobs)
    judges = {"lite0": load_model("efficientnet_lite0"), "lite2": load_model("efficientnet_lite2")}
    rows = []
    for job in jobs:
        png = store.job_dir(job.key) / "image.png"
        if not png.is_file():
            continue
        img = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        row = {"method": job.method, "class": job.target.class_id, "seed": job.seed}
        for name, model in judges.items():
            s = class_scores(model, img[None], [job.target.class_id])[0]  # resized to the model's input size
            row[f"{name}_top1"] = s["top1"] == job.target.class_id
            row[f"{name}_prob"] = round(s["prob"], 4)
        rows.append(row)
    summary = {}
    for method in cfg.methods:
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {"images": len(mine)}
        for name in judges:
            summary[method][f"{name}_top1_rate"] = round(float(np.mean([r[f"{name}_top1"] for r in mine])), 3)
            summary[method][f"{name}_mean_prob"] = round(float(np.mean([r[f"{name}_prob"] for r in mine])), 3)
    emit({"benchmark": "vital_judge", "classes": list(plan.classes["efficientnet_lite0"]), "summary": summary,
          "settings": {m: dict(cfg.method_settings(m)) for m in cfg.methods}, "images": rows, "machine": machine()})


if __name__ == "__main__":
    main()
