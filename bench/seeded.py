"""Image-seeded methods (feature accentuation, attribution visualization) vs the raw model, EfficientNet-Lite0.

    python bench/seeded.py [--repeats 2]

For each method at the demo preset's settings, one job (chelsea toward its rival) is timed end to end and
its optimisation loop alone; the raw forward+backward throughput at the loop's batch (crops / views per
step) is measured in the same run, interleaved, best of ``repeats``. Printed as JSON:

* ``loop_ratio``: optimisation passes per second of the loop / raw fwd+bwd images per second (the cost
  of the seeded parameterisation, paired crops and the seed's early-layer forward; goal >= 0.8);
* ``job_pass_equivalents``: a whole job (attributions, masks, metrics included) in raw fwd+bwd images,
  i.e. job seconds x raw images per second - machine-independent; divide by the idle 2-core figure
  (~25 img/s) for the demo's time on an idle laptop;
* the same for the one-off lambda search of the demo (``lambda_search``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_throughput, setup_threads  # noqa: E402

from atlas.config import PRESETS  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.methods.accentuation import calibrate_lambda  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.optim import TargetRNG  # noqa: E402
from atlas.seeded import accent  # noqa: E402
from atlas.seeded.images import load_seed_images  # noqa: E402
from atlas.seeded.layers import depth_layer  # noqa: E402
from atlas.targets import Target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    setup_threads()
    demo = PRESETS.get("demo")()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=demo.data, cache_dir=None, pool_factory=lambda: open_pool("bundled"))
    target = Target.of_image("chelsea", 285, toward="rival")
    acc = METHODS.get("accentuation")
    acfg = acc.config({**demo.method_settings("accentuation"), "lam": 1.0})
    av = METHODS.get("attribution_vis")
    vcfg = av.config(demo.method_settings("attribution_vis"))
    layer = depth_layer(model, acfg.reg_depth)
    seeds, _ = load_seed_images(ctx.pool, [target], acfg.image_size)
    acc.run(ctx, acc.config({**acfg.__dict__, "steps": 1}), [target], [0])  # warm-up
    rows = {"accentuation": [], "accentuation_loop": [], "attribution_vis": [], "raw_acc": [], "raw_av": []}
    for r in range(args.repeats):
        t = time.perf_counter()
        acc.run(ctx, acfg, [target], [r])
        rows["accentuation"].append(time.perf_counter() - t)
        t = time.perf_counter()
        accent.accentuate(model, seeds, [282], layer, 1.0, acfg.steps, TargetRNG([r]), crops=acfg.crops)
        rows["accentuation_loop"].append(time.perf_counter() - t)
        rows["raw_acc"].append(raw_throughput(model, acfg.crops, 224, seconds=4.0))
        t = time.perf_counter()
        av.run(ctx, vcfg, [target], [r])
        rows["attribution_vis"].append(time.perf_counter() - t)
        rows["raw_av"].append(raw_throughput(model, vcfg.views, 224, seconds=4.0))
    search_cfg = acc.config(demo.method_settings("accentuation"))
    t = time.perf_counter()
    choice = calibrate_lambda(ctx, search_cfg, layer)
    search_s = time.perf_counter() - t
    raw_acc, raw_av = max(rows["raw_acc"]), max(rows["raw_av"])
    loop_s = min(rows["accentuation_loop"])
    emit({
        "benchmark": "seeded", "model": "efficientnet_lite0", "image_size": 224,
        "accentuation": {
            "settings": {"steps": acfg.steps, "crops": acfg.crops, "mask_images": acfg.mask_images,
                         "natural_images": acfg.natural_images},
            "job_seconds": round(min(rows["accentuation"]), 2), "loop_seconds": round(loop_s, 2),
            "raw_fwd_bwd_img_per_s": round(raw_acc, 2),
            "loop_ratio": round(acfg.steps * acfg.crops / loop_s / raw_acc, 3),
            "job_pass_equivalents": round(min(rows["accentuation"]) * raw_acc, 1),
        },
        "lambda_search": {"seconds": round(search_s, 2), "pass_equivalents": round(search_s * raw_acc, 1),
                          "evaluations": len(choice.evaluations), "lambda": choice.lam},
        "attribution_vis": {
            "settings": {"steps": vcfg.steps, "views": vcfg.views, "attribution_steps": vcfg.attribution_steps},
            "job_seconds": round(min(rows["attribution_vis"]), 2), "raw_fwd_bwd_img_per_s": round(raw_av, 2),
            "job_pass_equivalents": round(min(rows["attribution_vis"]) * raw_av, 1),
            "nominal_passes": vcfg.steps * vcfg.views + vcfg.attribution_steps,
        },
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
