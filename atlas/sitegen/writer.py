"""Phase 2 of the site build: write pages and assets. Folders are created as needed, unchanged bytes are
not rewritten (a re-render with nothing new writes nothing), and files that an earlier render wrote but
this one does not are removed (only those: the writer never deletes files it did not make)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..errors import AtlasError
from .context import SiteData
from .paths import relative

RECORD = ".atlas-files.json"


def templates_dir() -> Path:
    """The top-level ``templates/`` folder (``$ATLAS_TEMPLATES`` overrides)."""
    env = os.environ.get("ATLAS_TEMPLATES")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "templates"
    if not (path / "base.html").is_file():
        raise AtlasError(f"templates not found at {path}; run atlas from its source checkout or set ATLAS_TEMPLATES")
    return path


def environment(path: Path) -> Environment:
    env = Environment(loader=FileSystemLoader(str(path)), autoescape=select_autoescape(["html", "xml"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["sparkline"] = sparkline_points
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    return env


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def sparkline_points(values, width: float = 200, height: float = 40) -> str:
    """SVG polyline points for ``values`` scaled into a ``width`` x ``height`` box."""
    vals = [float(v) for v in values if v is not None]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    step = width / (len(vals) - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in enumerate(vals))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly these bytes; returns True if written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def static_files(tdir: Path) -> Dict[str, Path]:
    root = tdir / "static"
    return {f"static/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*")) if p.is_file()}


def write_site(site: SiteData, out: str | Path) -> Dict[str, int]:
    """Write every page and asset of ``site`` under ``out``; returns counts of written/unchanged files."""
    out = Path(out)
    tdir = templates_dir()
    env = environment(tdir)
    written = unchanged = 0
    produced = set()

    def emit(rel: str, data: bytes) -> None:
        nonlocal written, unchanged
        produced.add(rel)
        if write_if_changed(out / rel, data):
            written += 1
        else:
            unchanged += 1

    for rel, src in static_files(tdir).items():
        emit(rel, src.read_bytes())
    for rel, produce in site.assets.items():
        target = out / rel
        if target.exists() and rel.endswith((".webp", "-masked.png")) and _fresh(target, produce):
            produced.add(rel)
            unchanged += 1
            continue
        emit(rel, produce())
    for page in site.pages:
        tmpl = env.get_template(page.template)
        url = lambda to, _from=page.path: relative(_from, to)  # noqa: E731
        html = tmpl.render(page=page, url=url, root=relative(page.path, "index.html")[: -len("index.html")],
                           site_title=site.title, **page.context)
        emit(page.path, html.encode("utf-8"))
    emit("manifest.json", json.dumps(site.manifest, indent=1, sort_keys=True, default=str).encode())
    removed = _remove_stale(out, produced)
    emit(RECORD, json.dumps(sorted(produced)).encode())
    return {"written": written, "unchanged": unchanged, "removed": removed}


def _fresh(target: Path, produce) -> bool:
    """A derived asset (thumbnail, masked view) is fresh if it is newer than its stored source."""
    src = getattr(produce, "args", ())
    try:
        return all(target.stat().st_mtime >= Path(s).stat().st_mtime for s in src)
    except (OSError, TypeError):
        return False


def _remove_stale(out: Path, produced: Iterable[str]) -> int:
    record = out / RECORD
    try:
        previous = set(json.loads(record.read_text()))
    except (OSError, ValueError):
        return 0
    removed = 0
    for rel in previous - set(produced):
        p = (out / rel).resolve()
        if out.resolve() in p.parents and p.is_file():
            p.unlink()
            removed += 1
    return removed


def render(plan, store, out) -> Dict[str, int]:
    from .context import gather

    return write_site(gather(plan, store), out)
