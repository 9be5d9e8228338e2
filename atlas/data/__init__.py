"""Real images: pools (bundled photos, ImageNet folders), reference sets and the MACO spectrum."""
from .pools import BundledPool, FolderPool, ImagePool, ImageRef, open_model_pool, open_pool

__all__ = ["BundledPool", "FolderPool", "ImagePool", "ImageRef", "open_model_pool", "open_pool"]
