"""What a metric suite sees while evaluating one model: its finished jobs, the backbones' availability,
the image groups (FVs, real images, neuron control patches) and their cached features."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import AtlasConfig
from ..pipeline.jobs import Job
from ..pipeline.store import Store
from .backbones import Backbone, Role, Unavailable
from .cache import FeatureCache, ItemGroup, fv_group, patch_group, real_group, source_group


@dataclass(frozen=True)
class JobRef:
    """A finished job as the metrics read it: the job, its stored metadata, the stored image the metrics
    judge (``file``: the image its page shows as the result) and that image's SHA-256."""

    job: Job
    meta: Dict[str, Any] = field(compare=False, hash=False)
    sha: str = ""
    file: str = "image.png"  # the stored image the metrics judge (``Method.judged``)


@dataclass(frozen=True)
class Request:
    """Features a suite needs: ``output`` of the backbone playing ``role`` for every image of ``group``."""

    role: str
    output: str
    group: ItemGroup = field(compare=False, hash=False)


@dataclass
class MetricContext:
    """Per-model state shared by the suites (built by the runner; opened backbones are kept until
    :meth:`close`)."""

    cfg: AtlasConfig
    model: str
    store: Store
    roles: Dict[str, Role]
    device: torch.device
    pool_factory: Any
    progress: bool = True
    layer_channels: Dict[str, List[int]] = field(default_factory=dict)  # planned neurons per layer
    cache: FeatureCache = None
    opened: Dict[str, Backbone] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)
    _groups: Dict[Any, Any] = field(default_factory=dict)  # ItemGroups; a control set: (ItemGroup, its examples)
    _fingerprint: Optional[str] = None
    _pool: Any = None
    _handle: Any = None
    #: The pool of the real images the FVs are compared with (``data.eval_pool``; None: ``pool_factory``).
    real_pool_factory: Any = None
    _real_pool: Any = None
    _real_fingerprint: Optional[str] = None

    def __post_init__(self):
        self.cache = self.cache or FeatureCache(self.store)

    # ------------------------------------------------------------------ data
    @property
    def pool(self):
        if self._pool is None:
            self._pool = self.pool_factory()
        return self._pool

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.pool.fingerprint()
        return self._fingerprint

    @property
    def real_pool(self):
        """The pool of :meth:`real` (``data.eval_pool``, e.g. an ImageNet val folder; else the main pool)."""
        if self.real_pool_factory is None:
            return self.pool
        if self._real_pool is None:
            self._real_pool = self.real_pool_factory()
        return self._real_pool

    @property
    def real_fingerprint(self) -> str:
        """The fingerprint of :attr:`real_pool` (computed once: a folder's hashes every class)."""
        if self.real_pool_factory is None:
            return self.fingerprint
        if self._real_fingerprint is None:
            self._real_fingerprint = self.real_pool.fingerprint()
        return self._real_fingerprint

    def real(self, class_id: int) -> ItemGroup:
        """The real images of ``class_id`` compared with the FVs (``metrics.real_images``, ``metrics.seed``),
        from ``data.eval_pool`` when set (images the references were not drawn from)."""
        key = ("real", class_id)
        if key not in self._groups:
            m = self.cfg.metrics
            self._groups[key] = real_group(lambda: self.real_pool, self.real_fingerprint, class_id,
                                           m.real_images, m.seed)
        return self._groups[key]

    def fv(self, refs: Sequence[JobRef], crop: bool = False) -> ItemGroup:
        """The judged images of ``refs``; ``crop``: their centre crops (the evaluation transform of the real
        images, for FID/KID)."""
        key = ("fv", crop, tuple(r.job.key for r in refs))
        if key not in self._groups:
            self._groups[key] = fv_group(self.store, f"{len(refs)} FVs", [(r.job.key, r.file, r.sha) for r in refs],
                                         crop=crop)
        return self._groups[key]

    def control(self, layer: str, channel: int) -> ItemGroup:
        """The CoSy control set of neuron (``layer``, ``channel``): its top ``metrics.control`` real images
        (VITAL supp. §2.1; ``metrics.control_from = "patches"``: its top patches with unique source images),
        mined for every planned neuron (cached stages ``top_images`` / ``top_patches``, the latter shared
        with the neurons' dataset examples when their N is the same). The top images of every planned layer
        come from one sweep."""
        return self._control(layer, channel)[0]

    def control_scores(self, layer: str, channel: int) -> np.ndarray:
        """The neuron's activation (channel mean) on each image of its control set, as the mining sweep
        measured it: the images' activations, which the CoSy suite does not compute a second time."""
        return np.asarray(self._control(layer, channel)[1].scores, np.float32)

    def _control(self, layer: str, channel: int):
        key = ("control", layer, channel)
        if key not in self._groups:
            from ..data.patches import cached_top_images_of_layers, cached_top_patches
            from ..methods.vital.references import examples_max_images
            from ..progress import stage

            handle = self.self_model()
            patches = self.cfg.metrics.control_from == "patches"
            layers = {layer: sorted(set(self.layer_channels.get(layer, [])) | {channel})}
            if not patches:  # every planned layer whose control sets are not mined yet, in the same sweep
                layers.update({l: sorted(set(c)) for l, c in self.layer_channels.items()
                               if l != layer and c and ("control", l, min(c)) not in self._groups})
            with stage(f"metrics · top {'patches' if patches else 'images'} of {', '.join(layers)}",
                       len(self.pool.source_ids()), unit="image", enabled=self.progress) as bar:
                if patches:
                    found = {layer: cached_top_patches(self.store, handle, self.pool, layer, layers[layer],
                                                       self.cfg.metrics.control, progress=bar.update,
                                                       max_images=examples_max_images(self.cfg))}
                else:
                    found = cached_top_images_of_layers(self.store, handle, self.pool, layers, self.cfg.metrics.control,
                                                        max_images=examples_max_images(self.cfg), progress=bar.update)
            group = patch_group if patches else source_group
            for l, ex in found.items():
                for c, e in ex.items():
                    self._groups[("control", l, c)] = (group(self.pool, self.fingerprint, self.model,
                                                             handle.input_size, e), e)
        return self._groups[key]

    def self_model(self):
        """The loaded model under study (for mining top patches)."""
        if self._handle is None:
            from ..models import load_model

            self._handle = load_model(self.model, device=self.device, download=self.cfg.download)
        return self._handle

    # ------------------------------------------------------------------ backbones
    def reason(self, role: str) -> Optional[str]:
        """Why ``role``'s backbone is unavailable (probe or failed opening), or None."""
        r = self.roles[role]
        return r.probe.reason or self.failed.get(r.probe.id)

    def label(self, role: str) -> str:
        return self.roles[role].probe.label

    def open(self, role: str) -> Backbone:
        r = self.roles[role]
        if r.probe.id not in self.opened:
            try:
                self.opened[r.probe.id] = r.open(self.device)
            except Unavailable as exc:
                self.failed[r.probe.id] = str(exc)
                raise
        return self.opened[r.probe.id]

    def close(self, role: Optional[str] = None) -> None:
        if role is None:
            self.opened.clear()
            self._handle = None
        else:
            self.opened.pop(self.roles[role].probe.id, None)

    def judges(self) -> List[str]:
        return [r for r in self.roles if r.startswith("judge:")]

    # ------------------------------------------------------------------ features
    def rows(self, role: str, output: str, group: ItemGroup) -> List[Optional[np.ndarray]]:
        """Cached features of every image of ``group`` (None where missing); Unavailable if the role is."""
        reason = self.reason(role)
        if reason:
            raise Unavailable(reason)
        bid = self.roles[role].probe.id
        return [self.cache.get(bid, output, i) for i in group.ids]

    def feats(self, role: str, output: str, group: ItemGroup) -> np.ndarray:
        """The present rows of :meth:`rows` stacked into (N, D) (N may be 0)."""
        rows = [r for r in self.rows(role, output, group) if r is not None]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def stacked(self, role: str, output: str, groups: Sequence[ItemGroup]) -> np.ndarray:
        parts = [f for g in groups if (f := self.feats(role, output, g)).size]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def fid_role(self) -> Tuple[str, str]:
        return "fid", self.roles["fid"].fid_output
