"""atlas: precomputed feature-visualization atlases and the static site that shows them."""

__version__ = "0.1.0"
