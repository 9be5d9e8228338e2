"""Visualisation methods: one module (or package) per method, each listing its registered variants in
``VARIANTS``; the composition root (:mod:`atlas.app`) adds them to :data:`METHODS`. What every method shares
is in :mod:`.base`; importing this package registers nothing."""
from .base import METHODS, Method, RunContext, Visualization

__all__ = ["METHODS", "Method", "RunContext", "Visualization"]
