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


def method_page(method: str) -> str:
    return f"methods/{safe_slug(method)}.html"


def relative(from_page: str, to_path: str) -> str:
    """Relative URL from the page ``from_page`` to ``to_path`` (both site-root relative)."""
    base = posixpath.dirname(from_page)
    return posixpath.relpath(to_path, base or ".")
