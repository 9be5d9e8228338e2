"""Link checker for a built site (``atlas check``), over one folder or both trees (:mod:`.trees`).

* every ``href``/``src``/``srcset``/``data-src``/``data-index``/``data-alpha`` of every page (plain and versioned) resolves
  to a file of the site - a relative link within its page's tree, an absolute one that starts with the
  site's ``assets_url`` or ``[site] url`` in that tree - and every ``#fragment`` to an element id of its page;
* nothing else loads from another host and no link is root-absolute (the site works offline, from
  ``file://`` and from any sub-path);
* every ``<img>`` has alt text;
* the files named in ``manifest.json`` exist, and so does every URL that the browser builds from the
  patterns of ``search.json`` and the versions of ``figure-versions.js`` (class pages, thumbnails, views
  and figure pages of built images);
* every file of each tree's file list (what an upload sends) exists.

Host limits (``atlas check --host``) are in :mod:`.hosts`.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

from .published import read_published
from .trees import FILE_LIST

LINK_ATTRS = ("href", "src", "poster", "data-src", "data-full", "data-index", "data-alpha")
#: The renderer's own records (not published, not in the file lists).
PRIVATE = (".atlas-files.json", ".atlas-files.copy.json", ".atlas-published.json", ".atlas-published.copy.json")


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


@dataclass
class Site:
    """A built site as the checker sees it: its pages folder and, when assets are apart, the assets folder
    and the addresses both are published at (from the site's record)."""

    pages: Path
    assets: Path
    site_url: Optional[str] = None
    assets_url: Optional[str] = None

    @classmethod
    def at(cls, root, assets=None) -> "Site":
        root = Path(root).resolve()
        trees = read_published(root).trees
        folder = assets or trees.get("assets_folder")
        there = (root / folder).resolve() if folder else root
        return cls(root, there, trees.get("site_url"), trees.get("assets_url") if folder else None)

    @property
    def folders(self) -> List[Path]:
        return [self.pages] if self.assets == self.pages else [self.pages, self.assets]

    def locate(self, url: str) -> Optional[Tuple[Path, str]]:
        """(tree folder, path) of an absolute URL of this site, or None for another host."""
        for base, folder in ((self.assets_url, self.assets), (self.site_url, self.pages)):
            if base and url.startswith(base):
                return folder, unquote(urlsplit(url[len(base):]).path)
        return None

    def file(self, path: str) -> Optional[Path]:
        """The file of site path ``path`` in whichever tree holds it, or None."""
        for folder in self.folders:
            if (folder / path).is_file():
                return folder / path
        return None


def check_site(root: str | Path, assets: str | Path | None = None) -> List[str]:
    """Problems found in the site whose pages are under ``root`` (and its assets tree, found from the site's
    record or given as ``assets``): broken references, external or root-absolute URLs, missing fragments,
    images without alt text, manifest and search-index entries without their files, file lists that do not
    match their trees. Empty means clean."""
    site = Site.at(root, assets)
    problems: List[str] = []
    parsed: Dict[Tuple[Path, str], _Refs] = {}
    for folder in site.folders:
        for p in sorted(folder.rglob("*.html")):
            parsed[(folder, p.relative_to(folder).as_posix())] = _parse(p)
    if not any(folder == site.pages for folder, _ in parsed):
        return [f"no HTML pages under {site.pages}"]
    for (folder, rel_page), info in parsed.items():
        shown = rel_page if folder == site.pages else f"[assets] {rel_page}"
        if info.missing_alt:
            problems.append(f"{shown}: {info.missing_alt} <img> without alt text")
        for tag, ref in info.refs:
            problems += _check_ref(site, parsed, folder, rel_page, shown, tag, ref)
    problems += check_data_files(site)
    problems += check_file_lists(site)
    return problems


def _check_ref(site: Site, parsed, folder: Path, rel_page: str, shown: str, tag: str, ref: str) -> List[str]:
    parts = urlsplit(ref)
    if parts.scheme in ("mailto", "data", "javascript"):
        return []
    if parts.scheme or parts.netloc:
        located = site.locate(ref)
        if located is None:
            return [f"{shown}: external reference {ref!r} in <{tag}>"]
        there, target = located
    elif parts.path.startswith("/"):
        return [f"{shown}: absolute path {ref!r} breaks under a sub-path"]
    else:
        there, target = folder, rel_page
        if parts.path:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel_page), unquote(parts.path)))
            if target.startswith("../") or target == "..":
                return [f"{shown}: {ref!r} points outside the site"]
    if target != rel_page or there != folder:
        if not (there / target).is_file():
            return [f"{shown}: broken reference {ref!r} -> {target}"]
    frag = unquote(parts.fragment)
    if frag and (there, target) in parsed and frag not in parsed[(there, target)].ids:
        return [f"{shown}: {ref!r}: no element with id {frag!r} in {target}"]
    return []


