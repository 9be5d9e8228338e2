"""VITAL's features at the matched blocks and the reference statistics they are matched against.

Features are the block activations A (class neurons) or A x R_norm (relevance variants, §2.1-2.3), where
R is the LRP relevance from the target and, as in VITAL's reference code, R_norm is min-max normalised over
the positions of each (image, channel) and each channel's importance (max relevance, min-max normalised over
the channels of an image) weights its term of the loss, averaged over the references.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch

from ...models.handle import as_channels
from ...optim.objectives import Evaluation
from ...optim.sortmatch import MatchedBlock, reference_quantiles
from ...relevance import Start, relevance
from ...relevance.lrp import LRPSession


def normalised_relevance(r: torch.Tensor, layout: str = "nchw") -> Tuple[torch.Tensor, torch.Tensor]:
    """(R_norm shaped like (B, C, L), importance (B, C)): R min-max normalised over the positions of each
    (image, channel); importance = max relevance per channel, min-max normalised over the channels."""
    r = as_channels(r, layout).float()
    lo, hi = r.amin(-1, keepdim=True), r.amax(-1, keepdim=True)
    span = hi - lo
    rn = torch.where(span > 0, (r - lo) / span.clamp(min=1e-12), torch.ones_like(r))
    imp = r.amax(-1)
    ilo, ihi = imp.amin(-1, keepdim=True), imp.amax(-1, keepdim=True)
    imp = (imp - ilo) / (ihi - ilo).clamp(min=1e-12)
    return rn, imp


def plain_reference_stats(model, images: torch.Tensor, blocks: Sequence[MatchedBlock],
                          batch: int = 16) -> Dict[str, torch.Tensor]:
    """{block: (C, L) mean sorted activations} of the reference ``images``."""
    feats: Dict[str, List[torch.Tensor]] = {b.key: [] for b in blocks}
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            acts = model.activations(images[i:i + batch].to(model.device), [b.key for b in blocks])
            for b in blocks:
                feats[b.key].append(as_channels(acts[b.key], b.layout).float().cpu())
    return {k: reference_quantiles(torch.cat(v)) for k, v in feats.items()}


def relevance_reference_stats(model, images: torch.Tensor, blocks: Sequence[MatchedBlock], start: Start,
                              batch: int = 8) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """({block: (C, L) mean sorted A x R_norm}, {block: (C,) mean channel importance}) of ``images``,
    relevance from ``start`` (applied to every reference)."""
    keys = [b.key for b in blocks]
    q: Dict[str, List[torch.Tensor]] = {k: [] for k in keys}
    w: Dict[str, List[torch.Tensor]] = {k: [] for k in keys}
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        rel = relevance(model, x, start, keys, batch_size=batch)
        with torch.no_grad():  # the plain model's activations (a BN merge changes a conv's own output)
            acts = model.activations(x.to(model.device), keys)
        for b in blocks:
            rn, imp = normalised_relevance(rel.layers[b.key], b.layout)
            q[b.key].append((as_channels(acts[b.key], b.layout).float() * rn.to(acts[b.key].device)).cpu())
            w[b.key].append(imp.cpu())
    return ({k: reference_quantiles(torch.cat(v)) for k, v in q.items()},
            {k: torch.cat(v).mean(0) for k, v in w.items()})


def stack_stats(per_target: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """[{block: tensor}] per target -> {block: stacked (K, ...)}."""
    return {k: torch.stack([d[k] for d in per_target]) for k in per_target[0]}


class RelevanceProbe:
    """A transform that computes the relevance of the (jittered) synthetic images before the forward pass
    and keeps R_norm for :meth:`features` (A x R_norm, R detached), every ``every`` steps. The passes share
    one :class:`~atlas.relevance.lrp.LRPSession` (hooks and canonizers registered once, on a copy)."""

    def __init__(self, model, start: Start, blocks: Sequence[MatchedBlock], every: int = 1):
        self.model, self.start, self.blocks, self.every = model, start, list(blocks), every
        self.calls = 0
        self.rn: Dict[str, torch.Tensor] = {}
        self.session = None

    def __call__(self, x: torch.Tensor, rng) -> torch.Tensor:
        if self.calls % self.every == 0:
            if self.session is None:
                self.session = LRPSession(self.model)
            rel = relevance(self.model, x.detach(), self.start, [b.key for b in self.blocks], batch_size=x.shape[0],
                            session=self.session)
            self.rn = {b.key: normalised_relevance(rel.layers[b.key], b.layout)[0] for b in self.blocks}
        self.calls += 1
        return x

    def close(self) -> None:
        """Remove the session's hooks and drop its copy of the model (after the run)."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def features(self, key: str, acts: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        """A x R_norm of the block's activations, channels first (B, C, L), as R_norm is."""
        return acts * self.rn[key].to(acts.device, acts.dtype)
