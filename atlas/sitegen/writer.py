"""Phase 2 of the site build: write pages and assets into their trees (:mod:`.trees`). Folders are created
as needed, unchanged bytes are not rewritten (a re-render with nothing new writes nothing), and a versioned
file (an image, a versioned page) is written once and never changed.

Nothing that an earlier render published is removed: the writer's record of its files (``.atlas-files.json``
in each tree) only grows, and the files a render no longer makes (earlier versions, pages of targets no
longer planned) stay, so every URL a site published keeps resolving. Only ``atlas prune``
(:mod:`.prune`) removes files, and only files of that record. Each tree also gets its list of published
files for upload tools (:data:`~atlas.sitegen.trees.FILE_LIST`).

Large sites are written by several forked worker processes (each renders a share of the pages and
assets; the gathered data is inherited, not pickled); small ones in-process.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..errors import AtlasError
from . import published as published_record
from .assets import source_file
from .context import SiteData
from .filters import FILTERS, fmt as _fmt, sparkline_points  # noqa: F401  (re-exported)
from .trees import ASSETS, FILE_LIST, PAGES, Trees, site_config

RECORD = ".atlas-files.json"
#: A second copy of the record, read when the first is garbled, so that the renderer still knows its files.
RECORD_COPY = ".atlas-files.copy.json"
#: The renderer's own records in a tree (not published: left out of the file lists).
RECORDS = (RECORD, RECORD_COPY, published_record.RECORD, published_record.RECORD_COPY)
PARALLEL_MIN_ITEMS = 1500  # below this, forking workers costs more than it saves


def templates_dir() -> Path:
    """The site's templates: ``$ATLAS_TEMPLATES`` (e.g. to restyle a site), else ``atlas/templates/`` of an
    installed package (package data), else the source tree's top-level ``templates/`` (a checkout or an
    editable install)."""
    env = os.environ.get("ATLAS_TEMPLATES")
    package = Path(__file__).resolve().parents[1]
    installed, source = package / "templates", package.parent / "templates"
    path = Path(env) if env else installed if (installed / "base.html").is_file() else source
    if not (path / "base.html").is_file():
        raise AtlasError(f"templates not found at {path}: reinstall atlas, or point ATLAS_TEMPLATES at a folder "
                         f"holding base.html")
    return path


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value):
    """Every value a template prints loses control characters (a NUL in a class name is invalid HTML)."""
    if not isinstance(value, str) or not _CONTROL.search(value):
        return value
    return type(value)(_CONTROL.sub("", value))  # keeps Markup (already-escaped HTML) as Markup


def environment(path: Path) -> Environment:
    env = Environment(loader=FileSystemLoader(str(path)), autoescape=select_autoescape(["html", "xml"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_printable)
    env.filters.update(FILTERS)
    return env


def write_if_changed(path: Path, data: bytes, made: Optional[set] = None) -> bool:
    """Write ``data`` unless the file already holds exactly these bytes; returns True if written.
    ``made`` (optional) remembers folders known to exist, to skip creating them again."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    parent = path.parent
    if made is None or parent not in made:
        parent.mkdir(parents=True, exist_ok=True)
        if made is not None:
            made.add(parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:  # a full disk: no partial temp file left behind
        tmp.unlink(missing_ok=True)
        raise
    return True


def static_files(tdir: Path) -> Dict[str, Path]:
    root = tdir / "static"
    return {f"static/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*")) if p.is_file()}


_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_INDENT = re.compile(r"\n[ \t]+")


def squeeze(html: str) -> str:
    """``html`` without the templates' indentation (outside ``<pre>``): a newline separates words as well
    as a newline and spaces do, and a site has a page per figure."""
    parts = _PRE.split(html)
    return "".join(p if i % 2 else _INDENT.sub("\n", p) for i, p in enumerate(parts))


def _url(trees: Trees, page: str):
    """``url(path)`` for templates: the site path ``path`` as a link from ``page`` (:meth:`Trees.href`)."""

    def url(to: str) -> str:
        if to.startswith("/") or "://" in to:
            raise AtlasError(f"url() takes a site-relative path, got {to!r}")
        return trees.href(page, to)

    return url


