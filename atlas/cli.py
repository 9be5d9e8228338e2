"""Command line: ``atlas build | plan | run | metrics | render | check | prune | serve | submit | status``.

Every command takes ``--preset`` (default ``demo``) or ``--config FILE.toml``. Every failure prints one
line ``atlas: error: ...`` naming the bad value or file and the fix, and exits with a status of
:data:`atlas.errors.EXIT_CODES` (2: bad input, before anything is written); ``atlas --debug`` (or
``ATLAS_DEBUG=1``) adds the traceback.
"""
from __future__ import annotations

import functools
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import click

from .config import resolve_config
from .errors import AtlasError


def config_options(fn):
    @click.option("--preset", default=None, help="Preset: demo (default), paper or lens.")
    @click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
                  help="TOML configuration file (may start from a preset with preset = \"...\").")
    @click.option("--store", default=None, help="Artifact store folder (default: store).")
    @click.option("--site", default=None, help="Output folder of the website's pages (default: site).")
    @click.option("--assets-url", default=None, metavar="URL",
                  help="Publish the images and downloads apart, at URL (object storage, a CDN); needs --site-url.")
    @click.option("--site-url", default=None, metavar="URL", help="The address the pages are published at.")
    @click.option("--data", default=None,
                  help="Image folder <data>/<class>/*.jpg (class folders named like the labels, or ImageNet "
                       "wnids), or 'bundled'.")
    @click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: auto).")
    @click.option("--download", is_flag=True, default=None, help="Allow downloading model weights.")
    @click.option("--model", default=None, metavar="NAMES",
                  help="Models (comma-separated), or with --checkpoint the architecture: a torchvision name, "
                       "timm:<name> or python:<module>:<callable>.")
    @click.option("--checkpoint", multiple=True, type=click.Path(dir_okay=False),
                  help="A checkpoint of --model (repeat for several); the model is named after the file.")
    @click.option("--labels", default=None, type=click.Path(dir_okay=False),
                  help="Class names of the checkpoint(s): one per line in output order, or a JSON list.")
    @click.option("--methods", default=None, metavar="NAMES", help="Methods, comma-separated (maco,vital).")
    @click.option("--classes", default=None, metavar="IDS",
                  help="Classes, comma-separated: ids, names, ranges (0-9) or all.")
    @click.option("--seeds", default=None, metavar="SEEDS", help="Seeds, comma-separated (0,1,2).")
    @functools.wraps(fn)
    def wrapper(preset, config_file, store, site, assets_url, site_url, data, device, download, model, checkpoint, labels, methods,
                classes, seeds, **kw):
        cfg = resolve_config(preset, config_file, store=store, site=site, assets_url=assets_url,
                             site_url=site_url, data=data, device=device,
                             download=download, model=model, checkpoint=checkpoint, labels=labels,
                             methods=methods, classes=classes, seeds=seeds)
        return fn(cfg, **kw)

    return wrapper


@click.group()
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure (also: ATLAS_DEBUG=1).")
@click.pass_context
def cli(ctx, quiet, debug):
    """atlas: precomputed feature-visualization atlases and the static website that shows them."""
    from . import progress

    ctx.obj = {"progress": not quiet}
    progress.set_enabled(not quiet)  # every bar, including those of stages and methods
    logging.basicConfig(level=logging.WARNING, format="atlas: %(levelname)s: %(message)s")


def _local_device(cfg):
    """The device this command computes on, checked against this machine before anything loads."""
    from .models.devices import pick_device

    return pick_device(cfg.device)


def _plan(cfg):
    from .pipeline import make_plan

    return make_plan(cfg)


def _checked_plan(cfg, refuse: bool = True):
    """The plan of a command that computes here: the device checked against this machine first, and the
    plan's largest batch against the device's memory (``refuse``: one line and exit 2 if it cannot fit)."""
    from .pipeline.memory import check_memory

    device = _local_device(cfg)
    p = _plan(cfg)
    return p, device, check_memory(p.jobs, cfg.batch_size, device, cfg.compute.precision, refuse=refuse)


@cli.command()
@config_options
@click.option("--list", "list_jobs", is_flag=True, help="List every job with its status.")
@click.option("--estimate", "calibrate_now", is_flag=True,
              help="Calibrate the estimate by timing a few steps of each (model, method) on this device.")
