"""Image pools: where real images come from.

* :class:`BundledPool` - photos shipped inside scikit-image and scikit-learn, each labelled with the
  ImageNet class EfficientNet-Lite0 gives it (DESIGN.md). Works offline; the embedded default.
* :class:`FolderPool` - a folder of class folders, ``<root>/<wnid>/*.JPEG`` for ImageNet or
  ``<root>/<class name>/*.jpg`` for a model with its own labels (``root`` may also be the parent of
  ``train/``); the class id is the output index of the class the folder names (:func:`class_index`).

A pool serves one model's classes: it is opened with the model's class names and ids (ImageNet's by
default), so two models with different label sets read the same folder each in their own ids.

Both give deterministic reference sets of N images per class (:meth:`ImagePool.reference_images`).
Unreadable files are skipped and counted; greyscale, palette and CMYK images are converted to RGB.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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

    def spectrum_items(self) -> List[ImageRef]:
        """The images the MACO magnitude spectrum is estimated from (:mod:`atlas.data.spectrum`): every
        image of the pool (a pool with few images may add natural photos of no class)."""
        return self.all_items()

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
    """A sample photo of scikit-learn (``sklearn.datasets.load_sample_image(name)``: the same array), read
    from the package's folder: importing scikit-learn imports SciPy's statistics, ~1 s of every process
    start (a worker, a resumed build) that needs only the photo."""
    def load():
        spec = importlib.util.find_spec("sklearn")
        if spec is None or spec.origin is None:
            raise AtlasError(f"the bundled photo {name} needs scikit-learn (pip install scikit-learn)")
        with Image.open(Path(spec.origin).parent / "datasets" / "images" / name) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)

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


#: The other natural photographs scikit-image ships (no ImageNet class of the demo): they enter only the
#: MACO magnitude spectrum (:meth:`BundledPool.spectrum_items`), so that it is estimated from every natural
#: photo the bundled pool has, not only the six classes'. Left out: drawings and synthetic images (logo,
#: colorwheel, horse, text page), microscopy, medical and astronomical images (cell, immunohistochemistry,
#: retina, microaneurysms, hubble_deep_field), and the photos that scikit-image downloads on demand.
SPECTRUM_PHOTOS: Dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "china": _sklearn("china.jpg"),
    "brick": _skimage("brick"),
    "clock": _skimage("clock"),
    "coins": _skimage("coins"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "moon": _skimage("moon"),
    "text": _skimage("text"),
}


class BundledPool(ImagePool):
    """Photos shipped inside scikit-image and scikit-learn (see :data:`BUNDLED_PHOTOS`).

    A class has only one or two photos, so reference sets are random resized crops (35-100 % of the area)
    and flips of that class's photos, deterministic per seed. The photos are labelled with ImageNet
    classes: a model with other labels (``wnids``) finds no class among them (its data-driven methods are
    skipped with the reason), though every photo still serves the class-free uses (the MACO spectrum).
    """

    name = "bundled photos (scikit-image, scikit-learn)"

    def __init__(self, wnids: Optional[Sequence[str]] = None):
        self._cache: Dict[str, Image.Image] = {}
        self.imagenet = wnids is None or _is_imagenet(wnids)

    def all_items(self) -> List[ImageRef]:
        if self.imagenet:
            return super().all_items()
        return [ImageRef(n, c) for n, (c, _) in BUNDLED_PHOTOS.items()]

    def fingerprint(self) -> str:
        # the installed versions, read without importing the packages (scikit-learn's import takes ~1 s)
        return (f"bundled-{importlib.metadata.version('scikit-image')}-{importlib.metadata.version('scikit-learn')}"
                f"-{len(BUNDLED_PHOTOS)}")

    def class_ids(self) -> List[int]:
        return sorted({c for c, _ in BUNDLED_PHOTOS.values()}) if self.imagenet else []

    def items(self, class_id: int) -> List[ImageRef]:
        if not self.imagenet:
            return []
        return [ImageRef(n, c) for n, (c, _) in BUNDLED_PHOTOS.items() if c == class_id]

    def spectrum_items(self) -> List[ImageRef]:
        """Every natural photo: the class photos and :data:`SPECTRUM_PHOTOS` (class id -1: no class)."""
        return self.all_items() + [ImageRef(n, -1) for n in SPECTRUM_PHOTOS]

    def load(self, ref: ImageRef) -> Image.Image:
        if ref.id not in self._cache:
            arr = BUNDLED_PHOTOS[ref.id][1]() if ref.id in BUNDLED_PHOTOS else SPECTRUM_PHOTOS[ref.id]()
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
                + ("" if self.imagenet else " (the photos carry ImageNet labels, not this model's)")
            )
        rng = np.random.default_rng([seed, class_id])
        photos = [self.load(r) for r in refs]
        return torch.stack([random_resized_crop(photos[i % len(photos)], size, rng) for i in range(n)])


# ------------------------------------------------------------------------------------------ folder
class FolderPool(ImagePool):
    """A folder of class folders: ``<root>/<wnid or class name>/<image>``; ``root`` may be the parent of
    ``train/``. ``wnids`` and ``names`` are the model's class ids and names in output order (default:
    ImageNet's wnids); a folder is the class whose id or name it spells (:func:`class_index`), others are
    ignored (:func:`check_folders` names them when planning)."""

    def __init__(self, root: str | Path, wnids: Sequence[str], names: Optional[Sequence[str]] = None):
        root = folder_root(root, wnids, names)
        self.root = root
        self.name = f"image folder {root}"
        index = class_index(wnids, names)
        self._files: Dict[int, List[Path]] = {}
        unknown = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            cid = index.get(sub.name, index.get(norm_name(sub.name)))
            if cid is None:
                unknown.append(sub.name)
                continue
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                self._files[cid] = files
        if not self._files:
            what = "ImageNet wnids" if names is None or _is_imagenet(wnids) else "the model's class names"
            hint = f" (found folders such as {unknown[0]!r}, which are not {what})" if unknown else ""
            raise AtlasError(f"data folder {str(root)!r} holds no images in class sub-folders{hint}")
        self.skipped: List[str] = []

    def fingerprint(self) -> str:
        """A fingerprint of the folder's contents: every image's class, name and size (one ``stat`` per
        file, computed once per pool; no image is read). Renaming, adding, removing or re-encoding an
        image changes it; the folder's path does not."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256()
            for c in sorted(self._files):
                for p in self._files[c]:
                    try:
                        size = p.stat().st_size
                    except OSError:
                        size = -1
                    h.update(f"{c}:{p.name}:{size};".encode("utf-8", "surrogateescape"))
            self._fingerprint = f"folder-{h.hexdigest()[:16]}"
        return self._fingerprint

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


