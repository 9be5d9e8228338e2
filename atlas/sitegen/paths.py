"""Where every page and asset of the site lives. All URLs are relative to the site root and built only
from ids and safe slugs (no class names, no user strings), so they are stable and cannot escape the
output folder."""
from __future__ import annotations

import posixpath

from ..targets import Target, safe_slug


def model_slug(model: str) -> str:
    return safe_slug(model.replace(":", "-"))


def class_page(model: str, class_id: int) -> str:
    return f"{model_slug(model)}/class/{class_id:04d}.html"


def model_page(model: str) -> str:
    return f"{model_slug(model)}/index.html"


def figure_stem(model: str, method: str, target: Target, seed: int) -> str:
    return f"{model_slug(model)}/img/{safe_slug(method)}/{target.slug()}-s{seed}"


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

#: Asset suffixes of a figure (appended to :func:`figure_stem`).
FIGURE_FILES = {"png": ".png", "alpha": "-alpha.png", "masked": "-masked.png", "thumb": "-thumb.webp",
                "view": "-view.webp"}


def class_patterns() -> dict:
    """URL patterns of class targets for the browser (search, compare, method filter), with the
    placeholders ``{model}`` (model slug), ``{method}`` (method slug), ``{id}`` (4-digit class id) and
    ``{seed}`` (each at most once). They mirror :func:`class_page`, :func:`figure_page` and
    :func:`figure_stem` (tests check that they agree), so the JavaScript needs no URL scheme of its own."""
    stem = "{model}/img/{method}/class-{id}-s{seed}"
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
