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