@click.pass_context
def plan(ctx, cfg, list_jobs, calibrate_now):
    """List the jobs of a configuration, how many are done, and an estimate of the time left."""
    from .atomic import disk_errors
    from .cli_cluster import estimate_lines
    from .pipeline import Store

    p, device, memory = _checked_plan(cfg, refuse=False)
    device = device.type
    cfg = p.config  # repeated models, methods and seeds listed once
    store = Store(cfg.store)
    done = store.done(j.key for j in p.jobs)  # verified: metadata and file sizes
    failed = set(store.failures(j.key for j in p.jobs if j.key not in done))
    pending = [j for j in p.jobs if j.key not in done]
    per = Counter((j.model, j.method) for j in p.jobs)
    per_done = Counter((j.model, j.method) for j in p.jobs if j.key in done)
    click.echo(f"preset/config: {cfg.name} · {len(cfg.models)} model(s) · "
               f"{len(p.classes.get(cfg.models[0], []))} classes · {len(cfg.methods)} method(s) · "
               f"{len(cfg.seeds)} seed(s) · store {cfg.store}")
    click.echo(f"{'model':24s} {'method':18s} {'jobs':>8s} {'done':>8s}")
    for (model, method), n in per.items():
        click.echo(f"{model:24s} {method:18s} {n:8d} {per_done[(model, method)]:8d}")
    for model, source, reason in p.source_skips:
        click.echo(f"skipped: {model} {source} targets: {reason}")
    groups: dict = {}  # (model, method, reason) -> [count, first target]
    for s in p.skipped:
        groups.setdefault((s.model, s.method, s.reason), [0, s.target.slug()])[0] += 1
    for i, ((model, method, reason), (n, first)) in enumerate(groups.items()):
        if i == 20:
            click.echo(f"skipped: ... {len(groups) - 20} more kinds of skip")
            break
        click.echo(f"skipped: {model} {method} {f'{n} targets (e.g. {first})' if n > 1 else first}: {reason}")
    click.echo(f"total {len(p.jobs)} jobs: {len(done)} done, {len(failed)} failed, {len(pending) - len(failed)} "
               f"pending")
    for line in _data_warnings(cfg, p):
        click.echo(line, err=True)
    with disk_errors(cfg.store):  # --estimate saves its calibration in the store
        lines = estimate_lines(cfg, p, store, pending, device, calibrate_now, ctx.obj["progress"])
    for line in lines:
        click.echo(line)
    if memory is not None:
        click.echo(memory.line())
    from .sitegen.sizeplan import size_lines

    for line in size_lines(p):
        click.echo(line)
    if list_jobs:
        for j in p.jobs:
            status = "done" if j.key in done else "failed" if j.key in failed else "pending"
            click.echo(f"{j.key}  {status:8s} {j.label()}")


def _data_warnings(cfg, p):
    """A data folder that the plan's jobs need but that is not a folder here: planning does not read the data
    (a login node plans the paper preset without ImageNet), so it is a warning, not an error."""
    from .config.schema import pool_location

    needs = any(j.data for j in p.jobs) or bool(cfg.metrics.real_images)
    for key, spec in (("pool", cfg.data.pool), ("eval_pool", cfg.data.eval_pool)):
        if not needs or spec in (None, "bundled"):
            continue
        path = Path(pool_location(spec))
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            yield (f"warning: [data] {key} {spec} {what} on this machine: `atlas run` needs a folder of class "
                   f"folders there (planning does not read it)")


def _run(cfg, progress, shard=None, retry_failed=False, workers=1):
    from .pipeline import Runner, Store
    from .pipeline.sharding import parse_shard, shard_batches

    where = parse_shard(shard) if shard is not None else None
    if where is not None and workers > 1:
        raise AtlasError("--workers and --shard do not go together: a shard runs in one process (give one)")
    p, _, _ = _checked_plan(cfg)
    store = Store(cfg.store)
    runner = Runner(cfg, store, progress=progress, tags={"shard": shard} if shard is not None else None,
                    retry_failed=retry_failed)
    by_workers, start = [], time.perf_counter()
    if workers > 1 and not retry_failed:
        from .cli_workers import run_in_workers

        runner.prepare(p.jobs)  # the run stages once, for the whole plan; the workers find them stored
        by_workers = run_in_workers(cfg, p.jobs, store, workers, progress=progress)
    if where is None:
        report = runner.run(p.jobs)  # after workers: what they left (none, unless a job failed), and the report
    else:
        report = runner.run_batches(shard_batches(p.jobs, cfg.batch_size, *where))
    if by_workers:
        report.done += len(by_workers)
        report.cached -= len(by_workers)
        report.stored = by_workers + report.stored
        report.seconds = time.perf_counter() - start
    msg = f"{report.done} jobs run, {report.cached} already in the store"
    if by_workers:
        msg += f" ({len(by_workers)} of them by {workers} worker processes)"
    if report.failed:
        msg += f", {len(report.failed)} failed (see atlas plan --list)"
    click.echo(f"{msg} ({report.seconds:.0f} s)")
    from .pipeline.sanity import summary_lines

    stored = set(report.stored)
    for line in summary_lines([j for j in p.jobs if j.key in stored], store):
        click.echo(line)
    return p, store


