"""Per-target random streams.

Every target of a batch draws its initialisation and its random transforms from its own generator, seeded
from the job (model, method, target, seed). A target's image therefore does not depend on which other
targets share its batch, so batching K targets, sharding and resuming all give the same images
(up to floating-point differences between batch sizes).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


class TargetRNG:
    """K torch generators, one per target, on ``device``."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seeds = [int(s) % (2**63 - 1) for s in seeds]
        self.gens = []
        for s in self.seeds:
            g = torch.Generator(device=self.device)
            g.manual_seed(s)
            self.gens.append(g)
        self._host = self if self.device.type == "cpu" else None

    @property
    def host(self) -> "TargetRNG":
        """Generators on the CPU for geometry (crop boxes, shifts): drawing them there keeps the loop
        free of host-device synchronisation on a GPU."""
        if self._host is None:
            self._host = TargetRNG([s + 1 for s in self.seeds], "cpu")
        return self._host

    def __len__(self) -> int:
        return len(self.gens)

    def _draw(self, fn: Callable, shape: Sequence[int], dtype) -> torch.Tensor:
        parts = [fn(tuple(shape), generator=g, device=self.device, dtype=dtype) for g in self.gens]
        return torch.cat(parts, 0) if len(shape) else torch.stack(parts)

    def randn(self, *shape: int, dtype=torch.float32) -> torch.Tensor:
        """Concatenation over targets of ``randn(*shape)``: (K * shape[0], *shape[1:])."""
        return self._draw(torch.randn, shape, dtype)

    def rand(self, *shape: int, dtype=torch.float32) -> torch.Tensor:
        """Concatenation over targets of ``rand(*shape)`` (uniform in [0, 1))."""
        return self._draw(torch.rand, shape, dtype)

    def randint(self, low: int, high: int, n: int = 1) -> torch.Tensor:
        """(K, n) integers in [low, high), one row per target, drawn on the CPU (shapes and shifts)."""
        gens = self.host.gens
        return torch.stack([torch.randint(low, high, (n,), generator=g) for g in gens])
