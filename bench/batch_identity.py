"""Does a job's image depend on its batch? (EfficientNet-Lite0, the demo's settings by default.)

    python bench/batch_identity.py [--methods maco,fourier] [--steps 48] [--device cpu]

For each method, one class target A (seed 5) is optimised five ways: alone, alone again, batched with B
([A, B]), batched with C ([A, C]) and second in the batch ([B, A]). Prints JSON with, for each pair, the mean
absolute difference of A's image (in 1/255) and whether its PNG bytes are identical. It answers which part of
a batch must be in a job's key (``atlas/pipeline/jobs.py``): at batch size 1 vs 2 the images differ (batched
kernels round differently, NAdam at lr 1.0 grows it), while the batch-mates' identity and A's position
change nothing - so the key holds the batch size (and, for DeepInversion, whose batch statistics couple
the targets, the batch-mates themselves).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, setup_threads  # noqa: E402

from atlas.config import DataConfig, demo_preset  # noqa: E402
from atlas.data import open_pool  # noqa: E402
from atlas.methods import METHODS, RunContext  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.png import png_bytes  # noqa: E402
from atlas.targets import Target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="maco,fourier")
    ap.add_argument("--steps", type=int, default=None, help="default: the demo preset's")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    setup_threads()
    model = load_model("efficientnet_lite0", device=args.device)
    cache = Path("/tmp/atlas-bench-cache")
    ctx = RunContext(model=model, data=DataConfig(spectrum_images=16), cache_dir=cache,
                     pool_factory=lambda: open_pool("bundled"))
    demo = demo_preset()
    A, B, C = Target.of_class(285), Target.of_class(967), Target.of_class(872)
    out = {"machine": machine(), "methods": {}}
    for name in args.methods.split(","):
        method = METHODS.get(name)
        settings = dict(demo.method_settings(name))
        if args.steps is not None:
            settings["steps"] = args.steps
        cfg = method.config(settings)

        def image_of_a(targets, seeds):
            vis = method.run(ctx, cfg, targets, seeds)[targets.index(A)]
            return np.asarray(vis.image, dtype=np.float64), png_bytes(vis.image)

        start = time.perf_counter()
        runs = {"alone": image_of_a([A], [5]), "alone again": image_of_a([A], [5]),
                "[A, B]": image_of_a([A, B], [5, 6]), "[A, C]": image_of_a([A, C], [5, 7]),
                "[B, A]": image_of_a([B, A], [6, 5])}

        def compare(x, y):
            return {"mean_abs_diff_255": round(float(np.abs(runs[x][0] - runs[y][0]).mean() * 255), 3),
                    "png_identical": runs[x][1] == runs[y][1]}

        out["methods"][name] = {
            "settings": settings, "seconds": round(time.perf_counter() - start, 1),
            "alone vs alone again": compare("alone", "alone again"),
            "alone vs [A, B]": compare("alone", "[A, B]"),
            "[A, B] vs [A, C]": compare("[A, B]", "[A, C]"),
            "[A, B] vs [B, A]": compare("[A, B]", "[B, A]"),
        }
    emit(out)


if __name__ == "__main__":
    main()
