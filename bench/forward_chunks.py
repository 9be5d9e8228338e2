"""Forward-only work on a CPU: one pass over a large batch against the same batch in chunks (issue 20).

    python bench/forward_chunks.py [--batches 4,8,16,32,64,128] [--layer bn2] [--seconds 3] [--reps 3]

For each batch size B, EfficientNet-Lite0 at 224 px runs forward to ``--layer`` without autograd, timed
for ``--seconds`` and repeated ``--reps`` times alternately (the best rep is reported, as the machine is
noisy): ``whole`` = one pass of B images (``ModelHandle._activations``), ``chunked`` = the same call through
``ModelHandle.activations``, which splits B into chunks of ``CPU_FORWARD_CHUNK``. Then CRAFT's patch
activations of 8 reference crops (64 patches per forward of 4 crops) both ways. Prints JSON: images per
second per batch and way, and the ratio chunked / whole.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, setup_threads  # noqa: E402

import torch  # noqa: E402

from atlas.app import install  # noqa: E402
from atlas.concepts.craft import patch_activations  # noqa: E402
from atlas.models import handle as H  # noqa: E402
from atlas.models import load_model  # noqa: E402


def rate(fn, images: int, seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += images
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="4,8,16,32,64,128")
    ap.add_argument("--layer", default="bn2")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    threads = setup_threads()
    install()
    model = load_model("efficientnet_lite0")
    rows = []
    with torch.no_grad():
        for b in [int(v) for v in args.batches.split(",")]:
            x = torch.rand(b, 3, 224, 224)
            best = {"whole": 0.0, "chunked": 0.0}
            for _ in range(args.reps):
                best["whole"] = max(best["whole"], rate(lambda: model._activations(x, [args.layer]), b, args.seconds))
                best["chunked"] = max(best["chunked"], rate(lambda: model.activations(x, [args.layer]), b,
                                                            args.seconds))
            rows.append({"batch": b, "whole_img_per_s": round(best["whole"], 1),
                         "chunked_img_per_s": round(best["chunked"], 1),
                         "chunked_over_whole": round(best["chunked"] / best["whole"], 2)})
    crops = torch.rand(8, 3, 224, 224)
    craft = {"whole": 0.0, "chunked": 0.0}
    chunk = H.CPU_FORWARD_CHUNK
    for _ in range(args.reps):
        for way in ("whole", "chunked"):
            H.CPU_FORWARD_CHUNK = 10**9 if way == "whole" else chunk
            craft[way] = max(craft[way], rate(lambda: patch_activations(model, crops, args.layer), 128, args.seconds))
    H.CPU_FORWARD_CHUNK = chunk
    emit({"benchmark": "forward_chunks", "model": "efficientnet_lite0", "layer": args.layer, "threads": threads,
          "chunk": chunk, "rows": rows,
          "craft_patches_img_per_s": {k: round(v, 1) for k, v in craft.items()},
          "craft_chunked_over_whole": round(craft["chunked"] / craft["whole"], 2), "machine": machine()})


if __name__ == "__main__":
    main()
