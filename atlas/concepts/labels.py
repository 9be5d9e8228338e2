"""Labels from the data: what a unit's (neuron's or concept's) top dataset examples are, by the model's
own classes - no extra model needed.

A unit's top patches each come from one source image, and a source image has a class (the pool's label:
``"<class>/<image>"``). The label is the classes of the images behind its ``n`` best patches, most frequent
first, with their shares ("tabby 40%, tiger cat 30%, Egyptian cat 20%"), and a **concentration** score
of how much those ``n`` images agree:

    concentration = 1 - H(p) / log(min(n, C))

where p is the share of each class among the n images, H its entropy (nats) and C the number of classes
the scanned pool holds (the most classes n images could spread over). 1: every top image is of one class
(a unit as monosemantic as its examples can show); 0: as spread out as they can be. It reads the pool's
labels, not the unit, so it is only as fine as the classes are: a unit for "stripes" that fires on zebras
and tigers scores lower than one for zebras alone. ``lift`` compares the first class's share with its share
of the scanned images (1: no more often than chance).

CLIP's text labels (a vocabulary word per unit, where CLIP's weights are cached) are in
:mod:`atlas.concepts.clip_labels`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

#: How many of a unit's top examples its label reads.
LABEL_EXAMPLES = 10
#: How many classes the label names.
LABEL_CLASSES = 3


@dataclass
class DataLabel:
    """A unit's label from its top examples: ``parts`` = [(class id, class name, share in [0, 1])] most
    frequent first, ``concentration`` in [0, 1], ``n`` examples read, ``lift`` of the first class."""

    parts: List[Tuple[int, str, float]] = field(default_factory=list)
    concentration: float = 0.0
    n: int = 0
    lift: Optional[float] = None

    @property
    def text(self) -> str:
        """``"tabby 40%, tiger cat 30%, Egyptian cat 20%"`` (empty without examples)."""
        return ", ".join(f"{name} {round(100 * share)}%" for _, name, share in self.parts)

    @property
    def short(self) -> str:
        """The first class and its share: ``"tabby 40%"``."""
        return f"{self.parts[0][1]} {round(100 * self.parts[0][2])}%" if self.parts else ""

    @property
    def words(self) -> str:
        """Every class the label names, for search."""
        return " ".join(name for _, name, _ in self.parts)

    def to_dict(self) -> dict:
        return {"text": self.text, "concentration": self.concentration, "n": self.n, "lift": self.lift,
                "classes": [{"id": c, "name": name, "share": share} for c, name, share in self.parts]}


def source_class(source_id: str) -> int:
    """The class of a pool source id ``"<class>/<image>"``."""
    return int(source_id.partition("/")[0])


def concentration(counts: Sequence[int], classes: int) -> float:
    """1 - H(p) / log(min(n, classes)) for class counts of n examples (see the module docstring)."""
    n = sum(counts)
    span = min(n, max(1, classes))
    if n == 0:
        return 0.0
    if span <= 1:
        return 1.0
    h = -sum((c / n) * math.log(c / n) for c in counts if c)
    return max(0.0, min(1.0, 1.0 - h / math.log(span)))


def data_label(sources: Sequence[str], class_names: Sequence[str], census: Optional[Mapping[str, int]] = None,
               n: int = LABEL_EXAMPLES, top: int = LABEL_CLASSES) -> DataLabel:
    """The label of a unit whose best examples (best first) come from ``sources``.

    ``class_names``: the model's names by class id; ``census``: ``{class id: images}`` of the scanned pool
    (for the number of classes and the lift; without it, the classes among ``sources``)."""
    picked = [source_class(s) for s in sources[:n]]
    if not picked:
        return DataLabel()
    counts = Counter(picked)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], picked.index(kv[0])))
    total = len(picked)
    pool_classes = len(census) if census else len(counts)

    def name(c: int) -> str:
        return class_names[c] if 0 <= c < len(class_names) else f"class {c}"

    parts = [(c, name(c), k / total) for c, k in ranked[:top]]
    lift = None
    if census:
        scanned = sum(census.values())
        base = census.get(str(ranked[0][0]), census.get(ranked[0][0], 0)) / scanned if scanned else 0
        lift = (ranked[0][1] / total) / base if base else None
    return DataLabel(parts, concentration([k for _, k in ranked], pool_classes), total, lift)


def labels_by_unit(examples: Mapping[object, Sequence[str]], class_names: Sequence[str],
                   census: Optional[Mapping[str, int]] = None, n: int = LABEL_EXAMPLES) -> Dict[object, DataLabel]:
    """:func:`data_label` of every unit of ``{unit: sources}``."""
    return {u: data_label(s, class_names, census, n) for u, s in examples.items()}
