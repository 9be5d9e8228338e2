"""Image pools: where real images come from.

* :class:`BundledPool` - photos shipped inside scikit-image and scikit-learn, each labelled with the
  ImageNet class EfficientNet-Lite0 gives it (DESIGN.md). Works offline; the embedded default.
* :class:`FolderPool` - an ImageNet-style folder ``<root>/<wnid>/*.JPEG`` (``root`` may also be the parent
  of ``train/``); the class id is the wnid's index in the standard ImageNet order.

Both give deterministic reference sets of N images per class (:meth:`ImagePool.reference_images`).
Unreadable files are skipped and counted; greyscale, palette and CMYK images are converted to RGB.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import AtlasError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ImageRef:
    """One real image: a stable id (used in URLs and keys) and its class."""

    id: str
    class_id: int


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image (L, P, CMYK, RGBA, I;16, ...) as 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo + 1e-12) * 255
        img = Image.fromarray(arr.astype(np.uint8))
    return img.convert("RGB")


def center_crop_tensor(img: Image.Image, size: int, resize_ratio: float = 256 / 224) -> torch.Tensor:
    """Resize the short side to ``size * resize_ratio`` then centre-crop ``size`` (the torchvision eval
    transform); returns (3, size, size) in [0, 1]."""
    short = max(size, int(round(size * resize_ratio)))
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def random_resized_crop(
    img: Image.Image, size: int, rng: np.random.Generator, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """A random crop covering ``scale`` of the area with aspect ``ratio``, resized to ``size``, randomly
    flipped; (3, size, size) in [0, 1]."""
    w, h = img.size
    for _ in range(20):
        area = w * h * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw = ch = min(w, h)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = img.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class ImagePool:
    """Base class: subclasses list images per class and load them."""

    name = "pool"

    def fingerprint(self) -> str:
        raise NotImplementedError

    def class_ids(self) -> List[int]:
        raise NotImplementedError

    def items(self, class_id: int) -> List[ImageRef]:
        raise NotImplementedError

    def load(self, ref: ImageRef) -> Image.Image:
        raise NotImplementedError

    def all_items(self) -> List[ImageRef]:
        return [r for c in self.class_ids() for r in self.items(c)]

    def load_tensor(self, ref: ImageRef, size: int) -> torch.Tensor:
        """The image as the model sees it at evaluation: resize + centre crop to ``size``."""
        return center_crop_tensor(self.load(ref), size)

    def source_ids(self, max_images: Optional[int] = None, seed: int = 0) -> List[str]:
        """Ids of the images to mine for dataset examples (top patches): every image, or a deterministic
        sample of ``max_images``. Ids are ``"<class>/<image id>"``."""
        items = self.all_items()
        if max_images is not None and len(items) > max_images:
            rng = np.random.default_rng(seed)
            items = [items[i] for i in sorted(rng.choice(len(items), max_images, replace=False))]
        return [f"{r.class_id}/{r.id}" for r in items]

    def source_image(self, source_id: str, size: int) -> torch.Tensor:
        """The image behind a source id, as the model sees it: (3, size, size) in [0, 1]."""
        cls, _, image_id = source_id.partition("/")
        return self.load_tensor(ImageRef(image_id, int(cls)), size)

    def reference_images(
        self, class_id: int, n: int, size: int, seed: int = 0, allow_fewer: bool = False
    ) -> torch.Tensor:
        """N real images of ``class_id`` (N, 3, size, size) in [0, 1], the same for the same seed (fewer than N
        only with ``allow_fewer``; the subclasses draw them in their own ways)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ bundled
def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle(i: int) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data

        return skimage.data.stereo_motorcycle()[i]

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load():
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


#: The bundled photos and the ImageNet class EfficientNet-Lite0 gives them (DESIGN.md).
BUNDLED_PHOTOS: Dict[str, tuple] = {
    "chelsea": (285, _skimage("chelsea")),
    "coffee": (967, _skimage("coffee")),
    "motorcycle_left": (665, _motorcycle(0)),
    "motorcycle_right": (665, _motorcycle(1)),
    "camera": (872, _skimage("camera")),
    "flower": (985, _sklearn("flower.jpg")),
    "rocket": (657, _skimage("rocket")),
}


