"""Link checker for a built site (``atlas check``).

* every ``href``/``src``/``srcset``/``data-src``/``data-index`` of every page resolves to a file inside the
  site, and every ``#fragment`` to an element id of its page;
* nothing loads from another host and no link is absolute (the site works offline, from ``file://`` and
  from any sub-path);
* every ``<img>`` has alt text;
* the files named in ``manifest.json`` exist, and so does every URL that the browser builds from the
  patterns of ``search.json`` (class pages, thumbnails, views and figure pages of built images).
"""
from __future__ import annotations

import json
import posixpath
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Set, Tuple
from urllib.parse import unquote, urlsplit

LINK_ATTRS = ("href", "src", "poster", "data-src", "data-full", "data-index")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: List[Tuple[str, str]] = []
        self.ids: Set[str] = set()
        self.missing_alt = 0

    def handle_starttag(self, tag, attrs):
        names = set()
        for name, value in attrs:
            names.add(name)
            if name in LINK_ATTRS and value is not None:
                self.refs.append((tag, value))
            elif name == "srcset" and value:
                self.refs.extend((tag, part.strip().split(" ")[0]) for part in value.split(",") if part.strip())
            elif name in ("id", "name") and value:
                self.ids.add(value)
        if tag == "img" and "alt" not in names:
            self.missing_alt += 1


def page_references(html: str) -> List[Tuple[str, str]]:
    p = _Refs()
    p.feed(html)
    return p.refs


def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def check_site(root: str | Path) -> List[str]:
    """Problems found under ``root``: broken references, absolute or external URLs, missing fragments,
    images without alt text, manifest and search-index entries without their files. Empty means clean."""
    root = Path(root).resolve()
    problems: List[str] = []
    pages = sorted(root.rglob("*.html"))
    if not pages:
        return [f"no HTML pages under {root}"]
    parsed: Dict[str, _Refs] = {p.relative_to(root).as_posix(): _parse(p) for p in pages}
    for rel_page, info in parsed.items():
        if info.missing_alt:
            problems.append(f"{rel_page}: {info.missing_alt} <img> without alt text")
        for tag, ref in info.refs:
            parts = urlsplit(ref)
            if parts.scheme in ("mailto", "data", "javascript"):
                continue
            if parts.scheme or parts.netloc:
                problems.append(f"{rel_page}: external reference {ref!r} in <{tag}>")
                continue
            if parts.path.startswith("/"):
                problems.append(f"{rel_page}: absolute path {ref!r} breaks under a sub-path")
                continue
            target = rel_page
            if parts.path:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(rel_page), unquote(parts.path)))
                if target.startswith("../") or target == "..":
                    problems.append(f"{rel_page}: {ref!r} points outside the site")
                    continue
                if not (root / target).is_file():
                    problems.append(f"{rel_page}: broken reference {ref!r} -> {target}")
                    continue
            frag = unquote(parts.fragment)
            if frag and target in parsed and frag not in parsed[target].ids:
                problems.append(f"{rel_page}: {ref!r}: no element with id {frag!r} in {target}")
    problems += check_data_files(root)
    return problems


def check_data_files(root: Path) -> List[str]:
    """Files named by ``manifest.json`` and URLs built from ``search.json``'s patterns must exist."""
    problems: List[str] = []
    manifest = _load(root / "manifest.json", problems)
    if manifest:
        for f in manifest.get("figures", []):
            for key in ("page", "png", "alpha", "masked", "thumb"):
                if f.get(key) and not (root / f[key]).is_file():
                    problems.append(f"manifest.json: {key} of figure {f.get('key')} missing: {f[key]}")
        for model, classes in (manifest.get("classes") or {}).items():
            for c in classes:
                for path in [c.get("page")] + list(c.get("references", [])):
                    if path and not (root / path).is_file():
                        problems.append(f"manifest.json: class {c.get('id')} of {model}: missing {path}")
    index = _load(root / "search.json", problems) if (root / "search.json").exists() else None
    if index:
        pat = index["patterns"]
        for m in index["models"]:
            for c in index["classes"]:
                path = pat["class"].replace("{model}", m["slug"]).replace("{id}", f"{c[0]:04d}")
                if not (root / path).is_file():
                    problems.append(f"search.json: class page of {c[0]} on {m['name']} missing: {path}")
            for meth in index["methods"]:
                for seed in index["seeds"]:
                    missing = set(index.get("missing", {}).get(f"{m['slug']}|{meth['slug']}|{seed}", []))
                    for c in index["classes"]:
                        if c[0] in missing:
                            continue
                        for kind in ("figure", "thumb", "view"):
                            path = (pat[kind].replace("{model}", m["slug"]).replace("{method}", meth["slug"])
                                    .replace("{id}", f"{c[0]:04d}").replace("{seed}", str(seed)))
                            if not (root / path).is_file():
                                problems.append(f"search.json: {kind} of class {c[0]} ({meth['name']}, seed {seed}) "
                                                f"missing: {path}")
        for p in index.get("pages", []):
            if not (root / unquote(urlsplit(p["page"]).path)).is_file():
                problems.append(f"search.json: page {p['page']} missing")
    return problems


def _load(path: Path, problems: List[str]):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: unreadable ({exc})")
        return None
