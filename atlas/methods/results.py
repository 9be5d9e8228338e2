"""Loop results as :class:`~atlas.methods.base.Visualization` objects, one per target, with the class
scores before and after for class targets (shared by every method that runs :func:`atlas.optim.optimize`
on generated images)."""
from __future__ import annotations

from typing import List, Sequence

from ..optim.loop import OptimResult
from ..targets import Target
from .base import RunContext, Visualization, class_scores, to_numpy_image


def finish(ctx: RunContext, targets: Sequence[Target], result: OptimResult, info: dict | None = None) -> List[Visualization]:
    """Loop result -> one Visualization per target, with class scores before/after for class targets."""
    k = len(targets)
    per = result.seconds / max(k, 1)
    scores = [dict() for _ in targets]
    class_ids = [t.class_id for t in targets]
    if all(t.kind == "class" for t in targets):
        before = class_scores(ctx.model, result.initial, class_ids)
        after = class_scores(ctx.model, result.images, class_ids)
        for s, b, a in zip(scores, before, after):
            s.update({"logit_start": b["logit"], "prob_start": b["prob"]})
            s.update({f"{key}_end" if key in ("logit", "prob", "rank") else key: v for key, v in a.items()})
    out = []
    for i, t in enumerate(targets):
        hist = result.history[:, i].tolist()
        scores[i].update({"objective_start": hist[0] if hist else None, "objective_end": hist[-1] if hist else None})
        out.append(Visualization(
            target=t,
            image=to_numpy_image(result.images[i]),
            alpha=result.alpha[i].numpy(),
            history=hist,
            seconds=per,
            scores=scores[i],
            info=dict(info or {}, batch=k),
        ))
    return out
