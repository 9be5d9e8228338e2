"""Peak memory (RSS) of one MACO batch per model and batch size: memory is bounded by the batch size.

    python bench/memory.py [--models efficientnet_lite0] [--batches 1 2 4] [--steps 4] [--method maco]
                           [--image-size 224]

Each (model, batch) runs in a fresh child process (peak RSS is per process and never falls), which loads
the model, then runs the raw model's forward+backward at that batch (the reference), then one MACO job of
``batch`` class targets for ``steps`` steps at the demo's settings. Printed as JSON, in MiB:
``loaded`` (after loading the model), ``raw_peak`` (after the raw fwd+bwd), ``maco_peak`` (after MACO),
and ``maco_over_raw`` = (maco_peak - loaded) / (raw_peak - loaded), MACO's working memory against the
raw model's at the same batch; ``estimate`` is what ``atlas plan`` / ``atlas run`` estimate for the same
batch before any work (:func:`atlas.pipeline.memory.largest_need`, CPU runtime included) and
``estimate_over_peak`` its ratio to ``maco_peak`` (the name is kept for every ``--method``).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def estimate_mib(model_name: str, method: str, batch: int, settings: dict) -> float:
    """What the plan's memory check estimates for this batch (MiB), as ``atlas run`` computes it."""
    from atlas.app import install
    from atlas.config import config_from_mapping
    from atlas.pipeline import make_plan
    from atlas.pipeline.memory import RUNTIME_BYTES, largest_need

    install()
    cfg = config_from_mapping({"preset": "demo", "models": [model_name], "methods": [method],
                               "classes": list(CLASSES[:batch]), "batch_size": batch,
                               "targets": {"concepts": 0, "random_neurons": 0, "images": 0},
                               "settings": {method: settings}})
    need = largest_need(make_plan(cfg).jobs, batch, base=RUNTIME_BYTES["cpu"])
    return need.bytes / 2**20


CLASSES = (285, 967, 665, 1, 2, 3, 4, 5)


def child(model_name: str, batch: int, steps: int, method_name: str = "maco", image_size: int = 0) -> dict:
    import tempfile

    import torch

    from common import setup_threads
    from atlas.config import PRESETS
    from atlas.methods import METHODS, RunContext
    from atlas.models import load_model
    from atlas.targets import Target

    from atlas.app import install

    install()
    setup_threads()
    model = load_model(model_name)
    loaded = _peak_mib()
    size = model.input_size
    x = torch.rand(batch, 3, size, size, requires_grad=True)
    model(x)[:, 0].sum().backward()
    del x
    raw_peak = _peak_mib()
    cfg = PRESETS.get("demo")()
    method = METHODS.get(method_name)
    settings = {"steps": steps, **({"image_size": image_size} if image_size else {})}
    mcfg = method.config({**cfg.method_settings(method_name), **settings})
    with tempfile.TemporaryDirectory() as tmp:
        from atlas.data import open_pool

        ctx = RunContext(model=model, data=cfg.data, cache_dir=Path(tmp), pool_factory=lambda: open_pool("bundled"))
        targets = [Target.of_class(c) for c in CLASSES[:batch]]
        method.run(ctx, mcfg, targets, list(range(batch)))
    maco_peak = _peak_mib()
    est = estimate_mib(model_name, method_name, batch, settings)
    return {"model": model_name, "method": method_name, "image_size": getattr(mcfg, "image_size", None),
            "batch": batch, "steps": steps, "loaded": round(loaded, 1),
            "raw_peak": round(raw_peak, 1), "maco_peak": round(maco_peak, 1),
            "maco_over_raw": round((maco_peak - loaded) / max(raw_peak - loaded, 1e-6), 2),
            "estimate": round(est, 1), "estimate_over_peak": round(est / maco_peak, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--method", default="maco")
    ap.add_argument("--image-size", type=int, default=0, help="the method's image_size (0: the demo's)")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.steps, a.method, a.image_size)))
        return
    rows = []
    for m in a.models:
        for b in a.batches:
            out = subprocess.run([sys.executable, __file__, "--steps", str(a.steps), "--method", a.method,
                                  "--image-size", str(a.image_size), "--child", m, str(b)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    from common import emit, machine

    emit({"bench": "memory", "machine": machine(), "unit": "MiB peak RSS", "results": rows})


if __name__ == "__main__":
    main()
