"""ImageNet-1k class names and WordNet ids, available offline from timm's bundled metadata."""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple


@lru_cache(maxsize=1)
def imagenet_classes() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """``(names, wnids)`` for the 1000 ImageNet classes in the standard index order.

    Names are the first synonym of timm's descriptions (``"tench, Tinca tinca"`` -> ``"tench"``); several
    names repeat (e.g. two ``"crane"``), which is why pages are keyed by id.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    wnids = tuple(info.label_names())
    names = tuple(info.index_to_description(i).split(",")[0].strip() for i in range(len(wnids)))
    return names, wnids


@lru_cache(maxsize=1)
def imagenet_synonyms() -> Tuple[Tuple[str, ...], ...]:
    """All names of every class in index order (for search), e.g. ``("tench", "Tinca tinca")`` first."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    n = len(imagenet_classes()[0])
    return tuple(tuple(s.strip() for s in info.index_to_description(i).split(",") if s.strip()) for i in range(n))


#: Coarse groups of the 1000 ImageNet classes by id range (the ids follow WordNet's hierarchy; checked
#: against the names at every boundary: tench 0 .. stingray 6, cock 7 .. great grey owl 24, Chihuahua 151 ..
#: Mexican hairless 268, abacus 398 .. plate 923, guacamole 924 .. eggnog 969, alp 970 .. volcano 980, ...).
IMAGENET_GROUPS: Tuple[Tuple[str, Tuple[Tuple[int, int], ...]], ...] = (
    ("dogs", ((151, 268),)),
    ("other mammals", ((101, 106), (147, 150), (269, 299), (330, 388))),
    ("birds", ((7, 24), (80, 100), (127, 146))),
    ("reptiles and amphibians", ((25, 68),)),
    ("fish", ((0, 6), (389, 397))),
    ("invertebrates", ((69, 79), (107, 126), (300, 329))),
    ("objects", ((398, 923),)),
    ("food", ((924, 969),)),
    ("landscapes", ((970, 980),)),
    ("people, plants and fungi", ((981, 999),)),
)


def imagenet_group(class_id: int) -> str:
    """The coarse group (:data:`IMAGENET_GROUPS`) of an ImageNet class id."""
    for name, spans in IMAGENET_GROUPS:
        if any(lo <= class_id <= hi for lo, hi in spans):
            return name
    raise ValueError(f"not an ImageNet class id: {class_id}")
