"""Test helpers: quick configurations and synthetic stores (no model run needed)."""
from __future__ import annotations

import numpy as np

from atlas.config import config_from_mapping
from atlas.methods.base import Visualization


def quick_config(tmp_path, classes=(285, 967), methods=("maco", "fourier"), steps=2, **extra):
    raw = {"preset": "demo", "classes": list(classes), "methods": list(methods),
           "store": str(tmp_path / "store"), "site": str(tmp_path / "site"),
           "batch_sizes": {},  # the demo's per-method batch sizes off: batch_size alone decides
           "settings": {m: {"steps": steps, "crops": 1} for m in methods}}
    # the demo's concept and neuron targets are tested in test_concepts*.py / test_neurons.py
    raw["targets"] = {"concepts": 0, "random_neurons": 0, "images": 0, "kind_methods": {},
                      **extra.pop("targets", {})}
    raw.update(extra)
    return config_from_mapping(raw)


def fake_visualization(job, size: int = 16) -> Visualization:
    rng = np.random.default_rng(abs(hash(job.key)) % 2**32)
    return Visualization(target=job.target, image=rng.random((size, size, 3), dtype=np.float32),
                         alpha=rng.random((size, size), dtype=np.float32), history=[0.0, 1.0, 2.0], seconds=0.1,
                         scores={"logit_start": 0.0, "logit_end": 2.0, "prob_end": 0.5, "rank_end": 1})