def open_pool(spec: str, wnids: Optional[Sequence[str]] = None, names: Optional[Sequence[str]] = None) -> ImagePool:
    """``"bundled"`` or the path of a folder of class folders, for a model with class ids ``wnids`` and
    names ``names`` (default: ImageNet's)."""
    if spec == "bundled":
        return BundledPool(wnids)
    if wnids is None:
        from ..models.classes import imagenet_classes

        wnids = imagenet_classes()[1]
    return FolderPool(spec, wnids, names)


def model_labels(model: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """``(wnids, names)`` of model ``model``: the class ids and names its pool is read with (its card's;
    ImageNet's for a model without a card)."""
    from ..models.cards import known_card
    from ..models.classes import imagenet_classes

    card = known_card(model)
    names, wnids = card.labels() if card is not None else imagenet_classes()
    return tuple(wnids), tuple(names)


def open_model_pool(spec: str, model: str) -> ImagePool:
    """:func:`open_pool` for model ``model``: the pool read in its class ids."""
    return open_pool(spec, *model_labels(model))


# ------------------------------------------------------------------------------------------ labels
def norm_name(name: str) -> str:
    """A class name as folders spell it: case, underscores, hyphens and runs of spaces do not matter."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def _is_imagenet(wnids: Sequence[str]) -> bool:
    from ..models.classes import imagenet_classes

    return tuple(wnids) == imagenet_classes()[1]


def class_index(wnids: Sequence[str], names: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Folder name -> class id: a class's id (ImageNet's wnid, or the model's label) as it is, or its name
    spelled in any case with ``_``/``-``/spaces (``Egyptian_cat``); a name that two classes share (ImageNet's
    two "crane"s) names neither."""
    index: Dict[str, int] = {}
    for i, n in enumerate(names or ()):
        key = norm_name(n)
        index[key] = -1 if key in index and index[key] != i else i
    index = {k: v for k, v in index.items() if v >= 0}
    for i, w in enumerate(wnids):
        index.setdefault(w, i)
    return index


def folder_root(root: str | Path, wnids: Sequence[str] = (), names: Optional[Sequence[str]] = None) -> Path:
    """The folder that holds the class folders: ``root``, or its ``train/`` when ``root`` has one and no
    class folder of its own; a missing folder is an :class:`AtlasError`."""
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise AtlasError(f"data folder {str(root)!r} is a file, not a folder: give --data the folder that holds "
                         f"the class sub-folders (<folder>/<class>/*.jpg), or 'bundled'")
    if not root.is_dir():
        raise AtlasError(f"data folder {str(root)!r} does not exist (expected <folder>/<class>/*.jpg)")
    if (root / "train").is_dir():
        index = class_index(wnids, names)
        if not any(p.is_dir() and (p.name in index or norm_name(p.name) in index) for p in root.iterdir()):
            root = root / "train"
    return root


def pool_classes(spec: str, wnids: Sequence[str], names: Optional[Sequence[str]] = None,
                 cap: int = 64) -> Optional[Dict[int, int]]:
    """``{class id: number of images}`` (counted up to ``cap``) of the classes of a model with class ids
    ``wnids`` and names ``names`` that have images in the pool - folders are listed, no image is read - or
    None when the folder does not exist (yet)."""
    if spec == "bundled":
        pool = BundledPool(wnids)
        return {c: len(pool.items(c)) for c in pool.class_ids()}
    try:
        root = folder_root(spec, wnids, names)
    except AtlasError:
        return None
    index = class_index(wnids, names)
    out: Dict[int, int] = {}
    for sub in root.iterdir():
        cid = index.get(sub.name, index.get(norm_name(sub.name))) if sub.is_dir() else None
        if cid is not None:
            n = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in _first_files(sub, cap))
            if n:
                out[cid] = min(cap, out.get(cid, 0) + n)
    return out


def _first_files(folder: Path, limit: int = 64):
    """Up to ``limit`` image files of ``folder`` (enough to count a few without listing 1300 files)."""
    try:
        it = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return list(itertools.islice(it, limit))
    except OSError:
        return []


def unmatched_folders(spec: str, label_sets: Sequence[tuple]) -> List[str]:
    """Class folders of the pool that name no class of any of ``label_sets`` (``(wnids, names)`` pairs),
    sorted; empty for the bundled photos or a folder that does not exist."""
    if spec == "bundled":
        return []
    try:
        root = folder_root(spec, *label_sets[0]) if label_sets else folder_root(spec)
    except AtlasError:
        return []
    indexes = [class_index(w, n) for w, n in label_sets]
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not any(sub.name in ix or norm_name(sub.name) in ix for ix in indexes):
            out.append(sub.name)
    return out
