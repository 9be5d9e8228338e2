"""Visualisation methods, one module each, registered in :data:`METHODS`."""
from .base import METHODS, Method, RunContext, Visualization
from . import maco, fourier  # noqa: F401  (registration)
from . import deepinversion, plugin_inversion  # noqa: F401  (registration)
from . import vital  # noqa: F401  (registration)
from . import accentuation, attribution_vis  # noqa: F401  (registration)

__all__ = ["METHODS", "Method", "RunContext", "Visualization"]
