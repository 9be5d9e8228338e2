"""The configuration's frozen dataclasses: what an atlas contains and how it is computed.

A configuration says *what* to build (models, targets, methods, seeds, data) and *where* (store, site).
How each method optimises is the method's own frozen ``Config`` dataclass; a configuration only carries
overrides of its defaults (``settings``), so that presets stay short and every default is documented in
one place (the method module). ``[compute]`` and ``[cluster]`` say how the jobs are computed and
submitted; neither changes a job's key (a job is the same job on a laptop CPU in fp32 or on an H100 with
bf16 autocast; the device and precision are recorded in its metadata).

Field types and :func:`~atlas.config.validate.rule` metadata are also the rules a TOML file is checked
against (:mod:`atlas.config.validate`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..targets import KINDS
from .stages import LayerConfig
from .validate import freeze, rule

Settings = Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...]

PRECISIONS = ("auto", "fp32", "bf16")
EXECUTORS = ("slurm", "local")

_PAIRS = 'a list of ["layer", channel] pairs'
_POOL = 'a path or "bundled"'
#: What a device string may look like (checked against this machine by ``atlas.models.devices``).
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps(:0)?"
DEVICE_WHAT = '"auto", "cpu", "cuda", "cuda:N" or "mps" (a GPU is "cuda")'


def pool_location(spec: Optional[str]) -> Optional[str]:
    """A data pool's value normalised: ``"bundled"`` (or None) as is, a folder as its absolute, symlink-free
    path (``mixed``, ``./mixed``, ``mixed/`` and ``/abs/mixed`` are one folder, in job keys and in the
    site's configuration hash alike)."""
    import os

    if spec is None or spec == "bundled":
        return spec
    return os.path.realpath(os.path.expanduser(str(spec)))


def freeze_settings(settings: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Turn ``{method: {key: value}}`` into the sorted tuple form stored in :class:`AtlasConfig`."""
    return tuple((m, tuple(sorted((k, freeze(v)) for k, v in kv.items()))) for m, kv in sorted(settings.items()))


@dataclass(frozen=True)
class DataConfig:
    """Where real images come from.

    pool:
        ``"bundled"`` (photos shipped inside scikit-image and scikit-learn, the embedded default) or the
        path of an ImageNet-style folder (``<pool>/<wnid>/*.JPEG``, e.g. ``/data/imagenet/train``).
    references:
        N, the number of real images per class used as references (VITAL: 50).
    spectrum_images:
        how many pool images estimate the MACO magnitude spectrum (mean |rfft2| in decorrelated colour).
    eval_pool:
        where the metrics' real images come from (FID/KID, plausibility, the real-image rows), e.g.
        ``/data/imagenet/val`` in the same ``<wnid>/`` layout, so that FVs are judged against images their
        references were not drawn from; None: ``pool``. Does not change any job (only the metrics).
    """

    pool: str = rule("bundled", what=_POOL)
    references: int = rule(50, ge=1)
    spectrum_images: int = rule(2000, ge=1)
    eval_pool: Optional[str] = rule(None, what=_POOL)


@dataclass(frozen=True)
class ModelConfig:
    """A lab's own model (a ``[model.<name>]`` table): an architecture, a checkpoint and class names.

    arch:          a torchvision classifier name (``resnet50``), ``"timm:<name>"``, or
                   ``"python:<module>:<callable>"`` (a callable returning the ``nn.Module``).
    checkpoint:    a state dict (also nested under ``"state_dict"`` / ``"model"``; ``"module."`` prefixes
                   are stripped), a pickled module, or a TorchScript export. Required unless ``arch`` is a
                   ``python:`` factory that returns a trained module.
    labels:        one class name per line, in output order (or a JSON list); default: the data folder's
                   class folders, sorted.
    input_size, mean, std, in_chans: the input, overriding what the architecture's pretrained
                   configuration says (timm's) or ImageNet's (224 px, ImageNet mean/std, 3 channels);
                   ``in_chans`` is read from the checkpoint's first convolution when not given.
    blocks:        layers VITAL matches (default: derived from the architecture).
    concept_layer, neuron_layer: CRAFT's layer (non-negative activations) and the default layer of neuron
                   targets (default: the named model's of the same architecture, if any; else the targets
                   that need them are skipped with the reason).
    lrp:           LRP rules (``atlas.relevance`` names such as ``"resnet"``, ``"generic"``; ``"none"``);
                   default: derived from the architecture (none for ``python:`` factories: stated, skipped).
    """

    arch: str = rule("", what='a torchvision name, "timm:<name>" or "python:<module>:<callable>"')
    checkpoint: Optional[str] = rule(None, what="a path")
    labels: Optional[str] = rule(None, what="a path")
    input_size: Optional[int] = rule(None, ge=8)
    mean: Optional[Tuple[float, ...]] = rule(None, min_length=1)
    std: Optional[Tuple[float, ...]] = rule(None, min_length=1, gt=0)
    in_chans: Optional[int] = rule(None, ge=1)
    blocks: Optional[Tuple[str, ...]] = rule(None, min_length=1, what="a non-empty list of layer names")
    concept_layer: Optional[str] = rule(None, what="a layer name")
    neuron_layer: Optional[str] = rule(None, what="a layer name")
    lrp: Optional[str] = rule(None, what='LRP rules ("generic", "resnet", ...) or "none"')

    def __post_init__(self):
        if not self.arch:
            raise ValueError('arch is missing: a torchvision name, "timm:<name>" or "python:<module>:<callable>"')


@dataclass(frozen=True)
class TargetsConfig:
    """Which targets to visualise besides the classes' logits (each kind is planned by its own source).

    classes:        one class-logit target per configured class.
    concepts:       K CRAFT concepts per class (0: none; Lens used 10) at ``concept_layer`` (None: the
                    model's default concept layer).
    neurons:        user-listed neurons as ``[layer, channel]`` pairs.
    top_neurons:    the k most relevant channels per class at ``neuron_layer``.
    random_neurons: a fixed random sample of channels of ``neuron_layer`` (VITAL evaluated 90).
    images:         M real images per class, explained by the image-seeded methods.
    concept_settings: overrides of :class:`atlas.config.stages.CraftConfig` (images per class, Sobol
                    design, mosaic and map settings, how many concepts are visualised, ...); checked when
                    the concept stage reads them (:func:`atlas.config.stages.craft_config`).
    neuron_settings: overrides of :class:`atlas.config.stages.NeuronConfig` (dataset examples,
                    relevance, polysemantic neurons and their clusters, ...).
    kind_methods:   ``((kind, (method, ...)), ...)``: only these methods visualise targets of that kind
                    (a kind not listed is visualised by every configured method).
    layers:         whole layers: every channel of each is visualised (its methods, diverse and negative
                    pictures and settings: ``layer_settings``, :class:`atlas.config.stages.LayerConfig`),
                    with its dataset examples, and shown on a layer page.
    """

    classes: bool = True
    concepts: int = 0
    concept_layer: Optional[str] = rule(None, what="a layer name")
    neurons: Tuple[Tuple[str, int], ...] = rule((), ge=0, what=_PAIRS)
    top_neurons: int = 0
    random_neurons: int = 0
    neuron_layer: Optional[str] = rule(None, what="a layer name")
    images: int = rule(0, ge=0, le=1000)  # per class; each image is 2 targets (its class, its rival)
    concept_settings: Tuple[Tuple[str, Any], ...] = rule((), table=True)
    neuron_settings: Tuple[Tuple[str, Any], ...] = rule((), table=True)
    kind_methods: Tuple[Tuple[str, Tuple[str, ...]], ...] = rule(
        (), table=True, keys=KINDS, key_noun="target kind", what="a table of kind = [methods]")
    layers: Tuple[str, ...] = rule((), what="a list of layer names")
    layer_settings: LayerConfig = field(default_factory=LayerConfig)


@dataclass(frozen=True)
class MetricsConfig:
    """How the metrics step (``atlas metrics``; :mod:`atlas.metrics`) evaluates a finished build.

    enabled:      run the metrics step in ``atlas build`` (``atlas metrics`` runs it regardless).
    real_images:  real images per class drawn from the pool for FID/KID, plausibility, the t-SNE and the
                  "real images" baseline row (VITAL/MACO: ImageNet images of the same classes).
    judges:       other classifiers whose top-1 accuracy on the FVs is the transferability score (MACO
                  Table 2: six classifiers; the demo uses EfficientNet-Lite1 and Lite2).
    substitute:   model whose penultimate features stand in for Inception-v3 in FID/KID when the FID
                  weights are absent (always labelled as a substitute).
    fid_models:   models in whose penultimate features FID is also reported, each in its own column, as
                  VITAL Table 1 reports it in ResNet50's ("RN50"); the model's own penultimate features
                  ("Arch.") are always a column too. Unavailable weights: the column says why.
    clip:         open_clip (model, pretrained tag) for zero-shot top-1/top-5 (VITAL Table 1: ViT-B/32).
    control:      real images per neuron in the CoSy control set (VITAL supp. §2.1, Table 2: the top-50
                  real images that most activate the neuron).
    control_from: what the control set holds: ``images``, the neuron's top whole images (§2.1), or
                  ``patches``, its top 64-px patches (one per source image) upsampled to the input size
                  (their activations run higher than whole images', which lowers AUC and MAD).
    tsne_classes: class ids embedded together in the t-SNE (VITAL Fig. 9: five dog breeds); None: the
                  first ten configured classes.
    seed:         seed of the real-image draw (1: not the seed-0 references the methods match), of the KID
                  subsets and of the t-SNE.
    """

    enabled: bool = True
    real_images: int = rule(50, ge=2)
    judges: Tuple[str, ...] = rule((), what="a list of model names")
    substitute: str = rule("efficientnet_lite2", what="a model name")
    fid_models: Tuple[str, ...] = rule(("resnet50",), what="a list of model names")
    clip: Tuple[str, str] = rule(("ViT-B-32", "openai"), what='["model", "pretrained"]')
    control: int = rule(50, ge=1)
    control_from: str = rule("images", choices=("images", "patches"))
    tsne_classes: Optional[Tuple[int, ...]] = rule(None, min_length=1, what="a non-empty list of class ids")
    seed: int = 1


@dataclass(frozen=True)
class ComputeConfig:
    """Throughput settings of the optimisation loop (see :mod:`atlas.pipeline.compute`).

    precision:
        ``"auto"`` (bf16 autocast on a GPU that supports it, fp32 elsewhere), ``"fp32"`` or ``"bf16"``.
        bf16 keeps results within the tolerance stated in :mod:`atlas.pipeline.compute`. Part of every
        job's key (a bf16 and an fp32 image are two jobs); ``auto`` resolves where the plan is made.
    channels_last:
        run convolutional models in channels-last memory format (identical results up to float rounding).
    fold_batchnorm:
        run a copy of the model with each BatchNorm folded into the convolution before it (identical results
        up to float rounding; EfficientNet-Lite0 runs 1.15-1.63x as fast on a CPU: :mod:`atlas.models.fold`).
    cudnn_benchmark:
        let cuDNN time its convolution algorithms for each new shape and keep the fastest.
    tf32:
        allow TensorFloat-32 matrix products and convolutions for the fp32 parts on Ampere and newer GPUs.
    """

    precision: str = rule("auto", choices=PRECISIONS)
    channels_last: bool = True
    fold_batchnorm: bool = True
    cudnn_benchmark: bool = True
    tf32: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    """Resources of one shard when submitted with ``atlas submit`` (submitit; SLURM or local processes).

    shards:           number of array tasks (``atlas submit --shards`` overrides it).
    partition, account, qos, constraint: SLURM placement (empty: the cluster's default).
    gpus:             GPUs per shard (one shard uses one device; more GPUs means more shards).
    cpus:             CPU cores per shard (data loading, PNG encoding).
    mem_gb:           memory per shard.
    timeout_min:      wall-clock limit per shard; a shard that reaches it is checkpointed and requeued.
    array_parallelism: how many shards may run at the same time.
    max_requeues:     how often a pre-empted or timed-out shard is requeued before it gives up.
    folder:           where submitit keeps its logs and pickles (default ``<store>/submitit``).
    gpu_memory_gb:    memory of one GPU of the nodes the shards run on (e.g. 80 for an H100): ``atlas
                      submit`` refuses, before submitting, a plan whose largest batch cannot fit it (the
                      estimate ``atlas run`` checks on the device itself). Unset: not checked, and
                      ``atlas submit`` says so.
    """

    shards: int = rule(8, ge=1)
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus: int = rule(1, ge=1)
    cpus: int = rule(8, ge=1)
    mem_gb: int = rule(64, ge=1)
    timeout_min: int = rule(240, ge=1)
    array_parallelism: int = rule(64, ge=1)
    max_requeues: int = rule(10, ge=1)
    folder: Optional[str] = None
    gpu_memory_gb: Optional[float] = rule(None, gt=0)


def _address(name: str, value: Optional[str]) -> Optional[str]:
    """``value`` as an http(s) address ending in ``/`` (None stays None); ValueError names ``name``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or "://" not in value[:9]:
        raise ValueError(f"{name} must be an http:// or https:// address, got {value!r}")
    if any(c.isspace() for c in value) or any(c in value for c in "?#\"\'<>"):
        raise ValueError(f"{name} must be a plain address (no spaces, quotes, query or fragment), got {value!r}")
    return value if value.endswith("/") else value + "/"


@dataclass(frozen=True)
class SiteConfig:
    """Where the website is written and where it is published (``[site]``; ``site = "folder"`` alone sets
    ``folder``). See :mod:`atlas.sitegen.trees`.

    folder:
        the pages' folder: HTML, stylesheet and scripts, the small JSON - what a static host serves
        (GitHub Pages, GitLab Pages, Netlify). Without ``assets_url`` everything is in it and it works from
        ``file://``.
    url:
        the address the pages are published at (e.g. ``https://lab.github.io/atlas/``): the sitemap's
        addresses, and the links back to the pages from the assets' host.
    assets_url:
        where the assets are published (object storage, a CDN, a Hugging Face dataset). Set, every image and
        download, every versioned page (they never change) and the large JSON go to ``assets_folder`` and are
        referenced at this address; needs ``url``.
    assets_folder:
        where the assets tree is written (default: ``<folder>-assets`` next to ``folder``).
    degenerate:
        what the site does with an image the image checks call degenerate (noise, saturated, or a class the
        model does not rank in its top 5: :mod:`atlas.image_checks`): ``"withhold"`` (default: never shown as
        a result, the reason in its place) or ``"mark"`` (shown under a visible "degenerate" warning with the
        reason - to look at what a method's settings produce, e.g. a few-step test build).
    """

    folder: str = rule("site", folder="--site")
    url: Optional[str] = rule(None, what="an http(s) address")
    assets_url: Optional[str] = rule(None, what="an http(s) address")
    assets_folder: Optional[str] = None
    degenerate: str = rule("withhold", choices=("withhold", "mark"))

    def __post_init__(self):
        object.__setattr__(self, "url", _address("site.url", self.url))
        object.__setattr__(self, "assets_url", _address("site.assets_url", self.assets_url))
        if self.assets_url and not self.url:
            raise ValueError("site.assets_url needs site.url (the pages' address), so that pages on the assets' "
                             "host can link back (--site-url)")
        if self.assets_url and self.url and self.assets_url == self.url:
            raise ValueError("site.assets_url must differ from site.url (leave assets_url unset for one folder)")

    def __fspath__(self) -> str:
        """A site configuration stands for its pages' folder where a path is expected."""
        return self.folder

    @property
    def external_assets(self) -> bool:
        return self.assets_url is not None

    @property
    def assets_path(self) -> str:
        """The folder of the assets tree (the pages' folder itself when assets are not apart)."""
        if not self.external_assets:
            return self.folder
        return self.assets_folder or self.folder.rstrip("/\\") + "-assets"


@dataclass(frozen=True)
class AtlasConfig:
    """Everything that decides what an atlas contains.

    classes:
        class ids (output indices), class names of the model's labels or ranges ``"0-99"`` (resolved per
        model when planning); ``None`` (``"all"`` in a file) means every class of the model.
    model:
        ``((name, ModelConfig), ...)``: models defined by the file (``[model.<name>]`` tables: a lab's own
        architecture, checkpoint and labels); list them in ``models`` (a file that defines models and does
        not say ``models`` builds them all).
    settings:
        per-method overrides of the method's ``Config`` defaults, e.g. ``(("maco", (("steps", 64),)),)``;
        a file's ``[settings.<method>]`` table updates the preset's settings of that method key by key.
    batch_size:
        how many targets of one (model, method, seed) are optimised together in one batch.
    site:
        where the website is written and published (``[site]``: :class:`SiteConfig`); ``site = "folder"``
        is short for ``[site] folder = "folder"``.
    batch_sizes:
        the same per method, where it differs (``[batch_sizes] vital = 6``): on a CPU, methods whose step
        is one image per target gain from batching, those with many crops per target much less. A job's
        key records its batch size (an image depends on the batch it is optimised in). A file that starts
        from a preset and sets ``batch_size`` but not ``batch_sizes`` drops the preset's ``batch_sizes``.
    left_out:
        methods of ``methods`` that this atlas does not run, each with the reason its pages give
        (``[left_out] plugin_inversion = "..."``), or only a method's targets of one kind (``"vital.neuron"
        = "..."``): the plan records every target left out as skipped with that reason, so the method page,
        the class or model pages and ``atlas plan`` say why there is no image instead of showing nothing or
        a degenerate one. The demo preset leaves out the data-free inversions and VITAL's neurons, whose
        images are noise at a CPU budget (bench/README.md, "The demo preset").
    compute, cluster:
        how the jobs are computed (precision, memory format) and submitted (``[compute]``, ``[cluster]``);
        neither changes a job's key.
    """

    name: str = "custom"
    title: str = "Feature-visualization atlas"
    models: Tuple[str, ...] = rule(("efficientnet_lite0",), min_length=1, what="a non-empty list of names")
    classes: Optional[Tuple[Union[int, str], ...]] = rule(
        None, min_length=1, aliases={"all": None}, single=True,
        what='a non-empty list of class ids, names or ranges ("0-99"), or "all"')
    methods: Tuple[str, ...] = rule(("maco", "fourier"), min_length=1, what="a non-empty list of names")
    settings: Settings = rule((), table=True, merge=True, what="a table of [settings.<method>] tables")
    model: Tuple[Tuple[str, ModelConfig], ...] = rule((), table=True, what="a table of [model.<name>] tables")
    seeds: Tuple[int, ...] = rule((0,), min_length=1)
    data: DataConfig = field(default_factory=DataConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    batch_size: int = rule(4, ge=1)
    batch_sizes: Tuple[Tuple[str, int], ...] = rule((), table=True, what="a table of <method> = targets per batch")
    left_out: Tuple[Tuple[str, str], ...] = rule((), table=True,
                                                 what='a table of <method> or "<method>.<kind>" = "the reason"')
    store: str = rule("store", folder="--store")
    site: SiteConfig = field(default_factory=SiteConfig, metadata={"shorthand": "folder"})
    device: str = rule("auto", pattern=DEVICE_PATTERN, what=DEVICE_WHAT)
    download: bool = False
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def model_spec(self, name: str) -> Optional[ModelConfig]:
        """The ``[model.<name>]`` table of model ``name``, or None (a zoo model)."""
        for n, spec in self.model:
            if n == name:
                return spec
        return None

    def left_out_entries(self) -> Tuple[Tuple[str, Optional[str], str], ...]:
        """``[left_out]`` as ``(method, kind or None, reason)``: a key ``vital`` leaves out the method, a key
        ``vital.neuron`` only its targets of that kind (the planner checks both names)."""
        return tuple((key.partition(".")[0], key.partition(".")[2] or None, why) for key, why in self.left_out)

    def batch_size_of(self, method: str) -> int:
        """Targets per batch for ``method`` (``batch_sizes``, else ``batch_size``)."""
        return dict(self.batch_sizes).get(method, self.batch_size)

    def method_settings(self, method: str) -> Dict[str, Any]:
        for name, kv in self.settings:
            if name == method:
                return dict(kv)
        return {}
