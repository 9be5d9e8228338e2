"""The concept bank of a class as a cached store stage, the ``concepts`` resource and the CRAFT run stage.

Stage ``craft``, one entry per (model, class, layer, settings, pool): ``bank.npz`` (W, U, concept maps,
per-image Sobol indices), ``summary.json`` (importance, shares, wins, reconstruction errors, settings)
and the pictures the site shows (``mosaic-XX.png``: top patches; ``map-XX.png``: concept maps on real
images). The site finds entries by their recorded inputs (:func:`find_banks`) without loading a model.

Images: ``pool.reference_images(class, images)`` - for an ImageNet folder, random images of the class;
for the bundled pool (one or two photos per class) random resized crops and flips of the class's photos,
so the demo's patches come from several views of the same photo.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from ..config import CraftConfig, craft_config, stable_hash
from ..data.patches import patch_boxes
from ..errors import AtlasError
from .craft import craft
from .layers import concept_layer, has_concept_layer
from .lookup import latest_entries
from .pictures import concept_map_png, patch_mosaic

STAGE = "craft"
VERSION = "1"


def model_craft_config(cfg, model: Optional[str]) -> CraftConfig:
    """The CRAFT settings for ``model`` (patches follow its input size unless configured)."""
    from ..models import known_card

    card = known_card(model) if model else None
    return craft_config(cfg, card.input_size if card is not None else None)


def fit_hash(cfg, layer: str, model: Optional[str] = None) -> str:
    """Hash of everything a class's concept bank depends on besides the model's name, class and pool
    contents (known at plan time: it goes into concept targets, hence into their jobs' keys); for a model
    that the configuration defines, its weights' identity too."""
    from ..models.user import model_identity

    key = {"craft": model_craft_config(cfg, model).fit_fields(), "k": cfg.targets.concepts, "layer": layer,
           "pool": cfg.data.pool, "v": VERSION}
    identity = model_identity(model) if model else ""
    if identity:
        key["model_id"] = identity
    return stable_hash(key, length=12)


@dataclass
class ConceptBank:
    """A class's concepts as stored: ``summary`` (JSON), ``W`` (K, C), and where the stage files are."""

    class_id: int
    summary: Dict[str, Any]
    W: np.ndarray
    path: Optional[Path] = None
    files: Dict[str, bytes] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.W.shape[0])

    def file(self, name: str) -> bytes:
        return self.files[name] if self.files else (self.path / name).read_bytes()

    def coefficients(self) -> np.ndarray:
        """U (N * P, K): every patch's NMF coefficient per concept (patch i is box ``i % P`` of image
        ``i // P`` of the bank's images)."""
        if "_U" not in self.__dict__:
            with np.load(io.BytesIO(self.file("bank.npz"))) as z:
                self._U = z["U"]
        return self._U

    def top_examples(self, concept: int, n: int, per_image: int) -> List[int]:
        """Rows of U of the ``n`` patches with the largest coefficient for ``concept`` (CRAFT's own ranking,
        ``CraftResult.top_patches``), at most one per image (``per_image`` patches per image)."""
        order = np.argsort(-self.coefficients()[:, concept], kind="stable")
        picked, seen = [], set()
        for i in order:
            if int(i) // per_image not in seen:
                seen.add(int(i) // per_image)
                picked.append(int(i))
                if len(picked) == n:
                    break
        return picked


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def compute_bank(model, pool, class_id: int, layer: str, k: int, cfg: CraftConfig, progress=None):
    """Run CRAFT for one class; returns the stage's ``(files, meta)``."""
    images = pool.reference_images(class_id, cfg.images, model.input_size, seed=cfg.seed, allow_fewer=True)
    res = craft(model, images, class_id, layer, k, cfg, progress=progress)
    thresholds = res.thresholds(cfg.map_percentile)
    shown = images[: cfg.map_images]
    files = {"bank.npz": _npz(W=res.W, U=res.U, maps=res.maps.astype(np.float16), sobol=res.sobol)}
    top = []
    for c in range(res.k):
        picks = res.top_patches(c, cfg.top_patches)
        per = len(res.boxes)
        top.append([[i // per, *res.boxes[i % per]] for i in picks])
        files[f"mosaic-{c:02d}.png"] = patch_mosaic(images, picks, res.boxes, cfg.patch)
        files[f"map-{c:02d}.png"] = concept_map_png(shown, res.maps[: len(shown), ..., c], float(thresholds[c]))
    summary = {
        "class_id": class_id, "layer": layer, "k": res.k, "model": model.name,
        "images": int(images.shape[0]), "patches": int(res.U.shape[0]), "channels": int(res.W.shape[1]),
        "importance": res.importance.tolist(), "share": res.share.tolist(), "wins": res.wins.tolist(),
        "important": [bool(w >= cfg.min_wins) for w in res.wins], "min_wins": cfg.min_wins,
        "errors": {str(kk): v for kk, v in res.errors.items()}, "relative_error": res.errors[res.k],
        "thresholds": thresholds.tolist(), "map_percentile": cfg.map_percentile, "map_images": len(shown),
        "top_patches": top, "settings": cfg.fit_fields(),
    }
    files["summary.json"] = json.dumps(summary, indent=1).encode()
    return files, {"class_id": class_id}


def _load(class_id: int, path: Optional[Path] = None, files: Optional[Dict[str, bytes]] = None) -> ConceptBank:
    get = (lambda n: files[n]) if files else (lambda n: (path / n).read_bytes())
    summary = json.loads(get("summary.json"))
    with np.load(io.BytesIO(get("bank.npz"))) as z:
        W = z["W"]
    return ConceptBank(class_id, summary, W, path, dict(files or {}))


def class_bank(store, get_model: Callable, model_name: str, pool, class_id: int, layer: str, k: int,
               cfg: CraftConfig, fit: str, progress=None) -> ConceptBank:
    """The class's bank from the store (stage ``craft``), computed with ``get_model()`` if missing."""
    key = {"model": model_name, "class": int(class_id), "layer": layer, "k": k, "fit": fit,
           "pool": pool.fingerprint(), "v": VERSION}

    def compute():
        return compute_bank(get_model(), pool, class_id, layer, k, cfg, progress)

    if store is None:
        return _load(class_id, files=compute()[0])
    return _load(class_id, path=store.cached_stage(STAGE, key, compute))


def find_banks(store, model: str, fit: str, classes=None) -> Dict[int, ConceptBank]:
    """Every stored bank of ``model`` made with settings ``fit`` (newest per class), without a model;
    ``classes``: only the banks of these classes (the others are not read)."""
    wanted = None if classes is None else {(int(c),) for c in classes}
    found = latest_entries(store, STAGE, {"model": model, "fit": fit}, ("class",), wanted)
    return {int(c): _load(int(c), path=d) for (c,), d in sorted(found.items())}


class ConceptProvider:
    """The ``concepts`` resource: ``provider(target) -> (layer, vector)`` for concept targets."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.banks: Dict[tuple, ConceptBank] = {}

    def bank(self, class_id: int, layer: str) -> ConceptBank:
        cfg = self.ctx.config
        if cfg is None or cfg.targets.concepts < 1:
            raise AtlasError("concept targets need a configuration with [targets] concepts >= 1")
        key = (class_id, layer)
        if key not in self.banks:
            name = self.ctx.model.name
            self.banks[key] = class_bank(self.ctx.store, lambda: self.ctx.model, name, self.ctx.pool,
                                         class_id, layer, cfg.targets.concepts, model_craft_config(cfg, name),
                                         fit_hash(cfg, layer, name))
        return self.banks[key]

    def _bank_of(self, target) -> ConceptBank:
        bank = self.bank(target.class_id, target.layer)
        if not 0 <= target.concept < bank.k:
            raise AtlasError(f"concept {target.concept} of class {target.class_id} does not exist; the bank has "
                             f"concepts 0-{bank.k - 1}")
        return bank

    def __call__(self, target):
        return target.layer, torch.from_numpy(self._bank_of(target).W[target.concept].copy())

    def examples(self, target, n: int, patches: bool = False) -> torch.Tensor:
        """The images that most activate the concept through CRAFT (VITAL §2.3): the bank's patches ranked by
        their coefficient U for the concept, one per image, as the full images they come from (default) or
        as the patches resized to the model's input size (``patches``); (<= n, 3, S, S) in [0, 1]."""
        bank = self._bank_of(target)
        model = self.ctx.model
        ccfg, size = model_craft_config(self.ctx.config, model.name), model.input_size
        images = self.ctx.pool.reference_images(target.class_id, ccfg.images, size, seed=ccfg.seed, allow_fewer=True)
        boxes = patch_boxes(size, ccfg.patch, ccfg.stride)
        if images.shape[0] * len(boxes) != bank.coefficients().shape[0]:
            raise AtlasError(f"the concept bank of class {target.class_id} was fitted on other images than the pool "
                             f"gives now ({bank.coefficients().shape[0]} patches, {images.shape[0]} images)")
        rows = bank.top_examples(target.concept, n, len(boxes))
        if not patches:
            return images[[i // len(boxes) for i in rows]]
        p = ccfg.patch
        crops = [images[i // len(boxes), :, y:y + p, x:x + p] for i in rows for (y, x) in [boxes[i % len(boxes)]]]
        return torch.nn.functional.interpolate(torch.stack(crops), size=(size, size), mode="bilinear",
                                               align_corners=False)



def craft_stage(runner, model: str) -> None:
    """Run stage: the concept bank of every configured class (before the model's jobs)."""
    cfg = runner.cfg
    if cfg.targets.concepts < 1 or not has_concept_layer(cfg, model):
        return  # no concept layer: the plan says the concepts were skipped for this model
    from ..pipeline.planner import resolve_classes
    from ..progress import stage

    layer = concept_layer(cfg, model)
    ccfg, fit = model_craft_config(cfg, model), fit_hash(cfg, layer, model)
    classes = resolve_classes(cfg, model)
    scope = runner.stage_scope(model, "concept")  # a shard: only the banks of its own concept jobs
    if scope is not None:
        classes = [c for c in classes if c in scope]
        if not classes:
            return
    with stage(f"CRAFT · {model}", len(classes), unit="bank", enabled=runner.progress) as bar:
        for c in classes:
            class_bank(runner.store, lambda: runner.context(model).model, model, runner.pool(model), c, layer,
                       cfg.targets.concepts, ccfg, fit)
            bar.update(1)