class BundledPool(ImagePool):
    """Photos shipped inside scikit-image and scikit-learn (see :data:`BUNDLED_PHOTOS`).

    A class has only one or two photos, so reference sets are random resized crops (35-100 % of the area)
    and flips of that class's photos, deterministic per seed.
    """

    name = "bundled photos (scikit-image, scikit-learn)"

    def __init__(self):
        self._cache: Dict[str, Image.Image] = {}

    def fingerprint(self) -> str:
        import skimage
        import sklearn

        return f"bundled-{skimage.__version__}-{sklearn.__version__}-{len(BUNDLED_PHOTOS)}"

    def class_ids(self) -> List[int]:
        return sorted({c for c, _ in BUNDLED_PHOTOS.values()})

    def items(self, class_id: int) -> List[ImageRef]:
        return [ImageRef(n, c) for n, (c, _) in BUNDLED_PHOTOS.items() if c == class_id]

    def load(self, ref: ImageRef) -> Image.Image:
        if ref.id not in self._cache:
            arr = BUNDLED_PHOTOS[ref.id][1]()
            self._cache[ref.id] = to_rgb(Image.fromarray(np.asarray(arr)))
        return self._cache[ref.id]

    #: random resized crops per photo offered as extra "source images" for dataset examples: seven photos
    #: alone would allow at most seven unique-source patches per neuron.
    CROPS_PER_PHOTO = 11

    def source_ids(self, max_images: Optional[int] = None, seed: int = 0) -> List[str]:
        """Each photo (``"<class>/<name>"``) and ``CROPS_PER_PHOTO`` random resized crops of it
        (``"<class>/<name>~<k>"``); deterministic."""
        ids = []
        for r in self.all_items():
            ids.append(f"{r.class_id}/{r.id}")
            ids.extend(f"{r.class_id}/{r.id}~{k}" for k in range(1, self.CROPS_PER_PHOTO + 1))
        if max_images is not None and len(ids) > max_images:
            rng = np.random.default_rng(seed)
            ids = [ids[i] for i in sorted(rng.choice(len(ids), max_images, replace=False))]
        return ids

    def source_image(self, source_id: str, size: int) -> torch.Tensor:
        cls, _, rest = source_id.partition("/")
        name, _, k = rest.partition("~")
        ref = ImageRef(name, int(cls))
        if not k:
            return self.load_tensor(ref, size)
        rng = np.random.default_rng([int(k), sum(map(ord, name))])
        return random_resized_crop(self.load(ref), size, rng)

    def reference_images(
        self, class_id: int, n: int, size: int, seed: int = 0, allow_fewer: bool = True
    ) -> torch.Tensor:
        refs = self.items(class_id)
        if not refs:
            raise AtlasError(
                f"no bundled photo shows class {class_id}; bundled classes are {self.class_ids()}"
            )
        rng = np.random.default_rng([seed, class_id])
        photos = [self.load(r) for r in refs]
        return torch.stack([random_resized_crop(photos[i % len(photos)], size, rng) for i in range(n)])


# ------------------------------------------------------------------------------------------ folder
class FolderPool(ImagePool):
    """An ImageNet-style folder: ``<root>/<wnid>/<image>``; ``root`` may be the parent of ``train/``."""

    def __init__(self, root: str | Path, wnids: Sequence[str]):
        root = Path(root).expanduser()
        if root.exists() and not root.is_dir():
            raise AtlasError(f"data folder {str(root)!r} is a file, not a folder: give --data the folder that holds "
                             f"the <wnid>/ sub-folders (<folder>/<wnid>/*.JPEG), or 'bundled'")
        if not root.is_dir():
            raise AtlasError(f"data folder {str(root)!r} does not exist (expected <folder>/<wnid>/*.JPEG)")
        if (root / "train").is_dir() and not any((root / w).is_dir() for w in wnids[:1000]):
            root = root / "train"
        self.root = root
        self.name = f"image folder {root}"
        index = {w: i for i, w in enumerate(wnids)}
        self._files: Dict[int, List[Path]] = {}
        unknown = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if sub.name not in index:
                unknown.append(sub.name)
                continue
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                self._files[index[sub.name]] = files
        if not self._files:
            hint = f" (found folders such as {unknown[0]!r}, which are not ImageNet wnids)" if unknown else ""
            raise AtlasError(f"data folder {str(root)!r} holds no images in <wnid>/ sub-folders{hint}")
        self.skipped: List[str] = []

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for c in sorted(self._files):
            h.update(f"{c}:{len(self._files[c])}:{self._files[c][0].name}:{self._files[c][-1].name};".encode())
        return f"folder-{h.hexdigest()[:16]}"

    def class_ids(self) -> List[int]:
        return sorted(self._files)

    def items(self, class_id: int) -> List[ImageRef]:
        return [ImageRef(p.stem, class_id) for p in self._files.get(class_id, [])]

    def _path(self, ref: ImageRef) -> Path:
        for p in self._files.get(ref.class_id, []):
            if p.stem == ref.id:
                return p
        raise KeyError(ref.id)

    def load(self, ref: ImageRef) -> Image.Image:
        path = self._path(ref)
        try:
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    img.draft("RGB", (4096, 4096))
                    img.thumbnail((4096, 4096))
                return to_rgb(img.copy() if img.mode == "RGB" else img)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UnreadableImage(f"{path}: {exc}") from None

    def reference_images(
        self, class_id: int, n: int, size: int, seed: int = 0, allow_fewer: bool = False
    ) -> torch.Tensor:
        refs = self.items(class_id)
        if len(refs) < n and not allow_fewer:
            raise AtlasError(
                f"class {class_id} has {len(refs)} images in {self.root}, fewer than the {n} references "
                f"asked for; lower data.references or allow proceeding with fewer (allow_fewer)"
            )
        rng = np.random.default_rng([seed, class_id])
        out = []
        for i in rng.permutation(len(refs)):
            try:
                out.append(self.load_tensor(refs[i], size))
            except UnreadableImage as exc:
                self.skipped.append(str(exc))
                log.warning("skipping unreadable image %s", exc)
            if len(out) == n:
                break
        if not out or (len(out) < n and not allow_fewer):
            raise AtlasError(f"class {class_id} has only {len(out)} readable images in {self.root}")
        return torch.stack(out)


class UnreadableImage(Exception):
    """An image file that cannot be decoded (skipped and counted, never fatal to a build)."""


def open_pool(spec: str, wnids: Optional[Sequence[str]] = None) -> ImagePool:
    """``"bundled"`` or the path of an ImageNet-style folder."""
    if spec == "bundled":
        return BundledPool()
    if wnids is None:
        from ..models.classes import imagenet_classes

        wnids = imagenet_classes()[1]
    return FolderPool(spec, wnids)
