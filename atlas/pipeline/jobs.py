"""Jobs: one (model, method, method config, target, seed) and its key.

The key is the hash of everything that determines the result - the model, the method and its code
version, the method's full configuration, the target, the seed, the numeric precision it is computed in
(bf16 and fp32 images are two jobs, never one key), for methods that use real images the data settings (the
pool's normalised path and a fingerprint of its contents), and the batch the job is optimised in - so a
rerun skips finished jobs and redoes exactly the jobs whose bytes would change (doit/DVC style).

Why the batch: a job's image depends on the batch it is optimised in. Each target draws its own random
numbers (``Job.target_seed``), but batched kernels round differently at each batch size and NAdam at lr
1.0 grows the difference chaotically: the same MACO job optimised alone and next to another ends 29/255
apart on average, while it ends bit-identical next to any other target, in either position
(``bench/batch_identity.py``). Making an image independent of its batch would mean giving up batching, the
main speed lever on a GPU; so the batch is part of the key instead, in one field: ``batch``, the number of
targets optimised together. The planner sets it to the configured size (``AtlasConfig.batch_size_of``);
:func:`atlas.pipeline.sharding.bind_batches` then replaces it by the size of the batch the job is actually
cut into (the last batch of a group may be smaller). It is in the key when above 1 and the method's own
configuration does not already hold it, so a job optimised alone has the key it has with ``batch_size = 1``.
For methods whose objective couples the batch (``Method.batch_coupled``: DeepInversion's batch statistics)
the key also names *which* targets share it: ``batch_mates``, their base keys (keys of the jobs alone) in
batch order.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, Tuple

from ..config import stable_hash
from ..config.hashing import Canonical, canonical_form
from ..targets import Target


@dataclass(frozen=True)
class Job:
    model: str
    method: str
    target: Target
    seed: int
    config: Any = field(compare=False)
    version: str = "1"
    data: Tuple[Tuple[str, Any], ...] = ()
    precision: str = "fp32"  # "fp32" or "bf16" (autocast of the model's forward; atlas.pipeline.compute)
    #: targets per optimisation: as planned (``AtlasConfig.batch_size_of``; DeepInversion: its own setting),
    #: then the size of the job's own batch (``sharding.bind_batches``); 0: not planned (a job made by hand),
    #: the runner's ``batch_size`` decides
    batch: int = 0
    #: for batch-coupled methods: base keys of the jobs optimised together with it, in batch order
    batch_mates: Tuple[str, ...] = ()
    #: identity of a configuration-defined model's weights and input (``atlas.models.user.model_identity``):
    #: a new checkpoint under the same name is another job; "" for the zoo's models (their name says it).
    model_id: str = ""

    def spec(self) -> Dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        return self._spec(dataclasses.asdict(self.config), self.target.to_dict(), dict(self.data))

    def _hashed_spec(self, alone: bool = False) -> Dict[str, Any]:
        """:meth:`spec` with its shared parts (configuration, target, data) in canonical form, each
        canonicalised once per distinct value: the same hash, without re-encoding them per job."""
        return self._spec(_config_form(self.config), _target_form(self.target), _data_form(self.data), alone)

    def _spec(self, config, target, data, alone: bool = False) -> Dict[str, Any]:
        """The spec; ``alone``: as if the job were optimised in a batch of its own (``base_key``)."""
        batch, mates = (1, ()) if alone else (self.batch, self.batch_mates)
        spec = {
            "model": self.model,
            "method": self.method,
            "method_version": self.version,
            "config": config,
            "target": target,
            "seed": self.seed,
            "data": data,
            "precision": self.precision,
        }
        if batch > 1 and not hasattr(self.config, "batch_size"):  # DeepInversion: in its config
            spec["batch"] = batch
        if mates:
            spec["batch_mates"] = list(mates)
        if self.model_id:
            spec["model_id"] = self.model_id
        return spec

    @cached_property
    def key(self) -> str:
        return stable_hash(self._hashed_spec(), length=20)

    @cached_property
    def base_key(self) -> str:
        """The key of this job optimised alone (its identity within a batch's ``batch_mates``)."""
        alone = self.batch <= 1 and not self.batch_mates
        return self.key if alone else stable_hash(self._hashed_spec(alone=True), length=20)

    @cached_property
    def config_hash(self) -> str:
        try:
            return _cached_config_hash(self.config)
        except TypeError:  # an unhashable configuration
            return stable_hash(_config_form(self.config), length=12)

    @cached_property
    def target_seed(self) -> int:
        """The seed of this target's random stream: independent of the batch it is optimised in and of
        the method's settings (so that changing ``steps`` continues from the same start)."""
        return int(stable_hash([self.model, self.method, self.target.to_dict(), self.seed], length=15), 16)

    def batch_group(self) -> tuple:
        """Jobs with the same group may share one optimisation (same model, method, settings, seed,
        target kind and layer, precision)."""
        return (self.model, self.method, self.config_hash, self.seed, self.target.kind, self.target.layer,
                self.precision)

    def label(self) -> str:
        return f"{self.model}/{self.method}/{self.target.slug()}/s{self.seed}"


@functools.lru_cache(maxsize=4096)
def _cached_form(config) -> Canonical:
    return canonical_form(dataclasses.asdict(config))


@functools.lru_cache(maxsize=65536)
def _target_form(target: Target) -> Canonical:
    return canonical_form(target.to_dict())


def _data_form(data) -> Any:
    try:
        return _cached_data_form(data)
    except TypeError:  # an unhashable value in the data key
        return dict(data)


@functools.lru_cache(maxsize=64)
def _cached_data_form(data) -> Canonical:
    return canonical_form(dict(data))


@functools.lru_cache(maxsize=4096)
def _cached_config_hash(config) -> str:
    return stable_hash(_cached_form(config), length=12)


def _config_form(config):
    """The canonical form of a method configuration, computed once per distinct (frozen, hashable)
    configuration: a plan of 343 000 jobs shares a few dozen (the same hash as ``asdict(config)``)."""
    try:
        return _cached_form(config)
    except TypeError:  # an unhashable configuration: canonicalised each time
        return dataclasses.asdict(config)
