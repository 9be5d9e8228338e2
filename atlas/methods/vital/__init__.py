"""VITAL (Görgün, Schiele, Fischer 2025): the method (:mod:`.method`), its settings (:mod:`.settings`), what a
batch of targets matches (:mod:`.setups`, :mod:`.blocks`), the reference sets (:mod:`.references`) and the
features and reference statistics (:mod:`.features`)."""
from .method import VARIANTS, Vital
from .settings import VitalConfig

__all__ = ["VARIANTS", "Vital", "VitalConfig"]
