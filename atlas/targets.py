"""What is visualised: a class, a concept direction, a neuron (channel), or a real image to explain.

A :class:`Target` is frozen and hashable; its :meth:`slug` is a stable, filesystem- and URL-safe name
used in store keys and page URLs (keyed by class *id*, never by a class name, which can collide).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Optional

KINDS = ("class", "concept", "neuron", "image")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_FACET = re.compile(r"^(negative|diverse-\d+)$")


def safe_slug(text: str) -> str:
    """Return ``text`` reduced to ``[A-Za-z0-9_.-]`` (runs of anything else become ``-``), never empty,
    never starting with a dot (no hidden files, no ``..`` path components)."""
    slug = _SAFE.sub("-", str(text)).strip("-.")
    return slug or "x"


@dataclass(frozen=True, order=True)
class Target:
    """One thing to visualise.

    kind:
        ``class`` (a logit), ``neuron`` (one channel of ``layer``), ``concept`` (direction number ``concept``
        of class ``class_id``'s concept bank at ``layer``) or ``image`` (explain real image ``image`` with
        respect to ``class_id``).
    fit_hash:
        for targets derived from data (CRAFT concepts, k-means clusters of a neuron's patches): a hash of
        the settings of that fit, so that a job's key changes when they do (not part of the slug; recorded
        under the key ``"fit"`` in :meth:`to_dict`, as in every store so far).
    toward:
        image targets only: which class an image-seeded method drives the image toward. ``None`` is the
        image's own class ``class_id``; ``"rival"`` the highest-scoring *other* class (the second-highest
        logit of a correctly classified image, the predicted class of a misclassified one); digits name a
        class id. Resolved when the job runs (planning loads no model).
    facet:
        neuron targets only: which picture of the channel. ``None`` is the channel maximised;
        ``"negative"`` the channel minimised (lucid's negative visualisation); ``"diverse-<j>"`` image j of
        the channel's diversity set, optimised in one batch with the rest of its set while their features
        are pushed apart (lucid's diversity objective; :meth:`together`). The set's size and weight are in
        ``fit_hash``.
    """

    kind: str
    class_id: Optional[int] = None
    layer: Optional[str] = None
    channel: Optional[int] = None
    concept: Optional[int] = None
    image: Optional[str] = None
    cluster: Optional[int] = None
    fit_hash: Optional[str] = None
    toward: Optional[str] = None
    facet: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.facet is not None and (self.kind != "neuron" or not _FACET.match(self.facet)):
            raise ValueError(f"bad facet {self.facet!r}: neuron targets take 'negative' or 'diverse-<j>'")

    @classmethod
    def of_class(cls, class_id: int) -> "Target":
        return cls("class", class_id=int(class_id))

    @classmethod
    def of_neuron(cls, layer: str, channel: int, cluster: Optional[int] = None) -> "Target":
        return cls("neuron", layer=layer, channel=int(channel), cluster=cluster)

    @classmethod
    def of_concept(cls, class_id: int, concept: int, layer: str) -> "Target":
        return cls("concept", class_id=int(class_id), concept=int(concept), layer=layer)

    @classmethod
    def of_image(cls, image: str, class_id: int, toward: Optional[str] = None) -> "Target":
        return cls("image", class_id=int(class_id), image=image, toward=toward)

    def slug(self) -> str:
        """A stable, safe name: ``class-0285``, ``neuron-blocks.5-0012``, ``concept-0285-03``, ..."""
        if self.kind == "class":
            s = f"class-{self.class_id:04d}"
        elif self.kind == "neuron":
            s = f"neuron-{safe_slug(self.layer)}-{self.channel:04d}"
            if self.cluster is not None:
                s += f"-k{self.cluster}"
            if self.facet is not None:
                s += f"-{self.facet}"
        elif self.kind == "concept":
            s = f"concept-{self.class_id:04d}-{self.concept:02d}"
        else:  # the class part is digits, so ".<toward>" after it cannot be confused with the image name
            s = f"image-{self.class_id:04d}" + (f".{safe_slug(self.toward)}" if self.toward else "")
            s += f"-{safe_slug(self.image)}"
        return s

    @property
    def diverse_index(self) -> Optional[int]:
        """j of a ``"diverse-<j>"`` facet, else None."""
        return int(self.facet[8:]) if self.facet and self.facet.startswith("diverse-") else None

    def together(self) -> Optional[tuple]:
        """Targets that must be optimised in the same batch share this key (a channel's diversity set:
        each image's objective reads the others'); None for a target that may be batched with any."""
        if self.diverse_index is None:
            return None
        return ("diverse", self.layer, self.channel, self.fit_hash)

    def plain(self) -> "Target":
        """The same channel without a facet (the target whose page shows every facet)."""
        return replace(self, facet=None, fit_hash=None) if self.facet is not None else self

    def to_dict(self) -> dict:
        """The fields that are set, as plain data (part of every job's key)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # flat scalars: asdict's deep copy not needed
        d = {k: v for k, v in d.items() if v is not None}
        if "fit_hash" in d:
            d["fit"] = d.pop("fit_hash")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        d = dict(d)
        if "fit" in d:
            d["fit_hash"] = d.pop("fit")
        return cls(**d)
