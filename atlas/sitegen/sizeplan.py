"""The site's size before anything runs (``atlas plan``): files and bytes of the pages tree and of the
assets tree for a plan, and whether the pages fit the static hosts (:mod:`.hosts`).

Bytes per file are measured averages (bench/README.md, "Image formats" and "render at lens scale"): the
demo's 82 real 224-px results (PNG 113 kB, transparency map 33 kB, WebP thumbnail 13 kB, view 24 kB; an
image-seeded result's seed, mask and masked composite 134 kB together), its concept mosaics and maps, and
the HTML of the lens-scale render benchmark. Image bytes grow with the pixels (a 1024-px MACO image is
~21x a 224-px one); a figure's pages do not. The estimate counts every planned job as done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .hosts import HOSTS, human

KB = 1000
PNG_224, ALPHA_224, THUMB, VIEW_224 = 113 * KB, 33 * KB, 13 * KB, 24 * KB
SEEDED_EXTRAS = (3, 134 * KB)  # seed, mask, composite of an image target (files, bytes)
CONCEPT_FILES = (2, 164 * KB)  # top-patch mosaic and concept map of a concept
REFERENCES = (8, 26 * KB)  # real-image thumbnails of a class
HTML_FIGURE, HTML_FIGURE_VERSION = 4700, 9400  # a figure's plain permalink; its versioned page (full record)
#: a class page: a base, each class figure, each concept card, each real image explained (seed|result|mask|...)
HTML_CLASS_BASE, HTML_CLASS_PER_FIGURE, HTML_CLASS_PER_CONCEPT, HTML_CLASS_PER_IMAGE = 10 * KB, 2 * KB, 1500, 3500
HTML_CONCEPT = 8400  # a concept or neuron page (plain or versioned)
#: index, about, compare, metrics and t-SNE pages, stylesheet and scripts, small JSON and file list; plus a
#: model page and a metrics page per model and a page per method
FIXED_FILES, PER_MODEL_FILES, PER_METHOD_FILES = 14, 2, 1
FIXED_BYTES = 150 * KB
#: bytes per class of the pages that list every class: the class grid (index and each model page), each
#: method page, the search index and figure-versions.js
PER_CLASS_GRID, PER_CLASS_METHOD, PER_CLASS_INDEX = 400, 300, 100
MANIFEST_PER_FIGURE = 1200  # bytes of manifest.json per figure


@dataclass
class SiteSize:
    pages_files: int = 0
    pages_bytes: int = 0
    assets_files: int = 0
    assets_bytes: int = 0

    def add(self, tree: str, files: int, nbytes: float) -> None:
        if tree == "pages":
            self.pages_files += files
            self.pages_bytes += int(nbytes)
        else:
            self.assets_files += files
            self.assets_bytes += int(nbytes)


def _side(job) -> int:
    size = getattr(job.config, "image_size", None)
    return int(size) if isinstance(size, int) and size > 0 else 224


def estimate(plan) -> SiteSize:
    """Files and bytes of the two trees of ``plan``'s site, every job done (one version of each)."""
    s = SiteSize()
    for job in plan.jobs:
        area = (_side(job) / 224) ** 2
        view = min(area, 4.0)  # views are at most 448 px
        s.add("pages", 1, HTML_FIGURE)
        s.add("assets", 1, HTML_FIGURE_VERSION)
        s.add("assets", 4, (PNG_224 + ALPHA_224) * area + THUMB + VIEW_224 * view)
        if job.target.kind == "image":
            s.add("assets", SEEDED_EXTRAS[0], SEEDED_EXTRAS[1])
    per_class: dict = {}
    weight = {"class": HTML_CLASS_PER_FIGURE, "image": HTML_CLASS_PER_IMAGE}
    for job in plan.jobs:
        if job.target.kind in weight:
            k = (job.model, job.target.class_id)
            per_class[k] = per_class.get(k, 0) + weight[job.target.kind]
    k_concepts = plan.config.targets.concepts
    for model, ids in plan.classes.items():
        for cid in ids:
            s.add("pages", 1, HTML_CLASS_BASE + per_class.get((model, cid), 0) + HTML_CLASS_PER_CONCEPT * k_concepts)
    classes = {cid for ids in plan.classes.values() for cid in ids}
    s.add("assets", REFERENCES[0] * len(classes), REFERENCES[1] * len(classes))
    # every concept of every bank has a page (plain + versioned), its mosaic and map; so has every neuron
    concepts = plan.config.targets.concepts * sum(len(ids) for ids in plan.classes.values())
    neurons = len({(j.model, j.target.layer, j.target.channel) for j in plan.jobs if j.target.kind == "neuron"})
    s.add("pages", concepts + neurons, HTML_CONCEPT * (concepts + neurons))
    s.add("assets", concepts * (1 + CONCEPT_FILES[0]) + neurons * 2,
          concepts * (HTML_CONCEPT + CONCEPT_FILES[1]) + neurons * (HTML_CONCEPT + CONCEPT_FILES[1] / 2))
    cfg = plan.config
    s.add("pages", FIXED_FILES + PER_MODEL_FILES * len(cfg.models) + PER_METHOD_FILES * len(cfg.methods),
          FIXED_BYTES + len(classes) * (PER_CLASS_GRID * (1 + len(cfg.models)) + PER_CLASS_METHOD * len(cfg.methods)
                                        + PER_CLASS_INDEX * (1 + len(cfg.seeds) * len(cfg.methods) // 4)))
    s.add("assets", 1, MANIFEST_PER_FIGURE * len(plan.jobs))
    return s


def size_lines(plan) -> List[str]:
    """What ``atlas plan`` prints about the site's size and the hosts it fits."""
    s = estimate(plan)
    site = plan.config.site
    total_files, total_bytes = s.pages_files + s.assets_files, s.pages_bytes + s.assets_bytes
    lines = [f"site (estimate, every job done): pages {s.pages_files} files, {human(s.pages_bytes)}; "
             f"assets {s.assets_files} files, {human(s.assets_bytes)}"
             + (f" (published apart at {site.assets_url})" if site.external_assets else " (one folder)")]
    files, nbytes = (s.pages_files, s.pages_bytes) if site.external_assets else (total_files, total_bytes)
    what = "the pages" if site.external_assets else "one folder"
    fits, over = [], []
    for h in HOSTS:
        too = ((h.total_bytes is not None and nbytes > h.total_bytes)
               or (h.entries is not None and files > h.entries))
        (over if too else fits).append(h.name)
    line = f"site: {what} " + (f"fits {', '.join(fits)}" if fits else "fits no static host")
    if over:
        line += f"; too large for {', '.join(over)}"
        if not site.external_assets:
            apart = [h.name for h in HOSTS if not ((h.total_bytes is not None and s.pages_bytes > h.total_bytes)
                                                    or (h.entries is not None and s.pages_files > h.entries))]
            line += (f": with [site] assets_url the pages alone ({s.pages_files} files, {human(s.pages_bytes)}) fit "
                     f"{', '.join(apart) or 'no static host'}")
    lines.append(line)
    return lines
