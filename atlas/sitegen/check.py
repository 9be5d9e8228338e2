"""Link checker for a built site: every ``href``/``src`` of every page must resolve to a file inside the
site, and nothing may load from another host (the site works offline, from ``file://`` and any sub-path)."""
from __future__ import annotations

import posixpath
from html.parser import HTMLParser
from pathlib import Path
from typing import List, Tuple
from urllib.parse import unquote, urlsplit


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: List[Tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "poster", "data-src", "data-full") and value is not None:
                self.refs.append((tag, value))
            elif name == "srcset" and value:
                self.refs.extend((tag, part.strip().split(" ")[0]) for part in value.split(",") if part.strip())


def page_references(html: str) -> List[Tuple[str, str]]:
    p = _Refs()
    p.feed(html)
    return p.refs


def check_site(root: str | Path) -> List[str]:
    """Problems found under ``root``: broken references, absolute or external URLs. Empty means clean."""
    root = Path(root).resolve()
    problems = []
    pages = sorted(root.rglob("*.html"))
    if not pages:
        return [f"no HTML pages under {root}"]
    for page in pages:
        rel_page = page.relative_to(root).as_posix()
        for tag, ref in page_references(page.read_text(encoding="utf-8")):
            parts = urlsplit(ref)
            if parts.scheme in ("mailto", "data", "javascript"):
                continue
            if parts.scheme or parts.netloc:
                problems.append(f"{rel_page}: external reference {ref!r} in <{tag}>")
                continue
            if not parts.path:
                continue  # same-page anchor or query
            if parts.path.startswith("/"):
                problems.append(f"{rel_page}: absolute path {ref!r} breaks under a sub-path")
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel_page), unquote(parts.path)))
            if target.startswith("../") or target == "..":
                problems.append(f"{rel_page}: {ref!r} points outside the site")
            elif not (root / target).is_file():
                problems.append(f"{rel_page}: broken reference {ref!r} -> {target}")
    return problems
