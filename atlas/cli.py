"""Command line: ``atlas build | plan | run | metrics | render | check | prune | serve | submit | status``.

Every command takes ``--preset`` (default ``demo``) or ``--config FILE.toml``. Errors in what was asked
for print one line and exit with status 2, before anything is written.
"""
from __future__ import annotations

import functools
import logging
import sys
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
    @click.option("--data", default=None, help="ImageNet-style folder <data>/<wnid>/*.JPEG, or 'bundled'.")
    @click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: auto).")
    @click.option("--download", is_flag=True, default=None, help="Allow downloading model weights.")
    @functools.wraps(fn)
    def wrapper(preset, config_file, store, site, assets_url, site_url, data, device, download, **kw):
        cfg = resolve_config(preset, config_file, store=store, site=site, assets_url=assets_url, site_url=site_url,
                             data=data, device=device, download=download)
        return fn(cfg, **kw)

    return wrapper


@click.group()
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx, quiet):
    """atlas: precomputed feature-visualization atlases and the static website that shows them."""
    ctx.obj = {"progress": not quiet}
    logging.basicConfig(level=logging.WARNING, format="atlas: %(levelname)s: %(message)s")


def _plan(cfg):
    from .pipeline import make_plan

    return make_plan(cfg)


@cli.command()
@config_options
@click.option("--list", "list_jobs", is_flag=True, help="List every job with its status.")
@click.option("--estimate", "calibrate_now", is_flag=True,
              help="Calibrate the estimate by timing a few steps of each (model, method) on this device.")
@click.pass_context
def plan(ctx, cfg, list_jobs, calibrate_now):
    """List the jobs of a configuration, how many are done, and an estimate of the time left."""
    from .cli_cluster import estimate_lines
    from .pipeline import Store
    from .pipeline.runner import pick_device

    p = _plan(cfg)
    store = Store(cfg.store)
    done = {j.key for j in p.jobs if store.has(j.key)}
    failed = {j.key for j in p.jobs if j.key not in done and store.failure(j.key)}
    pending = [j for j in p.jobs if j.key not in done]
    device = pick_device(cfg.device).type
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
    for line in estimate_lines(cfg, p, store, pending, device, calibrate_now, ctx.obj["progress"]):
        click.echo(line)
    from .sitegen.sizeplan import size_lines

    for line in size_lines(p):
        click.echo(line)
    if list_jobs:
        for j in p.jobs:
            status = "done" if j.key in done else "failed" if j.key in failed else "pending"
            click.echo(f"{j.key}  {status:8s} {j.label()}")


def _run(cfg, progress, shard=None, retry_failed=False):
    from .pipeline import Runner, Store
    from .pipeline.sharding import parse_shard, shard_batches

    where = parse_shard(shard) if shard else None
    p = _plan(cfg)
    store = Store(cfg.store)
    runner = Runner(cfg, store, progress=progress, tags={"shard": shard} if shard else None,
                    retry_failed=retry_failed)
    if where is None:
        report = runner.run(p.jobs)
    else:
        report = runner.run_batches(shard_batches(p.jobs, cfg.batch_size, *where))
    msg = f"{report.done} jobs run, {report.cached} already in the store"
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

    report = MetricsRunner(cfg, store, progress=progress).run(p)
    click.echo(f"metrics: {len(report.computed)} results computed, {report.fresh} up to date "
               f"({report.seconds:.0f} s)")
    for what, reason in report.unavailable.items():
        click.echo(f"metrics: unavailable: {what}: {reason}")
    return report


def _render(cfg, p, store):
    from .pipeline.disk import disk_errors
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
@click.pass_context
def run(ctx, cfg, shard, retry_failed):
    """Run the pending jobs (finished jobs are skipped)."""
    _run(cfg, ctx.obj["progress"], shard, retry_failed)


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
@click.pass_context
def build(ctx, cfg, retry_failed):
    """Plan, run, compute the metrics and render: the whole atlas in one command."""
    from .metrics import check_metrics_config

    check_metrics_config(cfg)
    p, store = _run(cfg, ctx.obj["progress"], retry_failed=retry_failed)
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
@click.option("--port", default=8000, type=int)
def serve(site, port):
    """Preview the site on http://127.0.0.1:PORT (local only)."""
    import http.server

    root = Path(site)
    if not (root / "index.html").is_file():
        raise AtlasError(f"no site at {site!r}: build it first (python build.py)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        click.echo(f"serving {root.resolve()} at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


from .cli_cluster import register as _register_cluster  # noqa: E402

_register_cluster(cli, config_options)


def main(argv=None) -> int:
    from .app import install

    install()
    try:
        cli.main(args=argv, prog_name="atlas", standalone_mode=False)
    except AtlasError as exc:
        click.echo(f"atlas: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("atlas: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        click.echo("atlas: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
