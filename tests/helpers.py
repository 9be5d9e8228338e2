"""Test helpers: quick configurations and synthetic stores (no model run needed)."""
from __future__ import annotations

import numpy as np

from atlas.config import config_from_mapping
from atlas.methods.base import Visualization


def quick_config(tmp_path, classes=(285, 967), methods=("maco", "fourier"), steps=2, **extra):
    # a few steps make degenerate images by design: the site shows them under their warning (test_site.py
    # checks that the default withholds them)
    raw = {"preset": "demo", "classes": list(classes), "methods": list(methods),
           "store": str(tmp_path / "store"), "site": {"folder": str(tmp_path / "site"), "degenerate": "mark"},
           "batch_sizes": {},  # the demo's per-method batch sizes off: batch_size alone decides
           "left_out": {},  # every listed method runs (the demo leaves the data-free inversions out)
           "settings": {m: {"steps": steps, "crops": 1} for m in methods}}
    # the demo's concept and neuron targets are tested in test_concepts*.py / test_neurons.py
    raw["targets"] = {"concepts": 0, "random_neurons": 0, "images": 0, "kind_methods": {}, "layers": [],
                      **extra.pop("targets", {})}
    raw.update(extra)
    return config_from_mapping(raw)


def smooth_image(rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A random (size, size, 3) image in [0, 1] that is not noise (a 4x4 random image, interpolated): the
    site withholds noise images as degenerate (atlas.image_checks)."""
    coarse = rng.random((4, 4, 3))
    t = np.linspace(0, 3, size)
    i0 = np.minimum(t.astype(int), 2)
    w = (t - i0)[:, None]
    rows = coarse[i0] * (1 - w[..., None]) + coarse[i0 + 1] * w[..., None]
    img = rows[:, i0] * (1 - w.T[..., None]) + rows[:, i0 + 1] * w.T[..., None]
    return (0.15 + 0.7 * img).astype(np.float32)


def fake_visualization(job, size: int = 16) -> Visualization:
    rng = np.random.default_rng(abs(hash(job.key)) % 2**32)
    return Visualization(target=job.target, image=smooth_image(rng, size),
                         alpha=rng.random((size, size), dtype=np.float32), history=[0.0, 1.0, 2.0], seconds=0.1,
                         scores={"logit_start": 0.0, "logit_end": 2.0, "prob_end": 0.5, "rank_end": 1})
