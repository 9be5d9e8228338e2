"""The blocks VITAL matches per target kind (supplementary §1.1): every matched block of the model with its
class-neuron weight, or the blocks before a neuron's (or concept's) layer; ``block_weights`` overrides."""
from __future__ import annotations

from typing import List

from ...errors import AtlasError
from ...models.layer_order import execution_order
from ...optim.sortmatch import MatchedBlock


def class_blocks(model, cfg) -> List[MatchedBlock]:
    """The model's matched blocks with their class-neuron weights (or ``cfg.block_weights``)."""
    blocks = [MatchedBlock(b.path, b.weight, b.layout) for b in model.blocks]
    return _override(blocks, cfg)


def blocks_before(model, layer: str, cfg) -> List[MatchedBlock]:
    """Matched blocks computed before ``layer`` (relevance flows only there); the first weighted
    ``neuron_block1_weight`` (§1.1: block1 0.1), the others 1. A layer before every block matches itself."""
    order = execution_order(model, [b.path for b in model.blocks] + [layer])
    before = order[:order.index(layer)] if layer in order else []
    chosen = [b for b in model.blocks if b.path in before and b.path != layer]
    if not chosen:
        return _override([MatchedBlock(layer, 1.0)], cfg)
    out = [MatchedBlock(b.path, cfg.neuron_block1_weight if i == 0 else 1.0, b.layout) for i, b in enumerate(chosen)]
    return _override(out, cfg)


def _override(blocks: List[MatchedBlock], cfg) -> List[MatchedBlock]:
    if cfg.block_weights is None:
        return blocks
    if len(cfg.block_weights) != len(blocks):
        raise AtlasError(f"vital setting block_weights has {len(cfg.block_weights)} values; the matched blocks are "
                         f"{', '.join(b.key for b in blocks)} ({len(blocks)})")
    return [MatchedBlock(b.key, float(w), b.layout) for b, w in zip(blocks, cfg.block_weights)]
