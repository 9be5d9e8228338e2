"""A sitemap for search engines (https://www.sitemaps.org/protocol.html): every plain page of the pages
tree - the newest version of everything; the versioned pages are linked from their plain permalinks.

A sitemap needs absolute addresses, so it is written only when the site knows where its pages are published
(``[site] url``). One file holds at most 50 000 addresses; a larger site gets ``sitemap-1.xml``, ... and
``sitemap.xml`` as their index.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Dict, List
from xml.sax.saxutils import escape

from . import paths

LIMIT = 50_000
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def _urlset(urls: List[str]) -> bytes:
    body = "".join(f"<url><loc>{escape(u)}</loc></url>\n" for u in urls)
    return f"{_HEAD}<urlset {_NS}>\n{body}</urlset>\n".encode()


def _index(urls: List[str]) -> bytes:
    body = "".join(f"<sitemap><loc>{escape(u)}</loc></sitemap>\n" for u in urls)
    return f"{_HEAD}<sitemapindex {_NS}>\n{body}</sitemapindex>\n".encode()


def sitemap_files(build) -> Dict[str, Callable[[], bytes]]:
    """``{path: producer}`` of the sitemap file(s); none when ``[site] url`` is not set."""
    base = build.trees.site_url
    if not base:
        return {}
    urls = sorted({base + p.path for p in build.pages if p.version is None and build.trees.tree(p.path) == "pages"})
    if len(urls) <= LIMIT:
        return {paths.SITEMAP: partial(_urlset, urls)}
    out: Dict[str, Callable[[], bytes]] = {}
    parts = [urls[i:i + LIMIT] for i in range(0, len(urls), LIMIT)]
    for i, part in enumerate(parts, 1):
        out[f"sitemap-{i}.xml"] = partial(_urlset, part)
    out[paths.SITEMAP] = partial(_index, [f"{base}sitemap-{i}.xml" for i in range(1, len(parts) + 1)])
    return out
