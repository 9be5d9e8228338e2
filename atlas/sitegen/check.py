"""Link checker for a built site (``atlas check``).

* every ``href``/``src``/``srcset``/``data-src``/``data-index`` of every page resolves to a file inside the
  site, and every ``#fragment`` to an element id of its page;
* nothing loads from another host and no link is absolute (the site works offline, from ``file://`` and
  from any sub-path);
* every ``<img>`` has alt text;
* the files named in ``manifest.json`` exist, and so does every URL that the browser builds from the
  patterns of ``search.json`` (class pages, thumbnails, views and figure pages of built images);
* every image a page or the manifest names is a whole image file (not empty, and it starts as a PNG, WebP,
  JPEG, GIF or SVG file does): a zero-byte thumbnail is a problem, not a link that resolves;
* ``manifest.json`` and ``search.json`` have the shape atlas writes (a damaged one is one problem line,
  never a crash of the checker); a page that is not UTF-8 is a problem too;
* every file the last render recorded (``.atlas-files.json``) has the size it was written with.

A missing or damaged file is one line, however many pages name it.
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


def check_site(root: str | Path) -> List[str]:
    """Problems found under ``root``: broken references, absolute or external URLs, missing fragments,
    images without alt text, manifest and search-index entries without their files. Empty means clean."""
    root = Path(root).resolve()
    problems: List[str] = []
    pages = sorted(root.rglob("*.html"))
    if not pages:
        return [f"no HTML pages under {root}"]
    parsed: Dict[str, _Refs] = {p.relative_to(root).as_posix(): _parse(p, problems, p.relative_to(root).as_posix())
                                for p in pages}
    images: Dict[str, str] = {}  # image file -> the first page naming it
    broken: Dict[str, List[Tuple[str, str]]] = {}  # missing file -> [(page, reference)]: one line per file
    for rel_page, info in parsed.items():
        if info.missing_alt:
            problems.append(f"{rel_page}: {info.missing_alt} <img> without alt text")
        for tag, ref in info.refs:
            try:
                parts = urlsplit(ref)
            except ValueError:
                problems.append(f"{rel_page}: malformed URL {ref[:80]!r} in <{tag}>")
                continue
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
                    broken.setdefault(target, []).append((rel_page, ref))
                    continue
                images.setdefault(target, rel_page)
            frag = unquote(parts.fragment)
            if frag and target in parsed and frag not in parsed[target].ids:
                problems.append(f"{rel_page}: {ref!r}: no element with id {frag!r} in {target}")
    for target, refs in broken.items():
        more = f" (and {len(refs) - 1} more page(s))" if len(refs) > 1 else ""
        problems.append(f"{refs[0][0]}: broken reference {refs[0][1]!r} -> {target}{more}")
    problems += check_data_files(root, images)
    for target, page in sorted(images.items()):
        why = image_problem(root / target)
        if why:
            problems.append(f"{target}: {why} (named by {page}); render the site again")
    reported = {p.split(": ", 1)[0] for p in problems}
    problems += [p for p in check_record(root) if p.split(": ", 1)[0] not in reported]  # one line per file
    return problems


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


def check_data_files(root: Path, images: Dict[str, str] | None = None) -> List[str]:
    """Files named by ``manifest.json`` and URLs built from ``search.json``'s patterns must exist (the
    images among them are added to ``images`` for the whole-file check)."""
    problems: List[str] = []
    images = {} if images is None else images
    manifest = _load(root / "manifest.json", problems, _manifest_problem)
    if manifest:
        for f in manifest.get("figures", []):
            for key in ("page", "png", "alpha", "masked", "thumb"):
                path = f.get(key) and _safe(root, f[key])
                if f.get(key) and (path is None or not path.is_file()):
                    problems.append(f"manifest.json: {key} of figure {f.get('key')} missing: {f[key]}")
                elif f.get(key) and key != "page":
                    images.setdefault(posixpath.normpath(f[key]), "manifest.json")
        for model, classes in (manifest.get("classes") or {}).items():
            for c in classes:
                for path in [c.get("page")] + list(c.get("references", [])):
                    if path and (not isinstance(path, str) or _safe(root, path) is None
                                 or not _safe(root, path).is_file()):
                        problems.append(f"manifest.json: class {c.get('id')} of {model}: missing {path}")
    index = _load(root / "search.json", problems, _index_problem) if (root / "search.json").exists() else None
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
                                problems.append(f"search.json: {kind} of class {c[0]} ({meth.get('name')}, seed "
                                                f"{seed}) missing: {path}")
                            elif kind != "figure":
                                images.setdefault(posixpath.normpath(path), "search.json")
        for p in index.get("pages", []):
            try:
                path = _safe(root, urlsplit(p["page"]).path)
            except ValueError:
                path = None
            if path is None or not path.is_file():
                problems.append(f"search.json: page {p['page']} missing")
    return problems


def _load(path: Path, problems: List[str], problem=None):
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON" if isinstance(
            exc, (ValueError, RecursionError)) else (exc.strerror or str(exc))
        problems.append(f"{path.name}: unreadable ({why}); render the site again")
        return None
    why = problem(value) if problem is not None else ""
    if why:
        problems.append(f"{path.name}: malformed ({why}); render the site again")
        return None
    return value
