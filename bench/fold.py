"""The model with its BatchNorms folded into the convolutions before them against the model as its library
runs it: forward (no gradient) and forward + input-gradient backward, images per second.

    python bench/fold.py [--models efficientnet_lite0,efficientnet_lite2] [--batch 4] [--reps 5]

For each model, the two ways alternate ``--reps`` times (best rate of each kept: the machine's noise only
ever slows a run down), at ``--batch`` images of the model's input size (``bench/common``'s ``raw_forward`` and ``raw_throughput``). ``fold_batchnorm`` off runs
``handle.module`` itself; on runs its folded copy (``atlas.models.fold``). Also the largest difference of
the logits between the two, relative to their largest magnitude. A torchvision ``resnet50`` (architecture
only: no weights ship offline; its BatchNorm statistics randomised) can be named as ``resnet50``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from common import emit, machine, raw_forward, raw_throughput, setup_threads  # noqa: E402

from atlas.models import load_model  # noqa: E402
from atlas.models.handle import ModelHandle  # noqa: E402


def resnet50_handle() -> ModelHandle:
    import torchvision

    module = torchvision.models.resnet50(weights=None)
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    names = tuple(f"c{i}" for i in range(1000))
    return ModelHandle(name="resnet50", family="resnet", module=module, mean=(0.485, 0.456, 0.406),
                       std=(0.229, 0.224, 0.225), input_size=224, class_names=names, wnids=names, blocks=(),
                       penultimate="fc:in")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="efficientnet_lite0,efficientnet_lite2")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    threads = setup_threads()
    out = {}
    for name in args.models.split(","):
        handle = resnet50_handle() if name == "resnet50" else load_model(name)
        size = handle.input_size
        x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            handle.fold_batchnorm = False
            plain = handle(x)
            handle.fold_batchnorm = True
            folded = handle(x)
        row = {"pairs_folded": handle._fold.pairs if handle._fold else 0,
               "logits_max_rel_difference": float((plain - folded).abs().max() / plain.abs().max())}
        for what, rate in (("forward", raw_forward), ("forward_backward", raw_throughput)):
            best = {"plain": 0.0, "folded": 0.0}
            for _ in range(args.reps):
                for way, flag in (("plain", False), ("folded", True)):
                    handle.fold_batchnorm = flag
                    best[way] = max(best[way], rate(handle, args.batch, size, seconds=args.seconds))
            row[what] = {"plain_img_per_s": round(best["plain"], 1), "folded_img_per_s": round(best["folded"], 1),
                         "speedup": round(best["folded"] / best["plain"], 3)}
        out[name] = row
    emit({"benchmark": "fold", "batch": args.batch, "reps": args.reps, "threads": threads,
          "machine": machine(), "models": out})


if __name__ == "__main__":
    main()