def _present(path: Path, produce=None) -> bool:
    """A versioned file is in place: it exists and is not empty (and, copied from the store, has the size of
    its source, so a damaged copy is made again - with the same bytes)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    src = source_file(produce) if produce is not None else None
    if src is not None:
        try:
            return size == src.stat().st_size
        except OSError:
            return True  # the source is gone: the published file stays as it is
    return size > 0


def _write_share(site: SiteData, trees: Trees, env: Environment, tdir: Path, share: int,
                 shares: int) -> Tuple[int, int, List[str]]:
    """Write every ``shares``-th page and asset starting at ``share``; (written, unchanged, produced)."""
    written = unchanged = 0
    produced: List[str] = []
    made: set = set()

    def emit(rel: str, data: bytes) -> None:
        nonlocal written, unchanged
        produced.append(rel)
        if write_if_changed(trees.file(rel), data, made):
            written += 1
        else:
            unchanged += 1

    def kept(rel: str, produce=None) -> bool:
        nonlocal unchanged
        if rel in site.immutable and _present(trees.file(rel), produce):
            produced.append(rel)
            unchanged += 1
            return True
        return False

    if share == 0:
        for rel, src in static_files(tdir).items():
            emit(rel, src.read_bytes())
        for rel, produce in site.page_files.items():
            emit(rel, produce())
    for rel, produce in list(site.assets.items())[share::shares]:
        if not kept(rel, produce):
            emit(rel, produce())
    for page in site.pages[share::shares]:
        if kept(page.path):
            continue
        html = env.get_template(page.template).render(
            page=page, url=_url(trees, page.path), root=trees.base(page.path, PAGES),
            assets_root=trees.base(page.path, ASSETS), site_title=site.title, **page.context)
        emit(page.path, squeeze(html).encode("utf-8"))
    return written, unchanged, produced


def _workers(site: SiteData, workers: Optional[int]) -> int:
    if workers is None:
        workers = int(os.environ.get("ATLAS_RENDER_WORKERS", os.cpu_count() or 1))
    if len(site.pages) + len(site.assets) < PARALLEL_MIN_ITEMS or not hasattr(os, "fork"):
        return 1
    return max(1, min(workers, 8))


def _forked(site: SiteData, out: Trees, env: Environment, tdir: Path, n: int) -> List[Tuple[int, int, List[str]]]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    results, procs = [], []
    for share in range(1, n):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(send, site, out, env, tdir, share, n), daemon=True)
        p.start()
        send.close()
        procs.append((p, recv))
    results.append(_write_share(site, out, env, tdir, 0, n))
    for p, recv in procs:
        try:
            got = recv.recv()
        except EOFError:
            got = None
        p.join()
        if isinstance(got, dict):  # an OSError in the child: raised here as itself (a full disk -> one line)
            raise OSError(got["errno"], got["strerror"], got["filename"])
        if not isinstance(got, tuple):
            raise AtlasError(f"a site writer process failed: {got or f'exit code {p.exitcode}'}")
        results.append(got)
    return results


def _child(send, site, out, env, tdir, share, n) -> None:
    try:
        send.send(_write_share(site, out, env, tdir, share, n))
    except OSError as exc:
        send.send({"errno": exc.errno, "strerror": exc.strerror, "filename": exc.filename})
    except BaseException as exc:  # reported to the parent, which raises
        send.send(f"{type(exc).__name__}: {exc}")
    finally:
        send.close()


def write_site(site: SiteData, out=None, workers: Optional[int] = None) -> Dict[str, int]:
    """Write every page and asset of ``site`` into its trees (``out``: another pages folder to write to);
    returns counts of files written, unchanged, kept (published earlier, not made by this render) and
    removed (always 0: only ``atlas prune`` removes). ``workers`` (default: ``$ATLAS_RENDER_WORKERS`` or the
    CPU count) processes share the work when the site is large."""
    trees = site.trees if out is None else retarget(site.trees, out)
    tdir = templates_dir()
    env = environment(tdir)
    n = _workers(site, workers)
    results = _forked(site, trees, env, tdir, n) if n > 1 else [_write_share(site, trees, env, tdir, 0, 1)]
    written = sum(r[0] for r in results)
    unchanged = sum(r[1] for r in results)
    produced = {rel for r in results for rel in r[2]}
    if site.published is not None:
        site.published.trees = trees.describe()
    kept, extra = write_records(trees, produced, site.published)
    return {"written": written + extra, "unchanged": unchanged, "kept": kept, "removed": 0}


def retarget(trees: Trees, out) -> Trees:
    """``trees`` written to another pages folder (the assets tree follows it unless set apart)."""
    from ..config import SiteConfig

    site = site_config(out, SiteConfig(folder=str(trees.pages), url=trees.site_url, assets_url=trees.assets_url))
    moved = Trees.of(site)
    moved.asset_paths, moved.page_paths = trees.asset_paths, trees.page_paths
    return moved


def tree_files(trees: Trees, rels) -> Dict[str, set]:
    """``rels`` split by the tree that holds each."""
    out: Dict[str, set] = {PAGES: set(), ASSETS: set()}
    for rel in rels:
        out[trees.tree(rel)].add(rel)
    if not trees.external:
        out[PAGES] |= out.pop(ASSETS)
        out[ASSETS] = set()
    return out


def write_records(trees: Trees, produced, published=None, drop=()) -> Tuple[int, int]:
    """Each tree's record of the files the renderer published there: what earlier renders published (still
    on disk, less ``drop``: pruned) and what this render ``produced``; each tree's file list; the record of
    published versions. Returns (files kept from earlier renders, record files written)."""
    kept = written = 0
    folders = [(PAGES, trees.pages)] + ([(ASSETS, trees.assets)] if trees.external else [])
    split = tree_files(trees, produced)
    for tree, folder in folders:
        earlier = {rel for rel in previous_files(folder) - set(RECORDS) - {FILE_LIST} - set(drop)
                   if (folder / rel).is_file()}
        now = split[tree]
        kept += len(earlier - now)
        files = sorted(earlier | now)
        listing = json.dumps(sorted(set(files) | {RECORD, RECORD_COPY, FILE_LIST})).encode()
        outputs = {FILE_LIST: "".join(f"{rel}\n" for rel in files).encode(), RECORD: listing, RECORD_COPY: listing}
        if tree == PAGES and published is not None:
            data = published.to_json()
            outputs.update({published_record.RECORD: data, published_record.RECORD_COPY: data})
        for name, data in outputs.items():
            written += write_if_changed(folder / name, data)
    return kept, written


def previous_files(out: Path) -> set:
    """The files the previous render made: its record, or the record's copy if the record is garbled."""
    for name in (RECORD, RECORD_COPY):
        try:
            listing = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(listing, list) and all(isinstance(x, str) for x in listing):
            return set(listing)
    return set()


def render(plan, store, out=None, workers: Optional[int] = None) -> Dict[str, int]:
    """Gather and write the site of ``plan`` (``out``: a :class:`~atlas.config.SiteConfig` or the pages'
    folder; default: the plan's ``[site]``)."""
    from .context import gather

    return write_site(gather(plan, store, site_config(out, plan.config.site)), workers=workers)
