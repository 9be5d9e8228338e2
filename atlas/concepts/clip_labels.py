"""CLIP text labels of neurons and concepts (CLIP-Dissect's idea, simplified), where CLIP's weights are
cached: a unit's top dataset patches are embedded with CLIP's image tower, averaged, and matched against
the text embeddings of a vocabulary (visual words - textures, colours, parts, materials, scenes - and the
model's class names, each as "a photo of {word}."); the best word is the unit's CLIP label, shown as such
next to its label from the data (:mod:`atlas.concepts.labels`).

Offline without the weights (:func:`atlas.metrics.clip.probe_clip` says why), the stage stores that
reason and pages show the CLIP label as *unavailable*, as the metrics do; nothing is downloaded.

Stage ``clip_labels``, one entry per (model, CLIP weights, vocabulary, units): ``labels.json``
(``{"available", "reason", "backbone", "vocabulary", "labels": {unit: [word, cosine]}}``) with units named
``neuron:<layer>:<channel>`` and ``concept:<class>:<k>``.
"""
from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import neuron_config, stable_hash
from .lookup import latest_entries

STAGE = "clip_labels"
VERSION = "1"
#: Patches per unit that CLIP reads (its best ones).
PATCHES = 10
PROMPT = "a photo of {}."

#: Visual words (Broden-style: colours, textures, materials, parts, scenes, common things).
VOCABULARY: Tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
    "stripes", "dots", "spots", "checkerboard", "grid", "zigzag", "waves", "swirls", "lines", "curves",
    "circles", "edges", "corners", "honeycomb", "mesh", "lattice", "scales", "fur", "feathers", "hair",
    "wool", "leather", "wood", "metal", "glass", "plastic", "fabric", "paper", "stone", "brick", "concrete",
    "sand", "snow", "ice", "water", "grass", "leaves", "flowers", "petals", "bark", "soil", "rock",
    "sky", "clouds", "sun", "shadow", "reflection", "smoke", "fire", "foam", "bubbles", "liquid",
    "eye", "eyes", "nose", "mouth", "ear", "whiskers", "face", "head", "paw", "leg", "tail", "wing", "beak",
    "hand", "finger", "skin", "teeth", "wheel", "tire", "spokes", "handle", "button", "knob", "screen",
    "text", "letters", "numbers", "logo", "sign", "window", "door", "roof", "wall", "floor", "stairs",
    "road", "fence", "pipe", "cable", "chain", "rope", "net", "spiral", "cup", "bowl", "plate", "bottle",
    "lens", "tripod", "camera", "engine", "seat", "mirror", "light", "lamp", "rocket", "flame", "tower",
    "building", "tree", "mountain", "sea", "beach", "forest", "field", "city", "indoor", "outdoor",
    "animal", "cat", "dog", "bird", "fish", "insect", "person", "food", "coffee", "bread", "fruit",
    "vehicle", "motorcycle", "car", "boat", "airplane", "texture", "pattern", "blur", "darkness",
)


def vocabulary(class_names: Sequence[str] = ()) -> List[str]:
    """The visual words and then the model's class names, each once."""
    return list(dict.fromkeys([*VOCABULARY, *(n for n in class_names if n)]))


def best_words(image_embeddings: np.ndarray, text_embeddings: np.ndarray, words: Sequence[str]) -> List[tuple]:
    """Per unit, the word whose normalised text embedding (W, D) is closest (cosine) to the unit's mean
    normalised image embedding (one (n, D) array per unit): ``[(word, cosine)]``."""
    t = text_embeddings / np.linalg.norm(text_embeddings, axis=1, keepdims=True).clip(1e-12)
    out = []
    for e in image_embeddings:
        e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
        m = e.mean(0)
        m = m / max(np.linalg.norm(m), 1e-12)
        sims = t @ m
        i = int(np.argmax(sims))
        out.append((words[i], float(sims[i])))
    return out


def unit_patches(pool, sources: Sequence[str], boxes: Sequence, size: int, out: int, n: int = PATCHES) -> torch.Tensor:
    """The first ``n`` example patches of a unit (64 px at the model's input size), resized to ``out``."""
    from ..data.patches import NeuronExamples, patch_images

    return patch_images(pool, NeuronExamples("", 0, list(sources[:n]), [tuple(b) for b in boxes[:n]], []), out,
                        size=size)


