"""CLIP zero-shot classification of FVs (VITAL supplementary §1.2, Table 1 "Zero-Shot Prediction").

open_clip ViT-B/32 with OpenAI's weights, read from the Hugging Face cache (never downloaded by atlas); the
1000 ImageNet class names and the 80 prompt templates are open_clip's (``zero_shot_metadata``, from OpenAI's
"Prompt Engineering for ImageNet" notebook). Per class the 80 prompt embeddings are L2-normalised, averaged
and normalised again (``open_clip.build_zero_shot_classifier``); an image's class ranking is the cosine
similarity of its normalised embedding with those weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..config import stable_hash
from .backbones import Backbone, Probe, Unavailable

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _pretrained_cfg(model: str, tag: str) -> dict:
    import open_clip

    return open_clip.get_pretrained_cfg(model, tag) or {}


def clip_weights(model: str, tag: str) -> Optional[Path]:
    """The cached weights file of open_clip ``model``/``tag`` in the Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    from ..models.zoo import hf_cache_dir

    repo = (_pretrained_cfg(model, tag).get("hf_hub") or "").strip("/")
    if not repo:
        return None
    for name in WEIGHT_FILES:
        hit = try_to_load_from_cache(repo, name, cache_dir=str(hf_cache_dir()))
        if isinstance(hit, str):
            return Path(hit)
    return None


def probe_clip(model: str, tag: str) -> Probe:
    """Whether CLIP ``model``/``tag`` can be used offline, and which weights file it would be."""
    label = f"CLIP {model} ({tag})"
    try:
        import open_clip  # noqa: F401
    except ImportError:
        return Probe(f"clip:{model}:{tag}", label, "open_clip is not installed (pip install open_clip_torch)")
    if not _pretrained_cfg(model, tag):
        return Probe(f"clip:{model}:{tag}", label, f"open_clip has no pretrained weights {model}/{tag}")
    path = clip_weights(model, tag)
    if path is None:
        repo = _pretrained_cfg(model, tag).get("hf_hub", "").strip("/")
        return Probe(f"clip:{model}:{tag}", label,
                     f"CLIP {model}/{tag} weights are not in the Hugging Face cache (hub repo {repo}; not downloaded offline)")
    return Probe(f"clip:{model}:{tag}:{path.name}:{path.stat().st_size}", label)


def imagenet_prompts() -> Tuple[Sequence[str], Sequence]:
    """open_clip's (OpenAI-curated) ImageNet class names and the 80 prompt templates."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    return IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES


def text_weights_id(backbone_id: str, classnames: Sequence[str], templates: Sequence) -> str:
    """Cache identity of the zero-shot weights for these class names and templates."""
    prompts = [t("{}") if callable(t) else str(t) for t in templates]
    return stable_hash([backbone_id, list(classnames), prompts], length=20)


def class_prompts(classnames: Optional[Sequence[str]] = None) -> Tuple[Sequence[str], Sequence]:
    """The class names (a model's own labels, default ImageNet's) and the 80 prompt templates."""
    names, templates = imagenet_prompts()
    return (classnames or names), templates


def text_weights_ready(cache, backbone_id: str, classnames: Optional[Sequence[str]] = None) -> bool:
    """Whether the zero-shot weights of CLIP ``backbone_id`` for ``classnames`` (default: ImageNet's) are in
    the feature cache."""
    return cache.has("clip-text", "weights", text_weights_id(backbone_id, *class_prompts(classnames)))


def imagenet_text_weights(cache, backbone_id: str, classnames: Optional[Sequence[str]] = None) -> Optional[np.ndarray]:
    """The cached zero-shot weights (D, C) of CLIP ``backbone_id`` for ``classnames`` (default: ImageNet's
    1000), or None."""
    return cache.get("clip-text", "weights", text_weights_id(backbone_id, *class_prompts(classnames)))


def zero_shot_weights(model, tokenizer, classnames: Sequence[str], templates: Sequence,
                      device: torch.device) -> np.ndarray:
    """(D, C) zero-shot classifier: per class, normalised prompt embeddings averaged and re-normalised."""
    import open_clip

    with torch.no_grad():
        w = open_clip.build_zero_shot_classifier(model, tokenizer, classnames, templates,
                                                 num_classes_per_batch=10, device=device)
    return w.float().cpu().numpy()


def zero_shot_ranking(embeddings: np.ndarray, weights: np.ndarray, k: int = 5) -> np.ndarray:
    """Top-``k`` class ids per image from normalised image ``embeddings`` (N, D) and ``weights`` (D, C)."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    return np.argsort(-(e @ weights), axis=1, kind="stable")[:, :k]


def clip_backbone(model: str, tag: str, device: torch.device,
                  classnames: Optional[Sequence[str]] = None, templates: Optional[Sequence] = None) -> Backbone:
    """CLIP's image tower as a backbone (output ``embedding``: L2-normalised); its ``prepare(cache)`` stores
    the zero-shot text weights (ImageNet names x 80 templates unless given) under :func:`text_weights_id`."""
    probe = probe_clip(model, tag)
    if probe.reason:
        raise Unavailable(probe.reason)
    import open_clip

    cfg = _pretrained_cfg(model, tag)
    try:
        net = open_clip.create_model(model, pretrained=str(clip_weights(model, tag)), device=device,
                                     force_quick_gelu=bool(cfg.get("quick_gelu", False)))
    except Exception as exc:  # corrupt or incompatible file
        raise Unavailable(f"could not load CLIP {model}/{tag}: {type(exc).__name__}: {exc}") from None
    net.eval()
    tokenizer = open_clip.get_tokenizer(model)
    size = net.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
    names, temps = imagenet_prompts()
    classnames, templates = classnames or names, templates or temps

    @torch.no_grad()
    def run(x: torch.Tensor, outputs: Sequence[str]) -> Dict[str, torch.Tensor]:
        feats = net.encode_image((x.to(device) - mean) / std)
        return {"embedding": F.normalize(feats.float(), dim=-1)}

    def prepare(cache) -> None:
        key = text_weights_id(probe.id, classnames, templates)
        if cache.get("clip-text", "weights", key) is None:
            cache.put("clip-text", "weights", key, zero_shot_weights(net, tokenizer, classnames, templates, device))

    return Backbone(probe.id, probe.label, size, run, prepare)
