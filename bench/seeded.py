"""Image-seeded methods (feature accentuation, attribution visualization) vs the raw model, EfficientNet-Lite0.

    python bench/seeded.py [--repeats 2]

One job of each method at the demo preset's settings (chelsea toward its rival) runs with the raw model's
forward+backward *interleaved step by step*: after every optimisation step, one raw fwd+bwd at the loop's
batch (crops / views per step) is timed, and its time is excluded from the job's. Load on a shared machine
therefore slows both alike, and the ratios stay meaningful where plain wall-clock timings swing by several
times within a minute. Printed as JSON (best of ``repeats``):

* ``loop_ratio``: images per second through the optimisation loop / raw fwd+bwd images per second
  (goal >= 0.8; below 1 by the seeded parameterisation, the transforms and the seed's early forward);
* ``pass_equivalents``: the whole job (attributions, masks, metrics included) in raw fwd+bwd images,
  i.e. job seconds / raw seconds per image - divided by ~25 img/s it is the time on an idle 2-core CPU;
* ``lambda_search``: the demo's one-off search costs ``evaluations`` accentuation loops of the same
  size as a job's (counted, not timed).
"""
from __future__ import annotations

import argparse
import statistics
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
from atlas.models import load_model  # noqa: E402
from atlas.targets import Target  # noqa: E402


class Interleaved:
    """``on_step`` callback: times each loop step and one raw fwd+bwd after it."""

    def __init__(self, model, batch: int):
        self.model = model
        self.x = torch.rand(batch, 3, model.input_size, model.input_size, requires_grad=True)
        self.batch = batch
        self.steps, self.raw, self.paused = [], [], 0.0
        self.last = time.perf_counter()

    def __call__(self, step: int) -> None:
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.model(self.x)[:, 0].sum().backward()
        done = time.perf_counter()
        self.raw.append(done - now)
        self.paused += done - now
        self.last = time.perf_counter()

    def raw_per_image(self) -> float:
        return statistics.median(self.raw) / self.batch


def measure(method, ctx, cfg, target, batch: int, seed: int) -> dict:
    meter = Interleaved(ctx.model, batch)
    ctx.on_step = meter
    start = time.perf_counter()
    meter.last = start
    method.run(ctx, cfg, [target], [seed])
    job = time.perf_counter() - start - meter.paused
    ctx.on_step = None
    raw = meter.raw_per_image()
    loop = sum(meter.steps[1:]) / (len(meter.steps) - 1)  # step 0 also holds the set-up before the loop
    return {"loop_ratio": batch * raw / loop, "pass_equivalents": job / raw, "raw_img_per_s": 1 / raw,
            "job_seconds": job}


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
    acfg = acc.config({**demo.method_settings("accentuation"), "lam": 1.0})  # lambda: see lambda_search
    vcfg = av.config(demo.method_settings("attribution_vis"))
    acc.run(ctx, acc.config({**demo.method_settings("accentuation"), "lam": 1.0, "steps": 1}), [target], [0])
    runs = {"accentuation": [], "attribution_vis": []}
    for r in range(args.repeats):
        runs["accentuation"].append(measure(acc, ctx, acfg, target, acfg.crops, r))
        runs["attribution_vis"].append(measure(av, ctx, vcfg, target, vcfg.views, r))

    def best(rows):
        return {"loop_ratio": round(max(x["loop_ratio"] for x in rows), 3),
                "pass_equivalents": round(min(x["pass_equivalents"] for x in rows), 1),
                "raw_img_per_s": [round(x["raw_img_per_s"], 2) for x in rows],
                "job_seconds": [round(x["job_seconds"], 1) for x in rows]}

    a, v = best(runs["accentuation"]), best(runs["attribution_vis"])
    evals = acfg.lambda_iters + 2
    emit({
        "benchmark": "seeded", "model": "efficientnet_lite0", "image_size": 224,
        "accentuation": {"settings": {"steps": acfg.steps, "crops": acfg.crops, "mask_images": acfg.mask_images,
                                      "natural_images": acfg.natural_images},
                         "loop_passes": acfg.steps * acfg.crops, **a},
        "attribution_vis": {"settings": {"steps": vcfg.steps, "views": vcfg.views,
                                         "attribution_steps": vcfg.attribution_steps},
                            "loop_passes": vcfg.steps * vcfg.views, **v},
        "lambda_search": {"evaluations": evals,
                          "pass_equivalents": round(evals * acfg.steps * acfg.crops / a["loop_ratio"], 1)},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