def units_of(runner, model: str) -> Dict[str, Tuple[List[str], List]]:
    """``{unit name: (sources, boxes)}`` of the stored dataset examples of ``model``'s planned neurons and
    of its concepts (from the pool scan)."""
    from .concept_examples import find_concept_examples
    from .examples import find_examples

    out: Dict[str, Tuple[List[str], List]] = {}
    for (layer, ch), d in sorted(find_examples(runner.store, model, runner.cfg).items()):
        ex = json.loads((d / "examples.json").read_bytes())
        out[f"neuron:{layer}:{ch}"] = (ex["sources"], ex["boxes"])
    found = find_concept_examples(runner.store, model, runner.cfg)
    for name, ex in sorted((found or {}).get("examples", {}).items()):
        c, _, k = name.partition("-")
        out[f"concept:{c}:{k}"] = (ex["sources"], ex["boxes"])
    return out


def label_units(encode_images: Callable[[torch.Tensor], np.ndarray], encode_texts: Callable[[List[str]], np.ndarray],
                pool, units: Dict[str, Tuple[List[str], List]], words: List[str], model_size: int,
                clip_size: int) -> Dict[str, list]:
    """``{unit: [word, cosine]}``: each unit's patches through ``encode_images`` ((n, 3, S, S) in [0, 1] ->
    (n, D)), matched against ``encode_texts(prompts)`` ((W, D))."""
    text = encode_texts([PROMPT.format(w) for w in words])
    names, embs = [], []
    for name, (sources, boxes) in units.items():
        if not sources:
            continue
        names.append(name)
        embs.append(encode_images(unit_patches(pool, sources, boxes, model_size, clip_size)))
    return {name: list(wc) for name, wc in zip(names, best_words(embs, text, words))}


def clip_stage(runner, model: str) -> None:
    """Run stage: the CLIP labels of ``model``'s neurons and concepts, or why there are none (whole-plan
    runs only; after the dataset-example stages)."""
    from ..metrics.clip import probe_clip

    cfg = runner.cfg
    if runner.scope is not None:
        return
    units = units_of(runner, model)
    if not units:
        return
    clip_model, tag = cfg.metrics.clip
    probe = probe_clip(clip_model, tag)
    from ..pipeline.planner import model_info

    words = vocabulary(model_info(model).class_names)
    key = {"model": model, "clip": probe.id, "vocabulary": stable_hash(words, length=12),
           "units": stable_hash(sorted(units.items()), length=16), "patches": PATCHES,
           "max_images": neuron_config(cfg).max_images, "v": VERSION}
    record = {"available": probe.reason is None, "reason": probe.reason or "", "backbone": probe.label,
              "vocabulary": len(words), "labels": {}}

    def compute():
        if probe.reason is None:
            record["labels"] = _with_clip(runner, model, clip_model, tag, units, words)
        return {"labels.json": json.dumps(record).encode()}, {}

    runner.store.cached_stage(STAGE, key, compute)


class _Memo:
    """The ``get``/``put`` of a feature cache, in memory (CLIP's text weights for one labelling)."""

    def __init__(self):
        self.items = {}

    def get(self, *key):
        return self.items.get(key)

    def put(self, *key_value):
        self.items[key_value[:-1]] = key_value[-1]


def _with_clip(runner, model: str, clip_model: str, tag: str, units, words) -> Dict[str, list]:
    """Label ``units`` with CLIP's image tower and the vocabulary's text embeddings (via the metrics' CLIP
    backbone: its zero-shot weights for ``words`` under the one prompt are the text embeddings)."""
    from ..metrics.clip import clip_backbone

    backbone = clip_backbone(clip_model, tag, runner.device, classnames=words, templates=[PROMPT])
    memo = _Memo()
    backbone.prepare(memo)
    text = next(iter(memo.items.values())).T  # (W, D)

    def encode_images(x: torch.Tensor) -> np.ndarray:
        x = torch.nn.functional.interpolate(x, size=(backbone.input_size, backbone.input_size), mode="bilinear",
                                            align_corners=False, antialias=True)
        return backbone.run(x, ["embedding"])["embedding"].cpu().numpy()

    size = runner.context(model).model.input_size
    return label_units(encode_images, lambda prompts: text, runner.pool(), units, words, size, backbone.input_size)


def find_clip_labels(store, model: str) -> Optional[dict]:
    """The newest stored CLIP labelling of ``model`` (``labels.json``), or None when the stage never ran."""
    found = latest_entries(store, STAGE, {"model": model, "v": VERSION}, ())
    d = found.get(())
    return json.loads((d / "labels.json").read_bytes()) if d is not None else None
