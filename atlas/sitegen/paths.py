"""Where every page and asset of the site lives. All URLs are relative to the site root and built only
from ids, safe slugs and hashes (no class names, no user strings), so they are stable and cannot escape the
output folder.

A *versioned* path puts a version (the hash of what made the file) between a file's name and its suffix:
``efficientnet_lite0/fig/maco/class-0285-s0.html`` is the plain permalink (the newest version) and
``efficientnet_lite0/fig/maco/class-0285-s0.408bd025ce04ad83ae8b.html`` one version of it, which never
changes; the figure's images share that stem (``...s0.408bd025ce04ad83ae8b.png``, ``-alpha.png``, ...).
"""
from __future__ import annotations

import posixpath
import re

from ..targets import Target, safe_slug


def model_slug(model: str) -> str:
    return safe_slug(model.replace(":", "-"))


def class_page(model: str, class_id: int) -> str:
    return f"{model_slug(model)}/class/{class_id:04d}.html"


def model_page(model: str) -> str:
    return f"{model_slug(model)}/index.html"


def figure_stem(model: str, method: str, target: Target, seed: int, version: str) -> str:
    """The stem of one version of a figure's images (its files append :data:`FIGURE_FILES` suffixes)."""
    if not _VERSION.fullmatch(version):
        raise ValueError(f"a version is a hex hash of 12-64 digits, got {version!r}")
    return f"{model_slug(model)}/img/{safe_slug(method)}/{target.slug()}-s{seed}.{version}"


_VERSION = re.compile(r"[0-9a-f]{12,64}")


def versioned(path: str, version: str) -> str:
    """``path`` with ``.<version>`` before its last suffix: ``a/b-map.png`` -> ``a/b-map.<version>.png``.
    A version is a lower-case hex hash (12 to 64 digits), so a versioned path is told apart from a plain
    one whose name has dots (``neuron-blocks.6-0011.html``)."""
    if not _VERSION.fullmatch(version):
        raise ValueError(f"a version is a hex hash of 12-64 digits, got {version!r}")
    folder, _, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    out = f"{stem}.{version}.{suffix}" if dot else f"{name}.{version}"
    return f"{folder}/{out}" if folder else out


def unversioned(path: str) -> tuple:
    """(plain path, version) of a versioned path (:func:`versioned`), or (path, None)."""
    head, dot, suffix = path.rpartition(".")
    stem, dot2, version = head.rpartition(".")
    if not dot or not dot2 or "/" in version or not _VERSION.fullmatch(version):
        return path, None
    return f"{stem}.{suffix}", version


def figure_page(model: str, method: str, target: Target, seed: int) -> str:
    """The permalink of one figure: one URL per (model, target, method, seed)."""
    return f"{model_slug(model)}/fig/{safe_slug(method)}/{target.slug()}-s{seed}.html"


def layer_page(model: str, layer: str) -> str:
    """The page of a whole layer (every channel of ``[targets] layers``)."""
    return f"{model_slug(model)}/layer/{safe_slug(layer)}.html"


def concept_map_page(model: str) -> str:
    """The map of every concept of a model."""
    return f"{model_slug(model)}/concept-map.html"


def method_page(method: str) -> str:
    return f"methods/{safe_slug(method)}.html"


def method_slug(method: str) -> str:
    return safe_slug(method)


def reference_image(class_id: int, index: int, labels_id: str = "") -> str:
    """A thumbnail of one real image of a class (shared by every model with the same labels: the pool is
    the same; ``labels_id``: a model's own label set, ``ModelInfo.labels_id``)."""
    head = f"ref/{labels_id}" if labels_id else "ref"
    return f"{head}/{class_id:04d}/{index:02d}.webp"


COMPARE_PAGE = "compare.html"
SEARCH_JSON = "search.json"
SEARCH_JS = "search-index.js"
MANIFEST = "manifest.json"

#: Asset suffixes of a figure (appended to :func:`figure_stem`). The masked view is drawn by the browser
#: from the view and the transparency map (it is not a file).
FIGURE_FILES = {"png": ".png", "alpha": "-alpha.png", "thumb": "-thumb.webp", "view": "-view.webp"}
FIGURE_VERSIONS_JS = "figure-versions.js"
SITEMAP = "sitemap.xml"


def class_patterns() -> dict:
    """URL patterns of class targets for the browser (search, compare, method filter), with the
    placeholders ``{model}`` (model slug), ``{method}`` (method slug), ``{id}`` (4-digit class id),
    ``{seed}`` and ``{version}`` (the job key, from ``figure-versions.js``), each at most once. They mirror
    :func:`class_page`, :func:`figure_page` and :func:`figure_stem` (tests check that they agree), so the
    JavaScript needs no URL scheme of its own."""
    stem = "{model}/img/{method}/class-{id}-s{seed}.{version}"
    out = {"class": "{model}/class/{id}.html", "figure": "{model}/fig/{method}/class-{id}-s{seed}.html"}
    out.update({k: stem + suffix for k, suffix in FIGURE_FILES.items()})
    return out


def target_patterns() -> dict:
    """URL patterns of any target's figure page and view image, with ``{model}``, ``{method}``, ``{target}``
    (``Target.slug()``) and ``{seed}``: they mirror :func:`figure_page` and :func:`figure_stem` (the compare
    page's neuron rows)."""
    return {"figure": "{model}/fig/{method}/{target}-s{seed}.html",
            "view": "{model}/img/{method}/{target}-s{seed}" + FIGURE_FILES["view"]}


def relative(from_page: str, to_path: str) -> str:
    """Relative URL from the page ``from_page`` to ``to_path`` (both site-root relative)."""
    base = posixpath.dirname(from_page)
    return posixpath.relpath(to_path, base or ".")


def root_prefix(page: str) -> str:
    """The relative link from ``page`` to the site root (``""``, ``"../"``, ``"../../"``, ...): every link
    of a page is this prefix + a site-root-relative path, so it works from ``file://`` and any sub-path."""
    return "../" * page.count("/")
