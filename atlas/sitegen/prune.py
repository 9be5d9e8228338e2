"""``atlas prune``: the one way files leave a published site. It lists, then (when told to) removes, every
file the site published that the current render would not make again: the earlier versions of figure,
concept and neuron pages with their images, and the pages of targets the plan no longer holds. Then it
writes the site again, so that no permalink lists a version that is gone. Only files of the renderer's
record are touched (never a file the renderer did not write)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from .context import SiteData, gather
from .trees import ASSETS, FILE_LIST, PAGES, site_config
from .writer import RECORDS, previous_files, static_files, templates_dir, tree_files, write_records, write_site


@dataclass
class PruneList:
    """What goes: ``files[tree]`` (site-relative paths), their bytes, and the versions dropped."""

    files: Dict[str, List[str]] = field(default_factory=dict)
    bytes: int = 0
    versions: int = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.files.values())


def planned(site: SiteData) -> set:
    """Every file the render of ``site`` makes (pages, versioned copies, assets, page files, static files)."""
    return ({p.path for p in site.pages} | set(site.assets) | set(site.page_files)
            | set(static_files(templates_dir())))


def prune_list(site: SiteData) -> PruneList:
    """The published files that the current render would not make again (nothing is removed)."""
    trees, keep = site.trees, tree_files(site.trees, planned(site))
    out = PruneList()
    folders = [(PAGES, trees.pages)] + ([(ASSETS, trees.assets)] if trees.external else [])
    for tree, folder in folders:
        goes = sorted(rel for rel in set(previous_files(folder)) - keep[tree] - set(RECORDS) - {FILE_LIST}
                      if (folder / rel).is_file())
        out.files[tree] = goes
        out.bytes += sum((folder / rel).stat().st_size for rel in goes)
    gone = set(out.files.get(PAGES, [])) | set(out.files.get(ASSETS, []))
    out.versions = sum(1 for page in site.published.pages() if page in gone)
    return out


def prune(plan, store, site=None) -> PruneList:
    """Remove what :func:`prune_list` names, drop those versions from the record, and write the site again."""
    where = site_config(site, plan.config.site)
    data = gather(plan, store, where)
    goes = prune_list(data)
    trees = data.trees
    for tree, rels in goes.files.items():
        root = trees.folder(tree).resolve()
        for rel in rels:
            p = (root / rel).resolve()
            if root in p.parents and p.is_file():
                p.unlink()
                _remove_empty_parents(p.parent, root)
    gone = set(goes.files.get(PAGES, [])) | set(goes.files.get(ASSETS, []))
    for plain, versions in list(data.published.versions.items()):
        for v in versions:
            if v.page in gone:
                data.published.drop(plain, v.version)
    write_records(trees, {}, data.published, drop=gone)
    write_site(gather(plan, store, where))
    return goes


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
