"""Phase 2 of the site build: write pages and assets into their trees (:mod:`.trees`). Folders are created
as needed, unchanged bytes are not rewritten (a re-render with nothing new writes nothing), and a versioned
file (an image, a versioned page) is written once and never changed.

Nothing that an earlier render published is removed: the writer's record of its files (``.atlas-files.json``
in each tree) only grows, and the files a render no longer makes (earlier versions, pages of targets no
longer planned) stay, so every URL a site published keeps resolving. Only ``atlas prune``
(:mod:`.prune`) removes files, and only files of that record. Each tree also gets its list of published
files for upload tools (:data:`~atlas.sitegen.trees.FILE_LIST`).

The renderer owns only what it wrote. The site's file record (``.atlas-files.json`` and its copy) lists
every file a render wrote with its size; it is written *before* new files appear (so a render killed at
any moment leaves a record of everything of atlas's on disk) and again after. A folder that holds files
but no record is not an atlas site: :func:`check_site_folder` refuses to write into it (the user's own
``index.html`` is never overwritten), and :func:`render` refuses a store without any finished job over a
site that shows figures (a mistyped ``--store`` must not empty a published site). A derived image
(thumbnail, masked view) is kept only while it is newer than its source *and* has the size recorded when
it was written: a zero-byte or truncated thumbnail is written again.

Large sites are written by several forked worker processes (each renders a share of the pages and
assets; the gathered data is inherited, not pickled); small ones in-process.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..atomic import atomic_copy, atomic_write, is_int, is_temp, sha256, writer_alive
from ..errors import AtlasError
from . import published as published_record
from .assets import source_file
from .context import SiteData
from .entries import paused_gc, render_workers
from .filters import FILTERS, fmt as _fmt, sparkline_points  # noqa: F401  (re-exported)
from .trees import ASSETS, FILE_LIST, PAGES, Trees, site_config

log = logging.getLogger(__name__)

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
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_printable,
                      auto_reload=False)  # one render: a template is read once, not stat-ed for every page
    env.filters.update(FILTERS)
    return env


def _ensure_folder(parent: Path, made: Optional[set]) -> None:
    """Create ``parent`` unless ``made`` (folders known to exist) already has it."""
    if made is None or parent not in made:
        parent.mkdir(parents=True, exist_ok=True)
        if made is not None:
            made.add(parent)


def write_if_changed(path: Path, data: bytes, made: Optional[set] = None) -> bool:
    """Write ``data`` unless the file already holds exactly these bytes; returns True if written.
    ``made`` (optional) remembers folders known to exist, to skip creating them again."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    _ensure_folder(path.parent, made)
    atomic_write(path, data, sync=False)  # a site can always be written again: no fsync per file
    return True


def copy_if_changed(src: Path, path: Path, made: Optional[set] = None) -> Tuple[bool, int]:
    """Copy the file ``src`` to ``path`` (:func:`atlas.atomic.atomic_copy`: an independent file, copied by the
    kernel) unless ``path`` already holds exactly its bytes; (written, size in bytes). ``made`` as in
    :func:`write_if_changed`."""
    size = os.stat(src).st_size
    try:
        if path.stat().st_size == size and path.read_bytes() == Path(src).read_bytes():
            return False, size
    except FileNotFoundError:
        pass
    _ensure_folder(path.parent, made)
    return True, atomic_copy(src, path)


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


#: what the file record keeps of each file: [size in bytes] as written, and for derived images (kept
#: between renders without being rebuilt) [size, first 16 hex digits of its SHA-256]; None: claimed before
#: it was written, or a record of an older atlas
Entry = Optional[list]
Produced = Dict[str, Entry]  # site-relative path -> entry
DERIVED = (".webp", "-masked.png")  # assets reused while fresh (see _fresh), not rebuilt on every render


def _entry(rel: str, data: bytes) -> Entry:
    return [len(data), sha256(data)[:16]] if rel.endswith(DERIVED) else [len(data)]


