"""Jobs: one (model, method, method config, target, seed) and its key.

The key is the hash of everything that determines the result - the model, the method and its code
version, the method's full configuration, the target, the seed, the numeric precision it is computed in
(bf16 and fp32 images are two jobs, never one key), for methods that use real images the data settings, and
the number of targets per optimisation where the run's ``batch_size`` sets it (an image depends on its
batch: :mod:`atlas.pipeline.sharding`) - so a rerun skips finished jobs and redoes exactly the jobs whose
configuration changed (doit/DVC style).
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
    precision: str = "fp32"  # "fp32" or "bf16" (autocast of the model's forward; atlas.pipeline.compute)
    #: targets per optimisation, as planned (``AtlasConfig.batch_size_of``; DeepInversion: its own setting);
    #: 0: not planned (a job made by hand), the runner's ``batch_size`` decides
    batch: int = 0

    def spec(self) -> Dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        return {
            "model": self.model,
            "method": self.method,
            "method_version": self.version,
            "config": dataclasses.asdict(self.config),
            "target": self.target.to_dict(),
            "seed": self.seed,
            "data": dict(self.data),
            "precision": self.precision,
            **({"batch": self.batch} if self.batch > 1 and not hasattr(self.config, "batch_size") else {}),
        }

    @cached_property
    def key(self) -> str:
        return stable_hash(self.spec(), length=20)

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
        target kind and layer, precision)."""
        return (self.model, self.method, self.config_hash, self.seed, self.target.kind, self.target.layer,
                self.precision)

    def label(self) -> str:
        return f"{self.model}/{self.method}/{self.target.slug()}/s{self.seed}"
