"""The pool sweep of the dataset and concept examples vs the raw model's forward, on EfficientNet-Lite0.

    python bench/scan.py [--images 24] [--repeats 2]

The demo's questions (issue 20, "forward-only work >= 0.8 of raw forward at the same batch; a scan shared by
everything that needs it"): the top patches of 2 neurons of ``blocks.6`` and of the 16 channels of
``blocks.0`` (top and bottom), and of 18 concept directions at ``bn2``, over the bundled pool's first
``--images`` source images (16 patches each, resized to 224 px). Timed two ways, interleaved, best of
``--repeats``: ``separate`` (one sweep per question, as before :mod:`atlas.concepts.pool_scan`) and
``shared`` (one sweep answering all three, :func:`atlas.data.patches.ask`). Ratio = patch passes per
second of the shared sweep / the raw forward's images per second at the sweep's batch (8 source images x 16
patches = 128), measured in the same run. Prints JSON.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, machine, raw_forward, setup_threads  # noqa: E402

from atlas.data import open_pool  # noqa: E402
from atlas.data.patches import TopChannelPatches, TopDirectionPatches, ask, patch_boxes  # noqa: E402
from atlas.models import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    threads = setup_threads()
    model = load_model("efficientnet_lite0")
    pool = open_pool("bundled")
    ids = pool.source_ids(args.images)
    directions = torch.rand(18, 1280, generator=torch.Generator().manual_seed(0))
    questions = [TopChannelPatches("blocks.6", [11, 40], 8, bottom=True),
                 TopChannelPatches("blocks.0", list(range(16)), 8, bottom=True),
                 TopDirectionPatches("bn2", directions, 8)]
    patches = len(ids) * len(patch_boxes(model.input_size))
    ask(model, pool, ids[:8], questions)  # warm-up (allocator, image cache)
    separate, shared, raw = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        alone = [ask(model, pool, ids, [q])[0] for q in questions]
        separate.append(time.perf_counter() - start)
        start = time.perf_counter()
        together = ask(model, pool, ids, questions)
        shared.append(time.perf_counter() - start)
        raw.append(raw_forward(model, 128, model.input_size))
    same = all(a[c].sources == b[c].sources for a, b in zip(alone[:2], together[:2]) for c in a) and \
        [e.sources for e in alone[2]] == [e.sources for e in together[2]]
    emit({
        "benchmark": "pool_scan", "model": "efficientnet_lite0", "source_images": len(ids), "patches": patches,
        "questions": ["blocks.6: 2 channels", "blocks.0: 16 channels", "bn2: 18 directions"],
        "separate_seconds": round(min(separate), 2), "shared_seconds": round(min(shared), 2),
        "shared_vs_separate": round(min(shared) / min(separate), 3),
        "shared_patch_passes_per_s": round(patches / min(shared), 1),
        "raw_forward_img_per_s_batch_128": round(max(raw), 1),
        "ratio_shared_vs_raw_forward": round(patches / min(shared) / max(raw), 3),
        "same_answers": same, "threads": threads, "machine": machine(), "goal": "ratio >= 0.8",
    })


if __name__ == "__main__":
    main()
