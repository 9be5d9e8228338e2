"""Where a site is written and published: one folder, or two trees apart (``[site] assets_url``).

Without ``assets_url`` the site is one folder that works from ``file://`` and from any sub-path: every link
is relative. With it, the render writes two trees, each with its file list (:data:`FILE_LIST`):

* the **pages** (``[site] folder``, for GitHub/GitLab Pages or Netlify): the plain pages, which show the
  newest version of everything and change from render to render, the stylesheet and scripts, and the small
  JSON the scripts read;
* the **assets** (``[site] assets_folder``, for a bucket, a CDN or a Hugging Face dataset, published at
  ``assets_url``): every image and download, every versioned page (a snapshot that never changes, cited by
  papers) and the large JSON (``manifest.json``).

A link between the trees is absolute (``assets_url`` + path, or ``[site] url`` + path); within a tree it is
relative. :meth:`Trees.href` decides, for templates (``url()``) and for markup made at gather time alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Set

from . import paths
from .assets import is_image

PAGES, ASSETS = "pages", "assets"
STATIC = "static/"  # the stylesheet, scripts and icon: always with the pages
#: Each tree's list of its published files, one site-relative path a line (for upload tools).
FILE_LIST = "atlas-files.txt"


def site_config(site, default=None):
    """The :class:`~atlas.config.SiteConfig` for ``site``: a SiteConfig, or a folder (a path) that replaces
    the folder of ``default`` (the plan's ``[site]``; its assets folder then defaults next to the new one)."""
    from ..config import SiteConfig

    if isinstance(site, SiteConfig):
        return site
    base = default if default is not None else SiteConfig()
    if site is None:
        return base
    import dataclasses

    folder = os.fspath(site)
    assets = base.assets_folder if base.assets_folder and folder == base.folder else None
    return dataclasses.replace(base, folder=folder, assets_folder=assets)


@dataclass
class Trees:
    """The two trees of a site (the same folder when assets are not apart) and which paths the assets tree
    holds: everything registered as an asset, every image and every versioned page; the rest are pages."""

    pages: Path
    assets: Path
    site_url: Optional[str] = None
    assets_url: Optional[str] = None
    asset_paths: Set[str] = field(default_factory=set)
    page_paths: Set[str] = field(default_factory=set)
    #: the tree of each path asked about, valid while both path sets are the same objects with the sizes in
    #: ``_memo_sizes`` (they only grow): a lens site asks ~700 000 times, mostly about the same paths
    _memo: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _memo_sizes: tuple = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, site) -> "Trees":
        return cls(Path(site.folder), Path(site.assets_path), site.url, site.assets_url)

    def describe(self) -> dict:
        """Where the site is published, as its record keeps it (the assets folder relative to the pages')."""
        if not self.external:
            return {}
        try:
            folder = os.path.relpath(self.assets, self.pages)
        except ValueError:  # another drive
            folder = str(self.assets.resolve())
        return {"site_url": self.site_url, "assets_url": self.assets_url, "assets_folder": folder}

    @property
    def external(self) -> bool:
        return self.assets_url is not None

    def tree(self, path: str) -> str:
        """Which tree holds the file ``path``: :data:`PAGES` or :data:`ASSETS`."""
        sizes = (len(self.asset_paths), len(self.page_paths), id(self.asset_paths), id(self.page_paths))
        if sizes != self._memo_sizes:  # a path was added or a set replaced: answers may differ now
            self._memo, self._memo_sizes = {}, sizes
        got = self._memo.get(path)
        if got is None:
            got = self._memo[path] = self._tree(path)
        return got

    def _tree(self, path: str) -> str:
        if not self.external or path in self.page_paths or path.startswith(STATIC):
            return PAGES
        if path in self.asset_paths or is_image(path) or paths.unversioned(path)[1] is not None:
            return ASSETS
        return PAGES

    def folder(self, tree: str) -> Path:
        return self.assets if tree == ASSETS else self.pages

    def file(self, path: str) -> Path:
        """Where the file ``path`` is written."""
        return self.folder(self.tree(path)) / path

    def href(self, from_page: str, to: str) -> str:
        """The link from ``from_page`` to ``to`` (both site-relative paths, ``to`` may carry a ``#fragment``
        or ``?query``): relative within a tree, absolute across the trees."""
        bare = to.split("#", 1)[0].split("?", 1)[0]
        there = self.tree(bare)
        if there == self.tree(from_page):
            return paths.root_prefix(from_page) + to
        return (self.assets_url if there == ASSETS else self.site_url) + to

    def base(self, from_page: str, tree: str) -> str:
        """The prefix that turns a path of ``tree`` into a link from ``from_page`` (``data-root`` and
        ``data-assets`` of a page: the browser builds links from them)."""
        if not self.external or self.tree(from_page) == tree:
            return paths.root_prefix(from_page)
        return self.assets_url if tree == ASSETS else self.site_url
