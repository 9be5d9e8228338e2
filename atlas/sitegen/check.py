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
* every image a page or the manifest names is a whole image file (not empty, and it starts as a PNG, WebP,
  JPEG, GIF or SVG file does): a zero-byte thumbnail is a problem, not a link that resolves;
* ``manifest.json`` and ``search.json`` have the shape atlas writes (a damaged one is one problem line,
  never a crash of the checker); a page that is not UTF-8 is a problem too;
* every file the last render recorded (``.atlas-files.json``, in each tree) has the size it was written with;
* every file of each tree's file list (what an upload sends) exists.

A missing or damaged file is one line, however many pages name it. Host limits (``atlas check --host``)
are in :mod:`.hosts`.
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


def _parse(path: Path, problems: List[str], rel: str) -> _Refs:
    p = _Refs()
    try:
        p.feed(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{rel}: unreadable page ({'not UTF-8' if isinstance(exc, ValueError) else exc}); "
                        f"render the site again")
    return p


#: how each kind of image file starts (an empty or truncated-to-nothing file matches none)
_IMAGE_SIGNATURES = {".png": (b"\x89PNG\r\n\x1a\n",), ".webp": (b"RIFF",), ".jpg": (b"\xff\xd8\xff",),
                     ".jpeg": (b"\xff\xd8\xff",), ".gif": (b"GIF87a", b"GIF89a"), ".svg": (b"<",)}


