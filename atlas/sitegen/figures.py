"""Figures as the site shows them: the figure of each planned job, the files of its version (named by the
job key, so a later render with other settings adds files and changes none) and what made it (for the list
of earlier versions on its plain permalink)."""
from __future__ import annotations

import dataclasses
import logging
import os
from functools import partial
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from ..config import stable_hash
from ..image_checks import degenerate_reason, image_checks
from . import assets, paths
from .entries import Figure, Page, SiteBuild, VersionInfo, render_workers

if TYPE_CHECKING:
    from ..pipeline.store import Store


def _config_info(job, cache: Dict[Any, Any]) -> tuple:
    """(settings dict, settings hash) of a job's method config, computed once per config object."""
    got = cache.get(id(job.config))
    if got is None or got[0] is not job.config:
        settings = dataclasses.asdict(job.config)
        got = cache[id(job.config)] = (job.config, settings, stable_hash(settings, length=12))
    return got[1], got[2]


#: below this many jobs the metadata are read in one process (forking costs more than it saves)
PARALLEL_MIN_JOBS = 2000
_UNREAD = object()


def read_metas(store: "Store", keys: Sequence[str], workers: Optional[int] = None,
               min_jobs: int = PARALLEL_MIN_JOBS) -> Dict[str, Optional[dict]]:
    """``store.meta(key, verify=True)`` of every key (None: missing or damaged), read by ``workers`` processes
    (default: ``$ATLAS_RENDER_WORKERS`` or the CPU count; forked, each reads a share and sends back what it
    read, the warnings it logged and the folders it stamped as verified, :class:`atlas.pipeline.store.Stamps`).
    Reading and checking every job's record is half of a site's gather. A share whose process fails is read
    here."""
    keys = list(keys)
    n = render_workers(workers)
    import multiprocessing as mp

    if n == 1 or len(keys) < max(min_jobs, 2) or not hasattr(os, "fork") or mp.current_process().daemon:
        return {k: store.meta(k, verify=True) for k in keys}

    ctx = mp.get_context("fork")
    step = -(-len(keys) // n)
    shares = [keys[i:i + step] for i in range(0, len(keys), step)]
    procs = []
    for share in shares[1:]:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_read_share, args=(send, store, share), daemon=True)
        proc.start()
        send.close()
        procs.append((proc, recv, share))
    out = {k: store.meta(k, verify=True) for k in shares[0]}
    for proc, recv, share in procs:
        try:
            got = recv.recv()
        except (EOFError, OSError):
            got = None
        proc.join()
        if not isinstance(got, tuple):
            out.update({k: store.meta(k, verify=True) for k in share})
            continue
        metas, stamped, records = got
        for record in records:  # as if logged here (handlers, pytest's caplog)
            logging.getLogger(record.name).handle(record)
        if store.stamps is not None:
            store.stamps.new.update(stamped)
        out.update(metas)
    return out


class _Kept(logging.Handler):
    def __init__(self, records: List[logging.LogRecord]):
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None  # what it says, picklable
        record.exc_info = record.exc_text = None
        self.records.append(record)


def _read_share(send, store: "Store", keys: List[str]) -> None:
    """A forked reader: the metadata of ``keys``, its warnings and its stamps, sent to the parent."""
    records: List[logging.LogRecord] = []
    logging.getLogger().handlers = [_Kept(records)]  # this process's copy of the handlers: the parent logs them
    try:
        metas = {k: store.meta(k, verify=True) for k in keys}
        stamped = dict(store.stamps.new) if store.stamps is not None else {}
        send.send((metas, stamped, records))
    except BaseException:  # the parent reads this share itself
        send.send(None)
    finally:
        send.close()


def made_by(fig: Figure, job) -> Dict[str, Any]:
    """What made a figure besides its model, target and seed (which its permalink names): the method's
    settings, its code version, the data settings, the precision and the batch (both part of a job's
    key). Earlier versions list how theirs differed."""
    out = {**fig.settings, "method code version": job.version, "data": dict(job.data)}
    if getattr(job, "precision", None):
        out["precision"] = job.precision
    if getattr(job, "batch", 0) > 1 and not hasattr(job.config, "batch_size"):  # as Job.spec records it
        out["batch"] = job.batch
    return out


