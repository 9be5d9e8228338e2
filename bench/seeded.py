"""Image-seeded methods (feature accentuation, attribution visualization) vs the raw model, EfficientNet-Lite0.

    python bench/seeded.py [--repeats 2]

At the demo preset's settings, one job of each method (chelsea toward its rival) is timed end to end, the
accentuation loop alone, and the demo's one-off lambda search; the raw model's forward+backward is timed
in the same run at the loop's batch (crops / views per step), interleaved, best of ``repeats``. Every
timing is taken twice: wall clock and process CPU time (``time.process_time``, all threads). On a busy
machine wall-clock throughput swings by several times within seconds, CPU time much less, so the CPU-time
figures are the ones to read there. Printed as JSON:

* ``loop_ratio``: accentuation loop passes per second / raw fwd+bwd images per second (the overhead of the
  seeded parameterisation, the paired crops and the seed's early-layer forward; goal >= 0.8);
* ``pass_equivalents``: a whole job (attributions, masks, metrics included) as a number of raw fwd+bwd
  images - machine-independent; divided by ~25 img/s it gives the time on an idle 2-core CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, setup_threads  # noqa: E402

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


def timed(fn):
    """(wall seconds, CPU seconds) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def raw_seconds_per_image(model, batch: int, iters: int = 6):
    """(wall, CPU) seconds per image of the raw model's forward + backward at ``batch`` (bench/common.py's
    measurement, counted in CPU time as well)."""
    x = torch.rand(batch, 3, 224, 224, device=model.device, requires_grad=True)
    model(x)[:, 0].sum().backward()

    def run():
        for _ in range(iters):
            model(x)[:, 0].sum().backward()

    w, c = timed(run)
    return w / (iters * batch), c / (iters * batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    setup_threads()
    demo = PRESETS.get("demo")()
    model = load_model("efficientnet_lite0")
    ctx = RunContext(model=model, data=demo.data, cache_dir=None, pool_factory=lambda: open_pool("bundled"))
    target = Target.of_image("chelsea", 285, toward="rival")
    acc, av = METHODS.get("accentuation"), METHODS.get("attribution_vis")
    acfg = acc.config({**demo.method_settings("accentuation"), "lam": 1.0})
    vcfg = av.config(demo.method_settings("attribution_vis"))
    layer = depth_layer(model, acfg.reg_depth)
    seeds, _ = load_seed_images(ctx.pool, [target], acfg.image_size)
    acc.run(ctx, acc.config({**demo.method_settings("accentuation"), "lam": 1.0, "steps": 1}), [target], [0])
    best = {}

    def keep(name, value):
        best[name] = tuple(min(a, b) for a, b in zip(best.get(name, value), value))

    for r in range(args.repeats):
        keep("raw_acc", raw_seconds_per_image(model, acfg.crops))
        keep("acc_job", timed(lambda: acc.run(ctx, acfg, [target], [r])))
        keep("acc_loop", timed(lambda: accent.accentuate(model, seeds, [282], layer, 1.0, acfg.steps,
                                                         TargetRNG([r]), crops=acfg.crops)))
        keep("raw_av", raw_seconds_per_image(model, vcfg.views))
        keep("av_job", timed(lambda: av.run(ctx, vcfg, [target], [r])))
    keep("search", timed(lambda: calibrate_lambda(ctx, acc.config(demo.method_settings("accentuation")), layer)))
    keep("raw_acc", raw_seconds_per_image(model, acfg.crops))

    def equiv(job, raw):
        return {"wall": round(best[job][0] / best[raw][0], 1), "cpu": round(best[job][1] / best[raw][1], 1)}

    loop_passes = acfg.steps * acfg.crops
    emit({
        "benchmark": "seeded", "model": "efficientnet_lite0", "image_size": 224,
        "raw_fwd_bwd_img_per_s": {"batch_crops": round(1 / best["raw_acc"][0], 2),
                                  "batch_views": round(1 / best["raw_av"][0], 2)},
        "accentuation": {
            "settings": {"steps": acfg.steps, "crops": acfg.crops, "mask_images": acfg.mask_images,
                         "natural_images": acfg.natural_images},
            "loop_ratio": {"wall": round(loop_passes * best["raw_acc"][0] / best["acc_loop"][0], 3),
                           "cpu": round(loop_passes * best["raw_acc"][1] / best["acc_loop"][1], 3)},
            "pass_equivalents": equiv("acc_job", "raw_acc"), "nominal_passes": loop_passes,
        },
        "lambda_search": {"pass_equivalents": equiv("search", "raw_acc"),
                          "nominal_passes": (acfg.lambda_iters + 2) * acfg.steps * acfg.crops},
        "attribution_vis": {
            "settings": {"steps": vcfg.steps, "views": vcfg.views, "attribution_steps": vcfg.attribution_steps},
            "pass_equivalents": equiv("av_job", "raw_av"),
            "nominal_passes": vcfg.steps * vcfg.views + vcfg.attribution_steps,
        },
        "seconds": {k: [round(v, 2) for v in val] for k, val in best.items()},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