def _metrics(cfg, p, store, progress):
    from .metrics import MetricsRunner

    from .atomic import disk_errors

    with disk_errors(cfg.store):
        report = MetricsRunner(cfg, store, progress=progress).run(p)
    click.echo(f"metrics: {len(report.computed)} results computed, {report.fresh} up to date "
               f"({report.seconds:.0f} s)")
    for what, reason in report.unavailable.items():
        click.echo(f"metrics: unavailable: {what}: {reason}")
    return report


def _render(cfg, p, store):
    from .atomic import disk_errors
    from .sitegen import render

    with disk_errors(cfg.site.folder, "--site"):
        counts = render(p, store, cfg.site)
    index = (Path(cfg.site.folder) / "index.html").resolve()
    kept = f", {counts['kept']} published earlier kept (atlas prune lists them)" if counts.get("kept") else ""
    click.echo(f"site: {counts['written']} files written, {counts['unchanged']} unchanged{kept}")
    if cfg.site.external_assets:
        click.echo(f"site: pages in {cfg.site.folder} (for {cfg.site.url}), assets in {cfg.site.assets_path} "
                   f"(for {cfg.site.assets_url}); each tree lists its files in atlas-files.txt")
    return index


@cli.command()
@config_options
@click.option("--shard", default=None, metavar="I/N",
              help="Run only shard I of N (0-based): a fixed, cost-balanced share of the plan's batches.")
@click.option("--retry-failed", is_flag=True,
              help="Run failed jobs (NaN/Inf) again with another seed (target seed + 1000, kept in meta).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes on this machine, each running a share of the jobs with the cores divided "
                   "between them (on a CPU, 2 processes of 1 thread outrun 1 of 2 threads).")
@click.pass_context
def run(ctx, cfg, shard, retry_failed, workers):
    """Run the pending jobs (finished jobs are skipped)."""
    _run(cfg, ctx.obj["progress"], shard, retry_failed, workers)


@cli.command()
@config_options
def render(cfg):
    """Write the website from the store (loads no model)."""
    from .pipeline import Store

    index = _render(cfg, _plan(cfg), Store(cfg.store))
    click.echo(f"open {index}")


@cli.command()
@config_options
@click.option("--retry-failed", is_flag=True,
              help="Run failed jobs (NaN/Inf) again with another seed (target seed + 1000, kept in meta).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes on this machine, each running a share of the jobs with the cores divided "
                   "between them (on a CPU, 2 processes of 1 thread outrun 1 of 2 threads).")
@click.pass_context
def build(ctx, cfg, retry_failed, workers):
    """Plan, run, compute the metrics and render: the whole atlas in one command."""
    from .metrics import check_metrics_config

    check_metrics_config(cfg)
    p, store = _run(cfg, ctx.obj["progress"], retry_failed=retry_failed, workers=workers)
    if cfg.metrics.enabled:
        _metrics(cfg, p, store, ctx.obj["progress"])
    index = _render(cfg, p, store)
    click.echo(f"open {index}")


@cli.command()
@config_options
@click.pass_context
def metrics(ctx, cfg):
    """Compute the metrics of the finished jobs (only what is missing or stale; loads the models)."""
    from .metrics import check_metrics_config
    from .pipeline import Store

    check_metrics_config(cfg)
    _local_device(cfg)
    _metrics(cfg, _plan(cfg), Store(cfg.store), ctx.obj["progress"])


@cli.command()
@click.option("--site", default="site", help="Folder of the built website (its pages).")
@click.option("--assets", default=None, help="Folder of its assets tree (default: as the site's record says).")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Also hold the site against a host's published limits: github-pages, gitlab-pages, netlify.")
def check(site, assets, hosts):
    """Check every link and image of a built site, and its size against a host (exit 1 on any problem)."""
    from .sitegen.check import check_site
    from .sitegen.hosts import check_host, host

    for name in hosts:
        host(name)  # an unknown host is an error before anything is read
    if not (Path(site) / "index.html").is_file():
        raise AtlasError(f"no site at {site!r}: build it first (atlas render)")
    problems = check_site(site, assets)
    for p in problems:
        click.echo(p)
    for name in hosts:
        lines, over = check_host(site, name)
        for line in lines:
            click.echo(line)
        for p in over:
            click.echo(f"{name}: {p}")
        problems = problems + over
        if not over:
            click.echo(f"{name}: fits")
    click.echo(f"{len(problems)} problem(s) in {site}")
    if problems:
        raise SystemExit(1)


