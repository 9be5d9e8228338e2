"""What every method shares: its registry entry, its frozen ``Config``, the run context and the result.

A method only chooses a parameterisation, transforms, an objective and an optimiser, and calls the one
loop (:func:`atlas.optim.optimize`). It never writes files: the pipeline stores what it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import DataConfig
from ..config.validate import Place, build
from ..errors import AtlasError
from ..models.handle import ModelHandle
from ..registry import Registry
from ..targets import Target


@dataclass
class Visualization:
    """One finished visualisation.

    image: (H, W, 3) float32 in [0, 1]; alpha: (H, W) in [0, 1] (transparency map);
    history: the objective (per-target score) at every step; scores: the target's score on the full
    image before and after (e.g. ``logit_start``, ``logit_end``, ``prob_end``); extras: further images to
    store (e.g. the seed image and mask of image-seeded methods); info: anything else worth recording.
    """

    target: Target
    image: np.ndarray
    alpha: np.ndarray
    history: List[float]
    seconds: float
    scores: Dict[str, float] = field(default_factory=dict)
    extras: Dict[str, np.ndarray] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)


#: The most optimisation steps a setting may ask for: 500 times the papers' longest runs (2000); more
#: would run for weeks per job on any device (``atlas plan`` shows the estimate of what is allowed).
MAX_STEPS = 1_000_000
#: The smallest image side a method may optimise: every crop, view and canvas stage is at least a pixel.
MIN_IMAGE_SIZE = 16
#: Rules every method's settings share, beyond each field's type and default (a default that is a
#: non-negative number already forbids negative values): at least one and at most :data:`MAX_STEPS`
#: optimisation steps, and images of at least :data:`MIN_IMAGE_SIZE` pixels a side. How large an image the
#: machine can hold is checked against its memory when a plan is made (:mod:`atlas.pipeline.memory`).
SETTING_RULES: Dict[str, Dict[str, Any]] = {
    "steps": {"ge": 1, "le": MAX_STEPS},
    "neuron_steps": {"ge": 1, "le": MAX_STEPS},
    "low_res_steps": {"le": MAX_STEPS},
    "image_size": {"ge": MIN_IMAGE_SIZE},
}

#: Shared resources a method can ask for by name (``ctx.resource("concepts")``): a factory builds one per
#: run context, e.g. the CRAFT concept provider or cached reference features. ``factory(ctx) -> object``.
RESOURCES: Registry[Callable[["RunContext"], Any]] = Registry("resource")


@dataclass
class RunContext:
    """What a method may use: the model, the real-image pool, caches, the device and a progress callback.

    ``store`` and ``config`` are set when running inside the pipeline (None in unit tests); stage results
    (``store.cached_stage``) and named resources (:data:`RESOURCES`) are reached through them.
    """

    model: ModelHandle
    data: DataConfig
    cache_dir: Optional[Path]
    pool_factory: Callable[[], Any]
    on_step: Optional[Callable[[int], None]] = None
    resources: Dict[str, Any] = field(default_factory=dict)
    store: Any = None
    config: Any = None

    def resource(self, name: str) -> Any:
        """The named shared resource, built once per context by its registered factory."""
        if name not in self.resources:
            self.resources[name] = RESOURCES.get(name)(self)
        return self.resources[name]

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def pool(self):
        if "pool" not in self.resources:
            self.resources["pool"] = self.pool_factory()
        return self.resources["pool"]

    def spectrum(self, size: int) -> np.ndarray:
        """The pool's magnitude spectrum for a ``size`` x ``size`` image in the model's channels (cached in
        the store)."""
        from ..data.spectrum import load_or_estimate_spectrum

        from ..progress import stage

        channels = self.model.in_chans
        key = f"spectrum-{size}" + (f"-{channels}" if channels != 3 else "")
        if key not in self.resources:
            with stage(f"spectrum {size}px", self.data.spectrum_images, unit="image",
                       enabled=self.store is not None) as bar:
                self.resources[key] = load_or_estimate_spectrum(
                    self.pool, size, self.data.spectrum_images, self.cache_dir, progress=bar.update,
                    channels=channels,
                )
        return self.resources[key]

    def references(self, class_id: int, n: Optional[int] = None, size: Optional[int] = None, seed: int = 0):
        """N real images of ``class_id`` at the model's input size (deterministic per seed)."""
        n = n or self.data.references
        size = size or self.model.input_size
        return self.pool.reference_images(class_id, n, size, seed=seed)

    def concept_direction(self, target: Target) -> Tuple[str, torch.Tensor]:
        """(layer, vector) of a concept target, from the ``concepts`` resource (CRAFT)."""
        if "concepts" not in RESOURCES and "concepts" not in self.resources:
            raise AtlasError(
                f"concept target {target.slug()} needs the concepts stage (CRAFT), which is not available"
            )
        return self.resource("concepts")(target)


#: The input size (px) that methods' pixel settings (``Method.pixel_settings``) are given for: the papers'.
REFERENCE_SIZE = 224


