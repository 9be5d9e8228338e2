"""Phase 2 of the site build: write pages and assets. Folders are created as needed, unchanged bytes are
not rewritten (a re-render with nothing new writes nothing), and files that an earlier render wrote but
this one does not are removed (only those: the writer never deletes files it did not make).

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
from typing import Dict, Iterable, List, Optional, Tuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..atomic import atomic_write, is_int, is_temp, sha256, writer_alive
from ..errors import AtlasError
from .context import SiteData
from .filters import FILTERS, fmt as _fmt, sparkline_points  # noqa: F401  (re-exported)
from .paths import MANIFEST, root_prefix

log = logging.getLogger(__name__)

RECORD = ".atlas-files.json"
#: A second copy of the record, read when the first is garbled, so that stale files are still removed.
RECORD_COPY = ".atlas-files.copy.json"
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
    atomic_write(path, data, sync=False)  # a site can always be written again: no fsync per file
    return True


def static_files(tdir: Path) -> Dict[str, Path]:
    root = tdir / "static"
    return {f"static/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*")) if p.is_file()}


def _url(root: str):
    """``url(path)`` for templates: the site-root-relative ``path`` as a link relative to the page."""

    def url(to: str) -> str:
        if to.startswith("/") or "://" in to:
            raise AtlasError(f"url() takes a site-relative path, got {to!r}")
        return root + to

    return url


#: what the file record keeps of each file: [size in bytes] as written, and for derived images (kept
#: between renders without being rebuilt) [size, first 16 hex digits of its SHA-256]; None: claimed before
#: it was written, or a record of an older atlas
Entry = Optional[list]
Produced = Dict[str, Entry]  # site-relative path -> entry
DERIVED = (".webp", "-masked.png")  # assets reused while fresh (see _fresh), not rebuilt on every render


def _entry(rel: str, data: bytes) -> Entry:
    return [len(data), sha256(data)[:16]] if rel.endswith(DERIVED) else [len(data)]


def _write_share(site: SiteData, out: Path, env: Environment, tdir: Path, share: int, shares: int,
                 previous: Optional[Dict[str, Entry]] = None) -> Tuple[int, int, Produced]:
    """Write every ``shares``-th page and asset starting at ``share``; (written, unchanged, produced).
    ``previous``: the previous render's record, which tells whether a derived image on disk is still the
    one this renderer wrote."""
    written = unchanged = 0
    produced: Produced = {}
    made: set = set()
    previous = previous or {}

    def emit(rel: str, data: bytes) -> None:
        nonlocal written, unchanged
        if write_if_changed(out / rel, data, made):
            written += 1
        else:
            unchanged += 1
        produced[rel] = _entry(rel, data)

    if share == 0:
        for rel, src in static_files(tdir).items():
            emit(rel, src.read_bytes())
        emit(MANIFEST, json.dumps(site.manifest, separators=(",", ":"), sort_keys=True, default=str).encode())
    for rel, produce in list(site.assets.items())[share::shares]:
        target = out / rel
        if rel.endswith(DERIVED) and _fresh(target, produce, previous.get(rel)):
            produced[rel] = previous[rel]
            unchanged += 1
            continue
        emit(rel, produce())
    for page in site.pages[share::shares]:
        root = root_prefix(page.path)
        html = env.get_template(page.template).render(page=page, url=_url(root), root=root, site_title=site.title,
                                                      **page.context)
        emit(page.path, html.encode("utf-8"))
    return written, unchanged, produced


def _workers(site: SiteData, workers: Optional[int]) -> int:
    if workers is None:
        workers = int(os.environ.get("ATLAS_RENDER_WORKERS", os.cpu_count() or 1))
    if len(site.pages) + len(site.assets) < PARALLEL_MIN_ITEMS or not hasattr(os, "fork"):
        return 1
    return max(1, min(workers, 8))


def _forked(site: SiteData, out: Path, env: Environment, tdir: Path, n: int,
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


def write_site(site: SiteData, out: str | Path, workers: Optional[int] = None) -> Dict[str, int]:
    """Write every page and asset of ``site`` under ``out``; returns counts of written/unchanged/removed
    files. ``workers`` (default: ``$ATLAS_RENDER_WORKERS`` or the CPU count) processes share the work
    when the site is large."""
    out = Path(out)
    check_site_folder(out)
    _clean_temp(out)
    tdir = templates_dir()
    env = environment(tdir)
    previous = previous_files(out)
    planned = set(static_files(tdir)) | {MANIFEST} | set(site.assets) | {p.path for p in site.pages}
    if not (out / RECORD).is_file() or not planned <= set(previous):
        # claim the files before they appear: a render killed from here on leaves a record of them
        _write_record(out, {**{rel: None for rel in planned}, **previous}, names=(RECORD,))
    n = _workers(site, workers)
    results = (_forked(site, out, env, tdir, n, previous) if n > 1
               else [_write_share(site, out, env, tdir, 0, 1, previous)])
    written = sum(r[0] for r in results)
    unchanged = sum(r[1] for r in results)
    produced: Produced = {rel: entry for r in results for rel, entry in r[2].items()}
    removed = _remove_stale(out, previous, produced)
    changed = _write_record(out, produced, names=(RECORD, RECORD_COPY))
    written += changed
    unchanged += 2 - changed
    return {"written": written, "unchanged": unchanged, "removed": removed}


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


def _remove_stale(out: Path, previous: Dict[str, Entry], produced: Iterable[str]) -> int:
    removed = 0
    root = out.resolve()
    for rel in set(previous) - set(produced) - {RECORD, RECORD_COPY}:
        p = (out / rel).resolve()
        if root in p.parents and p.is_file():
            p.unlink()
            removed += 1
    return removed


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


def render(plan, store, out, workers: Optional[int] = None) -> Dict[str, int]:
    """Gather the site of ``plan`` from ``store`` and write it under ``out``. Refused (one line, nothing
    written) when ``out`` is a folder atlas did not write, or when ``store`` holds no finished job while
    ``out`` shows figures of an earlier render (a mistyped ``--store`` would otherwise empty the site)."""
    from .context import gather

    out = Path(out)
    check_site_folder(out)
    if store.is_empty() and shown_figures(out):
        raise AtlasError(f"the store {str(store.root)!r} holds no finished job, but the site {str(out)!r} shows "
                         f"{shown_figures(out)} figure(s) of an earlier render: check --store (rendering would "
                         f"remove them), or render into a new --site")
    if getattr(plan, "unknown_data", None):
        if shown_figures(out):
            raise AtlasError(f"the data folder {plan.unknown_data!r} is not here and the store has no record of its "
                             f"contents, so its jobs cannot be found in the store: render where the folder is, or "
                             f"after an `atlas run` with this store")
        log.warning("the data folder %r is not here and the store has no record of its contents: the jobs that use "
                    "it are shown as pending", plan.unknown_data)
    return write_site(gather(plan, store), out, workers=workers)