@cli.command()
@config_options
@click.option("--yes", is_flag=True, help="Remove without asking.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def prune(cfg, yes, dry_run):
    """Remove what the site published that the current render would not make: earlier versions (pages and
    images) and pages of targets no longer planned. Lists every file first."""
    from .pipeline import Store
    from .sitegen import gather
    from .sitegen.hosts import human
    from .sitegen.prune import prune as do_prune, prune_list

    if not (Path(cfg.site.folder) / "index.html").is_file():
        raise AtlasError(f"no site at {cfg.site.folder!r}: nothing to prune")
    p, store = _plan(cfg), Store(cfg.store)
    goes = prune_list(gather(p, store, cfg.site))
    for tree, rels in goes.files.items():
        for rel in rels:
            click.echo(f"{tree}: {rel}")
    click.echo(f"{len(goes)} files ({human(goes.bytes)}) of {goes.versions} earlier versions and retired pages")
    if not len(goes) or dry_run:
        return
    if not yes and not click.confirm("Remove them?", default=False):
        click.echo("nothing removed")
        return
    done = do_prune(p, store, cfg.site)
    click.echo(f"removed {len(done)} files; re-upload with --delete (README: Publishing) to remove them online")


@cli.command()
@click.option("--site", default="site", help="Folder of the built website.")
@click.option("--port", default=8000, type=int, help="Port on 127.0.0.1, 1-65535; 0 picks a free one.")
def serve(site, port):
    """Preview the site on http://127.0.0.1:PORT (local only)."""
    import errno
    import http.server

    if not 0 <= port <= 65535:
        raise AtlasError(f"--port must be a port number from 1 to 65535 (or 0 for any free port), got {port}")
    root = Path(site).expanduser()
    if not (root / "index.html").is_file():
        raise AtlasError(f"no site at {site!r}: build it first (python build.py), or name its folder with --site")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    try:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AtlasError(f"port {port} on 127.0.0.1 is already in use (another server?); choose another "
                             f"with --port N, or --port 0 for any free port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise AtlasError(f"port {port} needs privileges on this machine; use a port above 1023 "
                             f"(--port 8000), or --port 0 for any free port") from None
        raise
    with httpd:
        port = httpd.server_address[1]
        click.echo(f"serving {root.resolve()} at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


from .cli_cluster import register as _register_cluster  # noqa: E402

_register_cluster(cli, config_options)


def _usage_line(exc: click.ClickException, argv=()) -> str:
    """A click usage error (unknown option, bad integer, missing value) as one line with the fix."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        where = f"; see '{ctx.command_path} --help'"
    else:  # some parser errors carry no context: the first word of the line that names a command
        command = next((a for a in argv if a in cli.commands), None)
        where = f"; see 'atlas {command} --help'" if command else "; see 'atlas --help'"
    return " ".join(exc.format_message().split()).rstrip(".") + where


def main(argv=None) -> int:
    """Run the command line; every failure is one line on stderr and an exit status of
    :data:`~atlas.errors.EXIT_CODES` (a traceback only with ``--debug`` or ``ATLAS_DEBUG=1``)."""
    import traceback

    from .errors import debug_requested, failure_line

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested() or "--debug" in argv
    if "--debug" in argv:  # accepted anywhere on the line (``atlas run --debug``), read here
        argv = [a for a in argv if a != "--debug"]
    try:
        from .allocator import keep_freed_memory
        from .app import install

        keep_freed_memory()
        install()
        code = cli.main(args=argv, prog_name="atlas", standalone_mode=False)
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
    except click.exceptions.Abort:
        click.echo("atlas: interrupted; finished work is kept", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("atlas: interrupted; finished work is kept", err=True)
        return 130
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"atlas: error: {_usage_line(exc, argv)}", err=True)
        return 2 if exc.exit_code == 2 else exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:  # output piped into a reader that stopped (atlas plan --list | head)
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if debug:
            traceback.print_exc()
        line, code = failure_line(exc)
        click.echo(f"atlas: error: {line}", err=True)
        return code
    finally:
        from . import progress

        progress.set_enabled(True)  # -q holds for one command line, not for the rest of this process


if __name__ == "__main__":
    sys.exit(main())