def _versions(site: Site, problems: List[str]) -> Dict[str, List[str]]:
    path = site.pages / "figure-versions.js"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        problems.append(f"figure-versions.js: unreadable ({exc})")
        return {}
    head = "window.ATLAS_VERSIONS="
    try:
        if not (text.startswith(head) and text.endswith(";")):
            raise ValueError("not a window.ATLAS_VERSIONS assignment")
        return json.loads(text[len(head):-1])
    except ValueError as exc:
        problems.append(f"figure-versions.js: unreadable ({exc})")
        return {}


def check_data_files(site) -> List[str]:
    """Files named by ``manifest.json`` and URLs built from ``search.json``'s patterns must exist."""
    if not isinstance(site, Site):
        site = Site.at(site)
    problems: List[str] = []
    manifest = _load(site.file("manifest.json"), "manifest.json", problems)
    if manifest:
        for f in manifest.get("figures", []):
            for key in ("page", "png", "alpha", "thumb", "view", "version_page"):
                if f.get(key) and site.file(f[key]) is None:
                    problems.append(f"manifest.json: {key} of figure {f.get('key')} missing: {f[key]}")
            for v in f.get("versions", []):
                for kind, url in (v.get("urls") or {}).items():
                    located = site.locate(url) if "://" in url else None
                    if (located and not (located[0] / located[1]).is_file()) or (not located and site.file(url) is None):
                        problems.append(f"manifest.json: {kind} of version {v.get('key')} missing: {url}")
        for model, classes in (manifest.get("classes") or {}).items():
            for c in classes:
                for path in [c.get("page")] + list(c.get("references", [])):
                    if path and site.file(path) is None:
                        problems.append(f"manifest.json: class {c.get('id')} of {model}: missing {path}")
    index = _load(site.pages / "search.json", "search.json", problems) if (site.pages / "search.json").exists() else None
    if index:
        versions = _versions(site, problems)
        pat = index["patterns"]
        order = {c[0]: i for i, c in enumerate(index["classes"])}
        for m in index["models"]:
            for c in index["classes"]:
                path = pat["class"].replace("{model}", m["slug"]).replace("{id}", f"{c[0]:04d}")
                if site.file(path) is None:
                    problems.append(f"search.json: class page of {c[0]} on {m['name']} missing: {path}")
            for meth in index["methods"]:
                for seed in index["seeds"]:
                    missing = set(index.get("missing", {}).get(f"{m['slug']}|{meth['slug']}|{seed}", []))
                    keys = versions.get(f"{m['slug']}|{meth['slug']}|{seed}", [])
                    for c in index["classes"]:
                        if c[0] in missing:
                            continue
                        version = keys[order[c[0]]] if order[c[0]] < len(keys) else ""
                        for kind in ("figure", "thumb", "view"):
                            path = (pat[kind].replace("{model}", m["slug"]).replace("{method}", meth["slug"])
                                    .replace("{id}", f"{c[0]:04d}").replace("{seed}", str(seed))
                                    .replace("{version}", version))
                            if site.file(path) is None:
                                problems.append(f"search.json: {kind} of class {c[0]} ({meth['name']}, seed {seed}) "
                                                f"missing: {path}")
        for p in index.get("pages", []):
            if site.file(unquote(urlsplit(p["page"]).path)) is None:
                problems.append(f"search.json: page {p['page']} missing")
    return problems


def check_file_lists(site: Site) -> List[str]:
    """Every file of each tree's file list (written by the renderer, read by upload tools) exists."""
    problems: List[str] = []
    for folder in site.folders:
        listing = folder / FILE_LIST
        if not listing.is_file():
            continue  # a site written before file lists existed
        listed = set(listing.read_text(encoding="utf-8").splitlines())
        present = {rel for rel in listed if (folder / rel).is_file()}
        name = "pages" if folder == site.pages else "assets"
        for rel in sorted(listed - present)[:20]:
            problems.append(f"{FILE_LIST} ({name}): lists {rel}, which is missing")
    return problems


def _load(path: Optional[Path], name: str, problems: List[str]):
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{name}: unreadable ({exc})")
        return None