def _present(path: Path, produce=None, entry: Entry = None) -> bool:
    """A versioned file is in place: it exists, is not empty, has the size the record gives it (a truncated
    copy is made again) and, copied from the store, the size of its source - with the same bytes."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if entry and size != entry[0]:
        return False
    if entry and len(entry) == 2:  # a derived image: the very file this renderer wrote (a small read)
        try:
            return sha256(path.read_bytes())[:16] == entry[1]
        except OSError:
            return False
    src = source_file(produce) if produce is not None else None
    if src is not None:
        try:
            return size == src.stat().st_size
        except OSError:
            return True  # the source is gone: the published file stays as it is
    return size > 0


def _write_share(site: SiteData, trees: Trees, env: Environment, tdir: Path, share: int, shares: int,
                 previous: Optional[Dict[str, Entry]] = None) -> Tuple[int, int, Produced]:
    """Write every ``shares``-th page and asset starting at ``share``; (written, unchanged, produced).
    ``previous``: the previous render's record, which tells whether a file on disk is still the one this
    renderer wrote."""
    written = unchanged = 0
    produced: Produced = {}
    made: set = set()
    previous = previous or {}

    def emit(rel: str, data: bytes) -> None:
        nonlocal written, unchanged
        if write_if_changed(trees.file(rel), data, made):
            written += 1
        else:
            unchanged += 1
        produced[rel] = _entry(rel, data)

    def copied(rel: str, src: Path) -> None:  # a store file: copied without passing through Python
        nonlocal written, unchanged
        changed, size = copy_if_changed(src, trees.file(rel), made)
        written += changed
        unchanged += not changed
        produced[rel] = [size]

    def kept(rel: str, produce=None) -> bool:
        nonlocal unchanged
        entry = previous.get(rel)
        if rel in site.immutable and _present(trees.file(rel), produce, entry):
            if not entry:  # claimed by a render that was killed before it recorded the file
                entry = _entry(rel, trees.file(rel).read_bytes())
            produced[rel] = entry
            unchanged += 1
            return True
        if produce is not None and rel.endswith(DERIVED) and _fresh(trees.file(rel), produce, entry):
            produced[rel] = entry
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
            src = source_file(produce)
            if src is not None and not rel.endswith(DERIVED):  # (a derived file's entry needs its checksum)
                copied(rel, src)
            else:
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
    if len(site.pages) + len(site.assets) < PARALLEL_MIN_ITEMS or not hasattr(os, "fork"):
        return 1
    return render_workers(workers)


def _forked(site: SiteData, out: Trees, env: Environment, tdir: Path, n: int,
            previous: Dict[str, Entry]) -> List[Tuple[int, int, Produced]]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    results, procs = [], []
    for share in range(1, n):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(send, site, out, env, tdir, share, n, previous), daemon=True)
        p.start()
        send.close()
        procs.append((p, recv))
    results.append(_write_share(site, out, env, tdir, 0, n, previous))
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


def _child(send, site, out, env, tdir, share, n, previous) -> None:
    try:
        send.send(_write_share(site, out, env, tdir, share, n, previous))
    except OSError as exc:
        send.send({"errno": exc.errno, "strerror": exc.strerror, "filename": exc.filename})
    except BaseException as exc:  # reported to the parent, which raises
        send.send(f"{type(exc).__name__}: {exc}")
    finally:
        send.close()


def _folders(trees: Trees) -> List[Tuple[str, Path]]:
    return [(PAGES, trees.pages)] + ([(ASSETS, trees.assets)] if trees.external else [])


def write_site(site: SiteData, out=None, workers: Optional[int] = None) -> Dict[str, int]:
    """Write every page and asset of ``site`` into its trees (``out``: another pages folder to write to);
    returns counts of files written, unchanged, kept (published earlier, not made by this render) and
    removed (always 0: only ``atlas prune`` removes). ``workers`` (default: ``$ATLAS_RENDER_WORKERS`` or the
    CPU count) processes share the work when the site is large."""
    trees = site.trees if out is None else retarget(site.trees, out)
    for _, folder in _folders(trees):
        check_site_folder(folder)
        _clean_temp(folder)
    tdir = templates_dir()
    env = environment(tdir)
    planned = tree_files(trees, set(static_files(tdir)) | set(site.page_files) | set(site.assets)
                         | {p.path for p in site.pages})
    previous: Dict[str, Entry] = {}
    for tree, folder in _folders(trees):
        before = previous_files(folder)
        previous.update(before)
        if not (folder / RECORD).is_file() or not planned[tree] <= set(before):
            # claim the files before they appear: a render killed from here on leaves a record of them
            _write_record(folder, {**{rel: None for rel in planned[tree]}, **before}, names=(RECORD,))
    n = _workers(site, workers)
    with paused_gc(freeze=n > 1):
        results = (_forked(site, trees, env, tdir, n, previous) if n > 1
                   else [_write_share(site, trees, env, tdir, 0, 1, previous)])
    written = sum(r[0] for r in results)
    unchanged = sum(r[1] for r in results)
    produced: Produced = {rel: entry for r in results for rel, entry in r[2].items()}
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
    """Each tree's record of the files the renderer published there (``{path: entry}``): what earlier
    renders published (still on disk, less ``drop``: pruned) and what this render ``produced`` (path ->
    entry); each tree's file list; the record of published versions. Returns (files kept from earlier
    renders, record files written)."""
    kept = written = 0
    split = tree_files(trees, produced)
    skip = set(RECORDS) | {FILE_LIST} | set(drop)
    for tree, folder in _folders(trees):
        earlier = {rel: entry for rel, entry in previous_files(folder).items()
                   if rel not in skip and (folder / rel).is_file()}
        now = {rel: produced[rel] for rel in split[tree]}
        kept += len(set(earlier) - set(now))
        files = {**earlier, **{rel: entry if entry is not None else earlier.get(rel) for rel, entry in now.items()}}
        outputs = {FILE_LIST: "".join(f"{rel}\n" for rel in sorted(files)).encode()}
        if tree == PAGES and published is not None:
            data = published.to_json()
            outputs.update({published_record.RECORD: data, published_record.RECORD_COPY: data})
        for name, data in outputs.items():
            written += write_if_changed(folder / name, data)
        written += _write_record(folder, files, names=(RECORD, RECORD_COPY))
    return kept, written


def _clean_temp(out: Path) -> None:
    """Remove temp files that killed writers left in the site (their process is gone)."""
    for folder, _, names in os.walk(out):
        for name in names:
            if is_temp(name) and not writer_alive(name):
                Path(folder, name).unlink(missing_ok=True)


def _record_bytes(files: Dict[str, Entry]) -> bytes:
    """The record as JSON, one file per line: ``{"atlas_site_record": 1, "files": {path: entry}}``."""
    lines = ",\n".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(files.items()))
    return ('{"atlas_site_record":1,"files":{\n' + lines + "\n}}\n").encode()


def _write_record(out: Path, files: Dict[str, Entry], names: Tuple[str, ...]) -> int:
    """Write the file record under ``names``; returns how many of them changed."""
    data = _record_bytes({k: v for k, v in files.items() if k not in (RECORD, RECORD_COPY)})
    return sum(write_if_changed(out / name, data) for name in names)


def _fresh(target: Path, produce, entry: Entry) -> bool:
    """A derived asset (thumbnail, masked view) is fresh if it is newer than its stored source and is the
    very file this renderer wrote (the size and checksum it recorded; a small file read, much cheaper than
    decoding and encoding the image again): a truncated, zeroed or altered file is written again."""
    src = getattr(produce, "args", ())
    try:
        st = target.stat()
        if not (bool(src) and entry is not None and len(entry) == 2 and st.st_size == entry[0] > 0
                and all(st.st_mtime >= Path(s).stat().st_mtime for s in src)):
            return False
        return sha256(target.read_bytes())[:16] == entry[1]
    except (OSError, TypeError):
        return False


def _entry_ok(v) -> bool:
    return v is None or (isinstance(v, list) and len(v) in (1, 2) and is_int(v[0]) and v[0] >= 0
                         and (len(v) == 1 or isinstance(v[1], str)))


def _parse_record(listing) -> Optional[Dict[str, Entry]]:
    """The files of a record ({path: entry}), or None if it is not one. Records written before sizes were
    kept are plain lists of paths (which named the record itself)."""
    if isinstance(listing, list) and RECORD in listing and all(isinstance(x, str) for x in listing):
        return {x: None for x in listing if x not in (RECORD, RECORD_COPY)}  # as atlas wrote it before sizes
    if isinstance(listing, dict) and isinstance(listing.get("files"), dict):
        files = listing["files"]
        if all(isinstance(k, str) and _entry_ok(v) for k, v in files.items()):
            return dict(files)
    return None


def previous_files(out: Path) -> Dict[str, Entry]:
    """The files the previous render made, with their sizes: its record, or the record's copy if the
    record is damaged (not JSON, not UTF-8, or of another shape)."""
    for name in (RECORD, RECORD_COPY):
        try:
            got = _parse_record(json.loads((out / name).read_bytes().decode("utf-8")))
        except (OSError, ValueError, RecursionError):
            continue
        if got is not None:
            return got
    return {}


def check_site_folder(out: Path) -> None:
    """Refuse to write a site into ``out`` unless it is new, empty (but for hidden entries such as ``.git``),
    or an atlas site (it has the file record): atlas never overwrites files it did not write."""
    if str(out).strip() in ("", "."):
        if not (Path(".") / RECORD).is_file() and not (Path(".") / RECORD_COPY).is_file():
            raise AtlasError("--site names the current folder, which is not an atlas site: give the site a "
                             "folder of its own, e.g. --site site")
    if out.exists() and not out.is_dir():
        raise AtlasError(f"--site {str(out)!r} is a file, not a folder: choose a folder for the website")
    if not out.is_dir() or (out / RECORD).exists() or (out / RECORD_COPY).exists():
        return
    try:  # hidden entries (a .git of a GitHub Pages checkout, .nojekyll) are never written: they do not count
        mine = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise AtlasError(f"cannot read the site folder {str(out)!r}: {exc.strerror or exc}") from None
    if mine:
        raise AtlasError(f"site folder {str(out)!r} holds files that atlas did not write (e.g. {mine[0]!r}) and no "
                         f"atlas file record: give --site a new or empty folder (atlas never overwrites or "
                         f"removes files it did not write)")


def shown_figures(out: Path) -> int:
    """How many figure images (``<model>/img/...``) the previous render of ``out`` wrote."""
    return sum(1 for rel in previous_files(out) if "/img/" in rel and rel.endswith(".png") and not rel.endswith(
        ("-alpha.png", "-masked.png")))


def render(plan, store, out=None, workers: Optional[int] = None) -> Dict[str, int]:
    """Gather and write the site of ``plan`` (``out``: a :class:`~atlas.config.SiteConfig` or the pages'
    folder; default: the plan's ``[site]``). Refused (one line, nothing written) when a folder of the site
    holds files atlas did not write, or when ``store`` holds no finished job while the site shows figures of
    an earlier render (a mistyped ``--store`` would otherwise leave it showing nothing new)."""
    from .context import gather

    site = site_config(out, plan.config.site)
    trees = Trees.of(site)
    for _, folder in _folders(trees):
        check_site_folder(folder)
    figures = sum(shown_figures(folder) for _, folder in _folders(trees))
    if store.is_empty() and figures:
        raise AtlasError(f"the store {str(store.root)!r} holds no finished job, but the site {str(trees.pages)!r} "
                         f"shows {figures} figure(s) of an earlier render: check --store, or render into a new --site")
    if getattr(plan, "unknown_data", None):
        if figures:
            raise AtlasError(f"the data folder {plan.unknown_data!r} is not here and the store has no record of its "
                             f"contents, so its jobs cannot be found in the store: render where the folder is, or "
                             f"after an `atlas run` with this store")
        log.warning("the data folder %r is not here and the store has no record of its contents: the jobs that use "
                    "it are shown as pending", plan.unknown_data)
    return write_site(gather(plan, store, site), workers=workers)
