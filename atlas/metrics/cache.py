"""Cached features and the images they come from.

Features are cached per (backbone identity, output, image identity) as ``.npy`` files under
``<store>/metrics/features/``, written atomically; an unreadable file is a miss with a warning. An image's
identity is the SHA-256 of its stored PNG for FVs (recorded in the job's ``meta.json``) and a hash of
(pool fingerprint, class, draw) for real images, so a changed image is recomputed and an unchanged one never.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..config import stable_hash
from ..errors import AtlasError
from ..pipeline.disk import atomic_write
from ..pipeline.store import Store
from ..targets import safe_slug

log = logging.getLogger(__name__)

#: real images are drawn at this size (Inception's input) and resized for each backbone.
REAL_SIZE = 299


class FeatureCache:
    """``get``/``put`` of one feature vector per (backbone id, output, item id)."""

    def __init__(self, store: Store):
        self.root = store.metrics_dir / "features"

    def path(self, backbone_id: str, output: str, item_id: str) -> Path:
        head = safe_slug(backbone_id.split(":")[1] if ":" in backbone_id else backbone_id)
        return self.root / f"{head}-{stable_hash(backbone_id, 10)}" / safe_slug(output) / f"{item_id}.npy"

    def get(self, backbone_id: str, output: str, item_id: str) -> Optional[np.ndarray]:
        path = self.path(backbone_id, output, item_id)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            log.warning("unreadable cached features %s: recomputing", path)
            return None

    def has(self, backbone_id: str, output: str, item_id: str) -> bool:
        return self.path(backbone_id, output, item_id).is_file()

    def put(self, backbone_id: str, output: str, item_id: str, value: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(value, dtype=np.float32), allow_pickle=False)
        atomic_write(self.path(backbone_id, output, item_id), buf.getvalue())


@dataclass
class ItemGroup:
    """Images loaded together: ``ids`` (cache identities) and ``load(indices) -> [(3, H, W) in [0, 1] or
    None when that image does not exist]``."""

    name: str
    ids: Tuple[str, ...]
    load: Callable[[Sequence[int]], List[torch.Tensor]]

    def __len__(self) -> int:
        return len(self.ids)


def read_png(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


#: The ImageNet evaluation crop (resize to 256, centre-crop 224): the fraction of the side kept.
EVAL_CROP = 224 / 256


def center_crop(img: torch.Tensor, fraction: float = EVAL_CROP) -> torch.Tensor:
    """The central ``fraction`` of a (3, H, W) image's sides (no resampling): an FV goes through the
    evaluation transform the real images get (resize 256, centre crop 224), not squashed whole into it."""
    h, w = img.shape[-2:]
    side = max(1, int(round(min(h, w) * fraction)))
    top, left = (h - side) // 2, (w - side) // 2
    return img[..., top:top + side, left:left + side]


def fv_group(store: Store, name: str, jobs: Sequence[Tuple[str, str, str]], crop: bool = False) -> ItemGroup:
    """The stored images of ``jobs`` [(job key, file name, its sha256)] (``crop``: their centre crops,
    :func:`center_crop`, as FID/KID compare them)."""
    keys = [(k, f) for k, f, _ in jobs]
    ids = tuple(stable_hash(["centre-crop", EVAL_CROP, sha], 32) if crop else sha[:32] for _, _, sha in jobs)

    def load(idx: Sequence[int]) -> List[torch.Tensor]:
        imgs = [read_png(store.job_dir(keys[i][0]) / keys[i][1]) for i in idx]
        return [center_crop(x) for x in imgs] if crop else imgs

    return ItemGroup(name + (" (centre crops)" if crop else ""), ids, load)


def real_group(pool_factory: Callable, fingerprint: str, class_id: int, n: int, seed: int) -> ItemGroup:
    """``n`` real images of ``class_id`` from the pool (``reference_images`` with ``seed``, at
    :data:`REAL_SIZE`; fewer if the pool has fewer: the missing ones are simply absent)."""
    ids = tuple(stable_hash(["real", fingerprint, class_id, n, seed, REAL_SIZE, i], 24) for i in range(n))

    def load(idx: Sequence[int]) -> List[torch.Tensor]:
        try:
            x = pool_factory().reference_images(class_id, n, REAL_SIZE, seed=seed, allow_fewer=True)
        except AtlasError as exc:  # the pool has no (readable) image of the class: metrics say so
            log.warning("metrics: no real images of class %s: %s", class_id, exc)
            return [None for _ in idx]
        return [x[i] if i < len(x) else None for i in idx]

    return ItemGroup(f"real images of class {class_id}", ids, load)


def patch_group(pool, fingerprint: str, model: str, size: int, examples) -> ItemGroup:
    """A neuron's top patches (:class:`~atlas.data.patches.NeuronExamples`) at the model's input size."""
    from ..data.patches import NeuronExamples, patch_images

    ids = tuple(stable_hash(["patch", fingerprint, model, size, s, list(b)], 24)
                for s, b in zip(examples.sources, examples.boxes))

    def load(idx: Sequence[int]) -> List[torch.Tensor]:
        sub = NeuronExamples(examples.layer, examples.channel, [examples.sources[i] for i in idx],
                             [examples.boxes[i] for i in idx], [examples.scores[i] for i in idx])
        return list(patch_images(pool, sub, size))

    return ItemGroup(f"top patches of {examples.layer}:{examples.channel}", ids, load)


def source_group(pool, fingerprint: str, model: str, size: int, examples) -> ItemGroup:
    """A neuron's top whole images (:func:`~atlas.data.patches.top_images`) at the model's input size."""
    ids = tuple(stable_hash(["source", fingerprint, size, s], 24) for s in examples.sources)

    def load(idx: Sequence[int]) -> List[torch.Tensor]:
        return [pool.source_image(examples.sources[i], size) for i in idx]

    return ItemGroup(f"top images of {examples.layer}:{examples.channel}", ids, load)
