"""Jobs: one (model, method, method config, target, seed) and its key.

The key is the hash of everything that determines the result - the model, the method and its code
version, the method's full configuration, the target, the seed, for methods that use real images the data
settings (the pool's normalised path and a fingerprint of its contents), and the batch the job is optimised
in - so a rerun skips finished jobs and redoes exactly the jobs whose bytes would change (doit/DVC style).

Why the batch: a job's image depends on the batch it is optimised in. Each target draws its own random
numbers (``Job.target_seed``), but batched kernels round differently at each batch size and NAdam at lr
1.0 grows the difference chaotically: the same MACO job optimised alone and next to another ends 29/255
apart on average, while it ends bit-identical next to any other target, in either position
(``bench/batch_identity.py``). Making an image independent of its batch would mean giving up batching, the
main speed lever on a GPU; so the batch is part of the key instead: ``batch_size``, the number of jobs
optimised together, and for methods whose objective couples the batch (``Method.batch_coupled``:
DeepInversion's batch statistics) ``batch``, the base keys (keys without a batch) of those jobs in order.
A job optimised alone has neither, so its key is the same whatever the configured ``batch_size`` says.
:func:`atlas.pipeline.sharding.bind_batches` sets both when the plan is made.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, Tuple

from ..config import stable_hash
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
    #: how many jobs are optimised together with this one (itself included)
    batch_size: int = 1
    #: for batch-coupled methods: base keys of the jobs optimised together with it, in batch order
    batch: Tuple[str, ...] = ()

    def spec(self) -> Dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        spec = {
            "model": self.model,
            "method": self.method,
            "method_version": self.version,
            "config": dataclasses.asdict(self.config),
            "target": self.target.to_dict(),
            "seed": self.seed,
            "data": dict(self.data),
        }
        if self.batch_size > 1:
            spec["batch_size"] = self.batch_size
        if self.batch:
            spec["batch"] = list(self.batch)
        return spec

    @cached_property
    def key(self) -> str:
        return stable_hash(self.spec(), length=20)

    @cached_property
    def base_key(self) -> str:
        """The key of this job optimised alone (its identity within a batch's ``batch`` list)."""
        alone = self.batch_size == 1 and not self.batch
        return self.key if alone else dataclasses.replace(self, batch_size=1, batch=()).key

    @cached_property
    def config_hash(self) -> str:
        return stable_hash(dataclasses.asdict(self.config), length=12)

    @cached_property
    def target_seed(self) -> int:
        """The seed of this target's random stream: independent of the batch it is optimised in and of
        the method's settings (so that changing ``steps`` continues from the same start)."""
        return int(stable_hash([self.model, self.method, self.target.to_dict(), self.seed], length=15), 16)

    def batch_group(self) -> tuple:
        """Jobs with the same group may share one optimisation (same model, method, settings, seed,
        target kind and layer)."""
        return (self.model, self.method, self.config_hash, self.seed, self.target.kind, self.target.layer)

    def label(self) -> str:
        return f"{self.model}/{self.method}/{self.target.slug()}/s{self.seed}"
