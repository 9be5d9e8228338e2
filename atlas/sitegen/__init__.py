"""The static site: gather page data from the store (phase 1), then write pages and assets (phase 2)."""
from .context import gather
from .writer import render, write_site

__all__ = ["gather", "render", "write_site"]
