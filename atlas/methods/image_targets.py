"""What both image-target methods (feature accentuation, attribution visualization) do around their
optimisation: resolve each target's goal class, load the class's natural images (cached per run), score
images before and after, and compose masked results."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data.seed_images import load_seed_image, seed_image_ids
from ..errors import AtlasError
from ..models.handle import ModelHandle
from ..targets import Target
from .base import RunContext

#: the grey that masked-out pixels show (attribution visualization reference code: 0.55)
BACKGROUND = 0.55


@torch.no_grad()
def resolve_goals(model: ModelHandle, images: torch.Tensor, targets: Sequence[Target]) -> Tuple[List[int], List[int]]:
    """The class each target drives its image toward - its own class, its rival (highest other logit) or
    an explicit class id (``Target.toward``) - and the model's top-1 class for each seed image (a rival
    of a misclassified image is its predicted class)."""
    logits = model(resize_to_input(model, images)).float().cpu()
    goals = []
    for i, t in enumerate(targets):
        if t.toward is None:
            goals.append(int(t.class_id))
        elif t.toward == "rival":
            row = logits[i].clone()
            row[t.class_id] = -float("inf")
            goals.append(int(row.argmax()))
        elif str(t.toward).isdigit() and int(t.toward) < logits.shape[1]:
            goals.append(int(t.toward))
        else:
            raise AtlasError(f"image target {t.slug()}: unknown goal {t.toward!r}; use none (its class), "
                             f"'rival' or a class id 0-{logits.shape[1] - 1}")
    return goals, logits.argmax(1).tolist()


@torch.no_grad()
def goal_scores(model: ModelHandle, images: torch.Tensor, goals: Sequence[int], classes: Sequence[int]) -> List[dict]:
    """Per image: the goal's logit, probability and rank, the own class's logit and the top-1 class."""
    logits = model(resize_to_input(model, images)).float().cpu()
    probs = logits.softmax(-1)
    out = []
    for i, (g, c) in enumerate(zip(goals, classes)):
        out.append({"logit": float(logits[i, g]), "prob": float(probs[i, g]),
                    "rank": int((logits[i] > logits[i, g]).sum()) + 1, "class_logit": float(logits[i, c]),
                    "top1": int(logits[i].argmax()), "top5": [int(j) for j in torch.topk(logits[i], 5).indices]})
    return out


def before_after(before: dict, after: dict, goal: int) -> Dict[str, float]:
    """Scores in the foundation's naming (``logit_start`` -> ``logit_end`` of the goal class)."""
    s = {"goal": goal}
    for key in ("logit", "prob", "rank", "class_logit", "top1"):
        s[f"{key}_start"], s[f"{key}_end"] = before[key], after[key]
    return s


def natural_images(ctx: RunContext, class_id: int, n: int, size: int) -> Tuple[List[str], torch.Tensor]:
    """The first ``n`` seed images of a class (ids and (n, 3, size, size)), cached for the run."""
    cache = ctx.resources.setdefault("seeded-naturals", {})
    key = (class_id, n, size)
    if key not in cache:
        ids = seed_image_ids(ctx.data.pool, class_id, n)
        if ctx.data.pool != "bundled":  # a folder with fewer than n images of the class: the ones it has
            ids = ids[:max(1, len(ctx.pool.items(class_id)))]
        cache[key] = (ids, torch.stack([load_seed_image(ctx.pool, class_id, i, size)[0] for i in ids]))
    return cache[key]


def composite(image: np.ndarray, mask: np.ndarray, background: float = BACKGROUND) -> np.ndarray:
    """The masked result: mask * image + (1 - mask) * grey, (H, W, 3)."""
    m = np.asarray(mask, dtype=np.float32)[..., None]
    return (m * image + (1 - m) * background).astype(np.float32)


def image_array(x: torch.Tensor, grey_rgb: bool = False) -> np.ndarray:
    """(1 or 3, H, W) tensor -> (H, W) or (H, W, 3) float32 array, as the store saves images and masks;
    ``grey_rgb``: a one-channel *image* (a one-channel model's) as grey (H, W, 3)."""
    x = x.detach().float().cpu()
    if x.shape[0] == 1 and grey_rgb:
        x = x.expand(3, -1, -1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def resize_to_input(model: ModelHandle, images: torch.Tensor) -> torch.Tensor:
    """``images`` on the model's device at its input size (bilinear, antialiased; unchanged if they fit)."""
    size = model.input_size
    images = images.to(model.device)
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
