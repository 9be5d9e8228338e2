"""VITAL's sort-matching (SM) loss (supplementary Alg. 1) and the objective that applies it to hooked blocks.

Per channel, the synthetic image's features are sorted; the reference images' features are sorted too and
averaged over the references (the mean quantile function); the averaged values are put back in the
synthetic features' order and compared by MSE. The sort indices are constants, so the gradient flows only
through the synthetic values: d/dz_i = 2 (z_i - g_i) / (C * L).

The per-step sort of the synthetic features is most of the loss's cost (EfficientNet-Lite0's stem alone:
32 channels x 12 544 positions). On the CPU it runs in NumPy, split over the rows in threads that release
the GIL: long rows as two stable radix passes over 16-bit halves of an order-preserving integer key, short
rows as a SIMD sort of 64-bit (value, index) keys (both exact, several times faster than ``torch.argsort``
there); on a GPU it stays ``torch.argsort``. Both give the ascending order; among exactly equal values (e.g. a saturated patch of
the image) the order may differ, which leaves the loss unchanged and swaps those positions' targets.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from ..models.handle import as_channels
from .objectives import Evaluation, Objective


_POOL: Optional[ThreadPoolExecutor] = None


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child has none of the parent's threads: it starts its own pool when it sorts


os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, torch.get_num_threads() or os.cpu_count() or 1)),
                                   thread_name_prefix="atlas-sort")
    return _POOL


def argsort_rows(x: torch.Tensor) -> torch.Tensor:
    """``x.argsort(dim=-1)`` (int64), computed in NumPy threads for a float tensor on the CPU."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() < 8192:
        return x.argsort(dim=-1)
    flat = x.detach().contiguous().reshape(-1, x.shape[-1]).numpy()
    if torch.get_num_threads() == 1:  # one range: the order as computed, without copying it into place
        return torch.from_numpy(_order_rows(flat)).view(x.shape)
    out = np.empty(flat.shape, dtype=np.int64)

    def work(lo: int, hi: int) -> None:
        out[lo:hi] = _order_rows(flat[lo:hi])

    _over_rows(flat.shape[0], work)
    return torch.from_numpy(out).view(x.shape)


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """``x.sort(dim=-1).values``, computed in NumPy threads for a float tensor on the CPU (the same values:
    ``torch.sort`` of Lite0's reference features at the stem took ~30 ms per block and class)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() < 8192:
        return x.sort(dim=-1).values
    out = x.detach().contiguous().reshape(-1, x.shape[-1]).numpy().copy()
    _over_rows(out.shape[0], lambda lo, hi: out[lo:hi].sort(axis=-1))
    return torch.from_numpy(out).view(x.shape)


def _over_rows(rows: int, work: Callable[[int, int], None]) -> None:
    """``work(lo, hi)`` over ``rows`` split into one contiguous range per torch thread, in the sort pool's
    threads (NumPy's sorts release the GIL)."""
    parts = max(1, min(rows, torch.get_num_threads()))
    bounds = [rows * i // parts for i in range(parts + 1)]
    if parts == 1:
        work(0, rows)
    else:
        list(_pool().map(lambda i: work(bounds[i], bounds[i + 1]), range(parts)))


#: Rows at least this long are ordered by two radix passes (:func:`_radix_argsort`), shorter ones by the
#: 64-bit key sort (:func:`_packed_argsort`). One thread, freed memory kept (:mod:`atlas.allocator`), ms:
#: 32 rows of 12 544 (Lite0's stem) 6.4 against 13.3; 24 x 3 136 1.1 against 1.8; 64 x 1 568 1.5 against
#: 1.8; 40 x 784 0.51 against 0.45; 112 x 196 0.43 against 0.08.
RADIX_MIN_LENGTH = 1024


def _order_rows(rows: np.ndarray) -> np.ndarray:
    """``np.argsort(rows, axis=-1, kind="stable")`` of float32 rows (ties in index order)."""
    return _radix_argsort(rows) if rows.shape[-1] >= RADIX_MIN_LENGTH else _packed_argsort(rows)


def _ordered_bits(rows: np.ndarray) -> np.ndarray:
    """float32 -> int32 whose signed order is the floats' order (-0.0 just below +0.0)."""
    bits = rows.view(np.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def _packed_argsort(rows: np.ndarray) -> np.ndarray:
    """The order of float32 rows as a *sort* of int64 keys (value bits made order-preserving, shifted up,
    the index below them): NumPy's SIMD sort of 64-bit integers beats its argsort of floats (6 x 32 rows of
    12 544: 78 ms against 90 ms, one thread)."""
    key = _ordered_bits(rows).astype(np.int64)
    key <<= 32
    key |= np.arange(rows.shape[-1], dtype=np.int64)
    key.sort(axis=-1)
    key &= 0xFFFFFFFF
    return key


def _radix_argsort(rows: np.ndarray) -> np.ndarray:
    """The order of float32 rows by least-significant-digit radix sort: a stable argsort of the key's low
    16 bits, then a stable argsort of its high 16 bits in that order (NumPy sorts 16-bit integers stably by
    radix, in linear time). Exact: equal keys keep their index order, as in :func:`_packed_argsort`. The
    gathers index the flattened rows (``take`` with row offsets: ~3x faster than ``take_along_axis``)."""
    key = _ordered_bits(rows).view(np.uint32) ^ np.uint32(0x80000000)  # unsigned, same order
    offsets = (np.arange(rows.shape[0], dtype=np.int64) * rows.shape[-1])[:, None]
    first = np.argsort(key.astype(np.uint16), axis=-1, kind="stable")
    first += offsets
    second = np.argsort((key >> 16).astype(np.uint16).ravel().take(first), axis=-1, kind="stable")
    second += offsets
    order = first.ravel().take(second)
    order -= offsets
    return order


def reference_quantiles(features: torch.Tensor) -> torch.Tensor:
    """(N, C, L) reference features -> (C, L): each channel's values sorted, averaged over the N images
    (``SortedY = mean(sort(f(y), dim=2), dim=0)`` in Alg. 1)."""
    return sort_rows(features).mean(0)


def sort_matching(syn: torch.Tensor, quantiles: torch.Tensor, channel_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Alg. 1 for a batch: ``syn`` (B, C, L), ``quantiles`` (B, C, L) or (C, L) -> loss per image (B,).

    The mean quantiles are placed in the order of ``syn``'s values (``SortedY.gather(-1, argsort(IndexX))``,
    written here as a scatter with IndexX) and the squared differences are averaged over channels and
    positions. ``channel_weights`` (B, C) or (C,) weight each channel's squared error (VITAL's relevance
    variants: the references' mean channel importance); None weighs all channels 1.
    """
    if syn.shape[-1] != quantiles.shape[-1] or syn.shape[-2] != quantiles.shape[-2]:
        raise ValueError(f"synthetic features {tuple(syn.shape)} and reference quantiles {tuple(quantiles.shape)} "
                         "differ in channels or positions")
    q = quantiles.expand_as(syn) if quantiles.dim() == 2 else quantiles
    order = argsort_rows(syn.detach())
    target = torch.empty_like(q).scatter_(-1, order, q)
    err = (syn - target).square()
    if channel_weights is not None:
        w = channel_weights if channel_weights.dim() == 2 else channel_weights[None]
        err = err * w[..., None]
    return err.mean(dim=(-2, -1))


@dataclass(frozen=True)
class MatchedBlock:
    """One block of the SM loss: layer key, loss weight and activation layout (``nchw`` or ``nld``)."""

    key: str
    weight: float = 1.0
    layout: str = "nchw"


FeatureFn = Callable[[str, torch.Tensor, Evaluation], torch.Tensor]


def plain_features(key: str, acts: torch.Tensor, ev: Evaluation) -> torch.Tensor:
    """The block's activations (B, C, L) as they are (class neurons without relevance)."""
    return acts


def sort_matching_objective(
    blocks: Sequence[MatchedBlock],
    quantiles: Dict[str, torch.Tensor],
    channel_weights: Optional[Dict[str, torch.Tensor]] = None,
    features: FeatureFn = plain_features,
) -> Objective:
    """-sum_k w_k SM_k per target (an objective to maximise), over the hooked ``blocks``.

    ``quantiles[key]`` is (K, C, L): target k's mean reference quantiles at that block. ``features`` may
    transform the captured activations first (e.g. multiply by a relevance map, A x R); it receives the
    layer key, the activations channels first, (K * n, C, L) (:func:`~atlas.models.handle.as_channels`),
    and the evaluation, and returns features of that shape.
    """
    weights = channel_weights or {}

    def fn(ev: Evaluation) -> torch.Tensor:
        total = 0.0
        for b in blocks:
            f = features(b.key, as_channels(ev.acts[b.key], b.layout), ev)
            n = f.shape[0] // ev.k
            q = quantiles[b.key].to(f.device, f.dtype).repeat_interleave(n, 0)
            w = weights.get(b.key)
            if w is not None:
                w = w.to(f.device, f.dtype).repeat_interleave(n, 0)
            total = total + b.weight * sort_matching(f.float(), q.float(), w).reshape(ev.k, n).mean(1)
        return -total

    return Objective(fn, [b.key for b in blocks], "-SM[" + ", ".join(f"{b.weight:g}*{b.key}" for b in blocks) + "]",
                     needs_logits=False)  # the loop's pass ends at the last matched block