class Method:
    """Base class of a registered method. Subclasses set the class attributes and implement ``run``.

    version: bump when the code changes what the method produces (it is part of every job's key).
    kinds: the target kinds it can visualise. uses_data: whether real images enter the result (then the
    pool's fingerprint is part of the key). batchable: whether K targets can share one optimisation.
    batch_coupled: whether a target's image depends on *which* targets share its batch (DeepInversion's
    batch statistics): then the batch's composition is part of every job's key, else only its size (batched
    kernels round differently at each batch size, whoever the batch-mates are: ``bench/batch_identity.py``).
    paper, bibtex: the citation key and BibTeX of the paper it implements (pages cite it).
    paper_settings: overrides of the ``Config`` defaults that the paper presets run (the defaults are the
    paper's own unless a method says otherwise).
    pixel_settings: settings measured in pixels of a 224-px input (image sides, jitter, patch sizes); the
    planner scales them to a model with another input size unless the configuration sets them.
    images_needed(cfg, data, kind): how many real images a target of ``kind`` needs (VITAL's N references:
    of the class for class targets, from the whole pool for the others); the planner skips targets the pool
    has too few images for, with the reason.
    facets: whether it draws the negative and diverse pictures of a channel (``Target.facet``); the
    planner gives facet targets only to methods that do.
    judged: the stored file the metrics judge - the image the pages show as the method's result
    (``image.png``; attribution visualization: its masked composite).
    """

    name: str = ""
    title: str = ""
    version: str = "1"
    Config: type = object
    kinds: Tuple[str, ...] = ("class",)
    uses_data: bool = False
    batchable: bool = True
    batch_coupled: bool = False
    paper: str = ""
    bibtex: str = ""
    paper_settings: Dict[str, Any] = {}
    pixel_settings: Tuple[str, ...] = ()
    summary: str = ""
    facets: bool = False
    judged: str = "image.png"

    def __init__(self, name: Optional[str] = None, **defaults):
        if name:
            self.name = name
        self.defaults = defaults

    def config(self, overrides: Dict[str, Any] | None = None):
        """The method's ``Config`` with registry defaults and ``overrides`` applied, every key and value
        checked against the ``Config``'s fields (:mod:`atlas.config.validate`) and :data:`SETTING_RULES`."""
        overrides = {**self.defaults, **(overrides or {})}
        return build(self.Config, overrides, Place(method=self.name), rules=SETTING_RULES)

    def unsupported_reason(self, model: str, target: Target) -> Optional[str]:
        """A one-line reason why this method cannot visualise ``target`` on ``model``, or None."""
        if target.kind not in self.kinds:
            return f"{self.name} does not visualise {target.kind} targets"
        return None

    def images_needed(self, cfg, data: DataConfig, kind: str) -> int:
        """Real images a target of ``kind`` needs (0: none; class targets: images of the class, other
        kinds: of the whole pool), for the planner's check against the pool."""
        return 0

    def batch_size(self, cfg, default: int) -> int:
        """How many targets share one optimisation: the configuration's ``batch_size`` (``default``) if the
        method is batchable, else 1. Methods whose result depends on the batch (DeepInversion's batch
        statistics) take it from their own ``cfg``, so that it is part of every job's key."""
        return default if self.batchable else 1

    def setting_problem(self, cfg, card) -> Optional[str]:
        """A one-line reason why settings ``cfg`` cannot run on the model of ``card`` (its input size,
        layers), or None; the plan stops with it, like any other bad setting. Settings that are wrong on
        every model are the ``Config``'s own rules (field metadata, ``__post_init__``)."""
        return None

    def images_per_pass(self, cfg, card) -> float:
        """Images at the model's input size one target sends through the model at once (its crops or
        views, else 1), for the memory estimate (:mod:`atlas.pipeline.memory`)."""
        return float(getattr(cfg, "crops", None) or getattr(cfg, "views", None) or 1)

    def passes_per_target(self, cfg, kind: str = "class") -> Optional[float]:
        """Forward+backward passes at the model's input size per target of ``kind``, for time estimates
        (None: the estimate's generic reading of ``steps`` and ``crops``/``views``). A pass that stops at a
        neuron's or concept's layer counts as one here; the estimate scales it by the layer's depth."""
        return None

    def run(self, ctx: RunContext, cfg, targets: Sequence[Target], seeds: Sequence[int]) -> List[Visualization]:
        raise NotImplementedError


METHODS: Registry[Method] = Registry("method")


def display_title(name: str) -> str:
    """The method's title for people; registered variants that share a title (``maco`` and ``maco_hr``
    are both "MACO") get their name added, so that two columns never carry the same heading."""
    title = METHODS.get(name).title or name
    clash = any(n != name and (METHODS.get(n).title or n) == title for n in METHODS.names())
    return f"{title} ({name})" if clash and name.lower() != title.lower() else title


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) float32 array; a one-channel image (a one-channel model's) is stored as
    grey RGB."""
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.detach().permute(1, 2, 0).cpu().numpy().astype(np.float32)


@torch.no_grad()
def class_scores(model: ModelHandle, images: torch.Tensor, class_ids: Sequence[int]) -> List[Dict[str, float]]:
    """Logit, probability and rank of each image's class on the full image at the model's input size."""
    x = torch.nn.functional.interpolate(
        images.to(model.device), size=(model.input_size, model.input_size), mode="bilinear",
        align_corners=False, antialias=True,
    )
    logits = model(x).float()
    probs = logits.softmax(-1)
    out = []
    for i, c in enumerate(class_ids):
        rank = int((logits[i] > logits[i, c]).sum())
        top = torch.topk(probs[i], 2)
        out.append({
            "logit": float(logits[i, c]), "prob": float(probs[i, c]), "rank": rank + 1,
            "top1": int(top.indices[0]), "top1_prob": float(top.values[0]),
            "top2": int(top.indices[1]), "top2_prob": float(top.values[1]),
        })
    return out