def image_problem(path: Path) -> str:
    """Why the image file ``path`` cannot be shown ("" if it looks whole): empty, or not the format its
    name says. Reads at most 16 bytes (a WebP also names itself at bytes 8-12)."""
    sig = _IMAGE_SIGNATURES.get(path.suffix.lower())
    if sig is None:
        return ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "empty file"
    ok = any(head.lstrip()[: len(s)] == s if s == b"<" else head.startswith(s) for s in sig)
    if ok and path.suffix.lower() == ".webp":
        ok = head[8:12] == b"WEBP"
    return "" if ok else f"not a {path.suffix.lower()[1:].upper()} file"


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
    images without alt text or that are not whole files, manifest and search-index entries without their
    files, damaged files and file lists that do not match their trees. Empty means clean."""
    site = Site.at(root, assets)
    problems: List[str] = []
    parsed: Dict[Tuple[Path, str], _Refs] = {}
    for folder in site.folders:
        for p in sorted(folder.rglob("*.html")):
            rel = p.relative_to(folder).as_posix()
            parsed[(folder, rel)] = _parse(p, problems, rel if folder == site.pages else f"[assets] {rel}")
    if not any(folder == site.pages for folder, _ in parsed):
        return [f"no HTML pages under {site.pages}"]
    images: Dict[Path, str] = {}  # image file -> the first page naming it
    broken: Dict[str, List[Tuple[str, str]]] = {}  # missing file -> [(page, reference)]: one line per file
    for (folder, rel_page), info in parsed.items():
        shown = rel_page if folder == site.pages else f"[assets] {rel_page}"
        if info.missing_alt:
            problems.append(f"{shown}: {info.missing_alt} <img> without alt text")
        for tag, ref in info.refs:
            problems += _check_ref(site, parsed, folder, rel_page, shown, tag, ref, broken, images)
    for target, refs in broken.items():
        more = f" (and {len(refs) - 1} more page(s))" if len(refs) > 1 else ""
        problems.append(f"{refs[0][0]}: broken reference {refs[0][1]!r} -> {target}{more}")
    problems += check_data_files(site, images)
    problems += check_file_lists(site)
    for path, page in sorted(images.items()):
        why = image_problem(path)
        if why:
            problems.append(f"{_shown(site, path)}: {why} (named by {page}); render the site again")
    reported = {p.split(": ", 1)[0] for p in problems}
    for folder in site.folders:  # one line per file
        problems += [p for p in check_record(folder) if p.split(": ", 1)[0] not in reported]
    return problems


def _shown(site: Site, path: Path) -> str:
    for folder, tag in ((site.pages, ""), (site.assets, "[assets] ")):
        try:
            return tag + path.relative_to(folder).as_posix()
        except ValueError:
            continue
    return str(path)


def _check_ref(site: Site, parsed, folder: Path, rel_page: str, shown: str, tag: str, ref: str,
               broken: Dict[str, List[Tuple[str, str]]], images: Dict[Path, str]) -> List[str]:
    try:
        parts = urlsplit(ref)
    except ValueError:
        return [f"{shown}: malformed URL {ref[:80]!r} in <{tag}>"]
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
            broken.setdefault(target if there == site.pages else f"[assets] {target}", []).append((shown, ref))
            return []
        images.setdefault(there / target, shown)
    frag = unquote(parts.fragment)
    if frag and (there, target) in parsed and frag not in parsed[(there, target)].ids:
        return [f"{shown}: {ref!r}: no element with id {frag!r} in {target}"]
    return []


def check_record(root: Path) -> List[str]:
    """Every file the last render recorded has the size it was written with (a truncated, emptied or
    overwritten page, image or script is damaged); a damaged record itself is a problem too."""
    from .writer import RECORD, RECORD_COPY, _parse_record

    problems: List[str] = []
    files = None
    for name in (RECORD, RECORD_COPY):
        if not (root / name).exists():
            continue
        try:
            files = _parse_record(json.loads((root / name).read_bytes().decode("utf-8")))
        except (OSError, ValueError, RecursionError):
            files = None
        if files is None:
            problems.append(f"{name}: damaged record of the site's files; render the site again")
        else:
            break
    for rel, entry in sorted((files or {}).items()):
        path = _safe(root, rel)
        if path is None or not entry:
            continue
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(f"{rel}: missing (the last render wrote it); render the site again")
            continue
        if size != entry[0]:
            problems.append(f"{rel}: {size} bytes, the last render wrote {entry[0]} (damaged); render the site again")
    return problems


def _manifest_problem(m) -> str:
    if not isinstance(m, dict):
        return f"not a JSON object ({type(m).__name__})"
    figs, classes = m.get("figures", []), m.get("classes") or {}
    if not isinstance(figs, list) or not all(isinstance(f, dict) for f in figs):
        return "'figures' is not a list of objects"
    for f in figs:
        if any(f.get(k) is not None and not isinstance(f.get(k), str)
               for k in ("page", "png", "alpha", "masked", "thumb")):
            return f"a path of figure {str(f.get('key'))[:24]} is not a string"
    if not isinstance(classes, dict) or not all(
            isinstance(cs, list) and all(isinstance(c, dict) and isinstance(c.get("references", []), list)
                                         for c in cs) for cs in classes.values()):
        return "'classes' is not a mapping of models to lists of classes"
    return ""


def _index_problem(index) -> str:
    if not isinstance(index, dict):
        return f"not a JSON object ({type(index).__name__})"
    pat = index.get("patterns")
    if not isinstance(pat, dict) or not all(isinstance(pat.get(k), str) for k in ("class", "figure", "thumb", "view")):
        return "no URL patterns"
    if not (isinstance(index.get("models"), list) and all(isinstance(m, dict) and isinstance(m.get("slug"), str)
                                                          for m in index["models"])):
        return "bad 'models'"
    if not (isinstance(index.get("methods"), list) and all(isinstance(m, dict) and isinstance(m.get("slug"), str)
                                                           for m in index["methods"])):
        return "bad 'methods'"
    if not (isinstance(index.get("classes"), list) and all(isinstance(c, list) and c and isinstance(c[0], int)
                                                           for c in index["classes"])):
        return "bad 'classes'"
    missing = index.get("missing", {})
    if not (isinstance(missing, dict) and all(isinstance(v, list) for v in missing.values())):
        return "bad 'missing'"
    if not (isinstance(index.get("seeds"), list) and isinstance(index.get("missing", {}), dict)
            and isinstance(index.get("pages", []), list)
            and all(isinstance(p, dict) and isinstance(p.get("page"), str) for p in index.get("pages", []))):
        return "bad 'seeds', 'missing' or 'pages'"
    return ""


def _safe(root: Path, rel: str) -> Path | None:
    """``root / rel`` if ``rel`` stays inside the site, else None."""
    target = posixpath.normpath(unquote(rel))
    if target.startswith(("../", "/")) or target == "..":
        return None
    return root / target


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


def check_data_files(site, images: Optional[Dict[Path, str]] = None) -> List[str]:
    """Files named by ``manifest.json`` and URLs built from ``search.json``'s patterns must exist (the
    images among them are added to ``images`` for the whole-file check)."""
    if not isinstance(site, Site):
        site = Site.at(site)
    problems: List[str] = []
    images = {} if images is None else images
    manifest = _load(site.file("manifest.json"), "manifest.json", problems, _manifest_problem)
    if manifest:
        for f in manifest.get("figures", []):
            for key in ("page", "png", "alpha", "thumb", "view", "version_page"):
                path = site.file(f[key]) if f.get(key) else None
                if f.get(key) and path is None:
                    problems.append(f"manifest.json: {key} of figure {f.get('key')} missing: {f[key]}")
                elif path is not None and not key.endswith("page"):
                    images.setdefault(path, "manifest.json")
            for v in f.get("versions", []) if isinstance(f.get("versions"), list) else []:
                for kind, url in (v.get("urls") or {}).items() if isinstance(v, dict) else []:
                    located = site.locate(url) if "://" in url else None
                    if (located and not (located[0] / located[1]).is_file()) or (not located and site.file(url) is None):
                        problems.append(f"manifest.json: {kind} of version {v.get('key')} missing: {url}")
        for model, classes in (manifest.get("classes") or {}).items():
            for c in classes:
                for path in [c.get("page")] + list(c.get("references", [])):
                    if path and (not isinstance(path, str) or site.file(path) is None):
                        problems.append(f"manifest.json: class {c.get('id')} of {model}: missing {path}")
    index = (_load(site.pages / "search.json", "search.json", problems, _index_problem)
             if (site.pages / "search.json").exists() else None)
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
                            found = site.file(path)
                            if found is None:
                                problems.append(f"search.json: {kind} of class {c[0]} ({meth.get('name')}, seed "
                                                f"{seed}) missing: {path}")
                            elif kind != "figure":
                                images.setdefault(found, "search.json")
        for p in index.get("pages", []):
            try:
                found = site.file(unquote(urlsplit(p["page"]).path))
            except ValueError:
                found = None
            if found is None:
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


def _load(path: Optional[Path], name: str, problems: List[str], problem=None):
    if path is None:
        return None
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON" if isinstance(
            exc, (ValueError, RecursionError)) else (exc.strerror or str(exc))
        problems.append(f"{name}: unreadable ({why}); render the site again")
        return None
    why = problem(value) if problem is not None else ""
    if why:
        problems.append(f"{name}: malformed ({why}); render the site again")
        return None
    return value
