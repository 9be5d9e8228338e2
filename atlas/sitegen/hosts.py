"""Static hosts' published limits and ``atlas check --host``: a built site held against them.

The limits (each with where it is published):

=================  ======================================================================================
``github-pages``   a published site may be no larger than 1 GB; git refuses files over 100 MiB
                   (docs.github.com: "GitHub Pages limits", "About large files on GitHub")
``gitlab-pages``   1 GB and 200 000 file entries (files, folders and links) per site on GitLab.com
                   (docs.gitlab.com: "GitLab.com settings", GitLab Pages)
``netlify``        no limit on the files of a deploy, but at most 54 000 files in one folder
                   (docs.netlify.com: "Site deploys overview", files per directory limit)
=================  ======================================================================================

Where assets are apart (``[site] assets_url``) only the pages tree goes to the host; otherwise the whole
folder does. Every failed limit is one line saying what to change.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from ..errors import unknown_choice
from . import paths
from .check import PRIVATE, Site
from .trees import FILE_LIST


@dataclass(frozen=True)
class HostLimits:
    name: str
    title: str
    total_bytes: Optional[int] = None
    entries: Optional[int] = None  # files, plus folders where ``folders_count``
    folders_count: bool = False
    per_folder: Optional[int] = None
    largest_file: Optional[int] = None
    source: str = ""


GB, MIB = 1_000_000_000, 1 << 20
HOSTS: Tuple[HostLimits, ...] = (
    HostLimits("github-pages", "GitHub Pages", total_bytes=GB, largest_file=100 * MIB,
               source="https://docs.github.com/en/pages/getting-started-with-github-pages/github-pages-limits"),
    HostLimits("gitlab-pages", "GitLab Pages (GitLab.com)", total_bytes=GB, entries=200_000, folders_count=True,
               source="https://docs.gitlab.com/ee/user/gitlab_com/#gitlab-pages"),
    HostLimits("netlify", "Netlify", per_folder=54_000,
               source="https://docs.netlify.com/site-deploys/overview/#files-per-directory-limit"),
)


def host(name: str) -> HostLimits:
    for h in HOSTS:
        if h.name == name:
            return h
    raise unknown_choice("host", name, [h.name for h in HOSTS])


@dataclass
class Measure:
    """What a host receives from a folder: files, folders, bytes, the largest file, the fullest folder."""

    files: int = 0
    folders: int = 0
    bytes: int = 0
    largest: Tuple[int, str] = (0, "")
    fullest: Tuple[int, str] = (0, "")

    @classmethod
    def of(cls, root: Path, only: Optional[Iterable[str]] = None) -> "Measure":
        """Measure the published files under ``root`` (the renderer's private records left out), or only the
        site paths ``only``."""
        m, per, dirs = cls(), Counter(), set()
        files = ((root / rel) for rel in only) if only is not None else root.rglob("*")
        for p in files:
            rel = p.relative_to(root).as_posix()
            if rel in PRIVATE or not p.is_file():
                continue
            size = p.stat().st_size
            m.files += 1
            m.bytes += size
            m.largest = max(m.largest, (size, rel))
            parent = rel.rpartition("/")[0]
            per[parent] += 1
            while parent:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        m.folders = len(dirs)
        if per:
            folder, n = per.most_common(1)[0]
            m.fullest = (n, folder or ".")
        return m


def human(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _pages_share(root: Path) -> List[str]:
    """The files of a one-folder site that would stay with the pages if the assets were apart: the plain
    pages, the stylesheet and scripts and the small JSON (not the images, versioned pages, manifest)."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel in PRIVATE:
            continue
        if rel.startswith("static/") or (rel.endswith((".html", ".js", ".xml", ".txt"))
                                         and paths.unversioned(rel)[1] is None) or rel == paths.SEARCH_JSON:
            out.append(rel)
    return out


def check_host(root, name: str) -> Tuple[List[str], List[str]]:
    """(report lines, problems) of the site whose pages are under ``root`` against host ``name``."""
    limits = host(name)
    site = Site.at(root)
    apart = site.assets != site.pages
    m = Measure.of(site.pages)
    what = "the pages tree" if apart else "the site (one folder)"
    lines = [f"{limits.title}: {what} {site.pages}: {m.files} files in {m.folders} folders, {human(m.bytes)}; "
             f"largest file {human(m.largest[0])} ({m.largest[1]}); fullest folder {m.fullest[0]} files "
             f"({m.fullest[1]})"]
    if apart:
        a = Measure.of(site.assets)
        lines.append(f"assets tree {site.assets} (for {site.assets_url}, not sent to {limits.title}): "
                     f"{a.files} files, {human(a.bytes)}")
    fix = _advice(site, apart)
    problems = []
    if limits.total_bytes is not None and m.bytes > limits.total_bytes:
        problems.append(f"{what} is {human(m.bytes)}, over {limits.title}'s {human(limits.total_bytes)}: {fix}")
    count = m.files + (m.folders if limits.folders_count else 0)
    if limits.entries is not None and count > limits.entries:
        noun = "files and folders" if limits.folders_count else "files"
        problems.append(f"{what} has {count} {noun}, over {limits.title}'s {limits.entries}: {fix}")
    if limits.per_folder is not None and m.fullest[0] > limits.per_folder:
        problems.append(f"folder {m.fullest[1]} holds {m.fullest[0]} files, over {limits.title}'s "
                        f"{limits.per_folder} per folder: {fix}")
    if limits.largest_file is not None and m.largest[0] > limits.largest_file:
        problems.append(f"{m.largest[1]} is {human(m.largest[0])}, over {limits.title}'s "
                        f"{human(limits.largest_file)} per file: {fix}")
    lines.append(f"limits from {limits.source}")
    return lines, problems


def _advice(site: Site, apart: bool) -> str:
    if not apart:
        pages = Measure.of(site.pages, _pages_share(site.pages))
        return (f"put the images on object storage with [site] assets_url (the pages alone would be {pages.files} "
                f"files, {human(pages.bytes)}; README: 'Publishing')")
    listed = site.pages / FILE_LIST
    return ("fewer classes, methods, seeds or targets per site, or split it by model; `atlas prune` removes "
            "earlier versions and pages no longer planned" if listed.is_file() else
            "fewer classes, methods, seeds or targets per site, or split it by model")
