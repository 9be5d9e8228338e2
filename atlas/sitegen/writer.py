"""Phase 2 of the site build: write pages and assets. Folders are created as needed, unchanged bytes are
not rewritten (a re-render with nothing new writes nothing), and files that an earlier render wrote but
this one does not are removed (only those: the writer never deletes files it did not make).

Large sites are written by several forked worker processes (each renders a share of the pages and
assets; the gathered data is inherited, not pickled); small ones in-process.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..errors import AtlasError
from .context import SiteData
from .filters import FILTERS, fmt as _fmt, sparkline_points  # noqa: F401  (re-exported)
from .paths import MANIFEST, root_prefix

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


def _url(root: str):
    """``url(path)`` for templates: the site-root-relative ``path`` as a link relative to the page."""

    def url(to: str) -> str:
        if to.startswith("/") or "://" in to:
            raise AtlasError(f"url() takes a site-relative path, got {to!r}")
        return root + to

    return url


def _write_share(site: SiteData, out: Path, env: Environment, tdir: Path, share: int, shares: int) -> Tuple[int, int, List[str]]:
    """Write every ``shares``-th page and asset starting at ``share``; (written, unchanged, produced)."""
    written = unchanged = 0
    produced: List[str] = []
    made: set = set()

    def emit(rel: str, data: bytes) -> None:
        nonlocal written, unchanged
        produced.append(rel)
        if write_if_changed(out / rel, data, made):
            written += 1
        else:
            unchanged += 1

    if share == 0:
        for rel, src in static_files(tdir).items():
            emit(rel, src.read_bytes())
        emit(MANIFEST, json.dumps(site.manifest, separators=(",", ":"), sort_keys=True, default=str).encode())
    for rel, produce in list(site.assets.items())[share::shares]:
        target = out / rel
        if rel.endswith((".webp", "-masked.png")) and _fresh(target, produce):
            produced.append(rel)
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


def _forked(site: SiteData, out: Path, env: Environment, tdir: Path, n: int) -> List[Tuple[int, int, List[str]]]:
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


def write_site(site: SiteData, out: str | Path, workers: Optional[int] = None) -> Dict[str, int]:
    """Write every page and asset of ``site`` under ``out``; returns counts of written/unchanged/removed
    files. ``workers`` (default: ``$ATLAS_RENDER_WORKERS`` or the CPU count) processes share the work
    when the site is large."""
    out = Path(out)
    tdir = templates_dir()
    env = environment(tdir)
    n = _workers(site, workers)
    results = _forked(site, out, env, tdir, n) if n > 1 else [_write_share(site, out, env, tdir, 0, 1)]
    written = sum(r[0] for r in results)
    unchanged = sum(r[1] for r in results)
    produced = {rel for r in results for rel in r[2]}
    removed = _remove_stale(out, produced)
    listing = json.dumps(sorted(produced | {RECORD, RECORD_COPY})).encode()
    for name in (RECORD, RECORD_COPY):
        if write_if_changed(out / name, listing):
            written += 1
        else:
            unchanged += 1
    return {"written": written, "unchanged": unchanged, "removed": removed}


def _fresh(target: Path, produce) -> bool:
    """A derived asset (thumbnail, masked view) is fresh if it is newer than its stored source."""
    src = getattr(produce, "args", ())
    try:
        t = target.stat().st_mtime
        return bool(src) and all(t >= Path(s).stat().st_mtime for s in src)
    except (OSError, TypeError):
        return False


def _previous_files(out: Path) -> set:
    """The files the previous render made: its record, or the record's copy if the record is garbled."""
    for name in (RECORD, RECORD_COPY):
        try:
            listing = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(listing, list) and all(isinstance(x, str) for x in listing):
            return set(listing)
    return set()


def _remove_stale(out: Path, produced: Iterable[str]) -> int:
    removed = 0
    for rel in _previous_files(out) - set(produced) - {RECORD, RECORD_COPY}:
        p = (out / rel).resolve()
        if out.resolve() in p.parents and p.is_file():
            p.unlink()
            removed += 1
    return removed


def render(plan, store, out, workers: Optional[int] = None) -> Dict[str, int]:
    from .context import gather

    return write_site(gather(plan, store), out, workers=workers)