def figure(store: "Store", job, class_names, title: str, configs: Dict[Any, Any], mark: bool = False,
           meta: Any = _UNREAD) -> Figure:
    """The figure of ``job``: done (its files are the job key's version), failed (with the reason) or
    pending. ``meta``: the job's verified metadata if read already (:func:`read_metas`)."""
    t = job.target
    label = f"{class_names[t.class_id]} ({t.class_id})" if t.class_id is not None else t.slug()
    if t.kind == "concept":
        label += f" · concept {t.concept + 1}"
    fig = Figure(
        key=job.key, model=job.model, method=job.method, method_title=title, target=t,
        seed=job.seed, status="pending", page=paths.figure_page(job.model, job.method, t, job.seed),
        title=f"{title} · {label} · seed {job.seed}",
        model_page=paths.model_page(job.model),
        class_page=paths.class_page(job.model, t.class_id) if t.class_id is not None else None,
        label=label, precision=getattr(job, "precision", ""),
    )
    fig.settings, fig.config_hash = _config_info(job, configs)
    if meta is _UNREAD:
        meta = store.meta(job.key, verify=True)  # a corrupt job shows as pending, never as a broken image
    withheld = meta is not None and degenerate(store, job, meta)
    if withheld and not mark:  # never shown as a result: the page gives the reason instead (atlas.image_checks)
        fig.status, fig.meta, fig.reason = "failed", meta, f"degenerate image withheld ({withheld})"
    elif meta is not None:
        fig.degenerate = withheld or ""  # [site] degenerate = "mark": shown under a warning
        fig.status, fig.meta, fig.version = "done", meta, job.key
        stem = paths.figure_stem(job.model, job.method, t, job.seed, job.key)
        f = paths.FIGURE_FILES
        fig.png, fig.alpha, fig.thumb, fig.view = (stem + f["png"], stem + f["alpha"], stem + f["thumb"],
                                                   stem + f["view"])
        fig.version_page = paths.versioned(fig.page, job.key)
        fig.size = tuple(meta.get("size", ()))
    else:
        failure = store.failure(job.key)
        if failure is not None:
            fig.status = "failed"
            step = failure.get("step")
            fig.reason = failure.get("reason", "failed") + (f" (step {step})" if step is not None else "")
    return fig


def degenerate(store: "Store", job, meta: Dict[str, Any]) -> Optional[str]:
    """Why a stored image is degenerate (:func:`atlas.image_checks.degenerate_reason`), or None; a store
    written before the checks were recorded has them measured on its PNG."""
    checks = meta.get("checks")
    if not isinstance(checks, dict):
        try:
            checks = image_checks(assets.read_png(store.job_dir(job.key) / "image.png"))
        except (OSError, ValueError):
            return None
    return degenerate_reason(checks, meta.get("scores"), job.target.kind)


def add_figure(b: SiteBuild, fig: Figure, job) -> None:
    """The figure's permalink (and, when it is done, its versioned page and files) into the build."""
    page = Page(fig.page, "figure.html", {"figure": fig})
    if fig.status != "done":
        b.pages.append(page)
        b.versions.setdefault(fig.page, VersionInfo(fig.page)).settings = _flat(made_by(fig, job))
        return
    d, key = b.store.job_dir(fig.key), fig.key
    b.add_asset(fig.png, partial(assets.file_bytes, d / "image.png"), version=key)
    b.add_asset(fig.alpha, partial(assets.file_bytes, d / "alpha.png"), version=key)
    b.add_asset(fig.thumb, assets.Derived(b.store, key, fig.meta, "thumb.webp"), version=key)
    b.add_asset(fig.view, assets.Derived(b.store, key, fig.meta, "view.webp"), version=key)
    stem = fig.png[:-4]
    for extra in fig.meta.get("files", {}):
        if extra not in ("image.png", "alpha.png"):
            b.add_asset(f"{stem}-{extra}", partial(assets.file_bytes, d / extra), version=key)
    b.publish_page(page, made_by(fig, job), version=key)


def _flat(settings):
    from .published import flat_settings

    return flat_settings(settings)
