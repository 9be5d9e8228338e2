""""Cite this figure": a BibTeX entry for one figure (its permalink, configuration hash and settings)."""
from __future__ import annotations

import re

_KEY = re.compile(r"[^A-Za-z0-9_.:-]+")
_BRACES = str.maketrans({"{": "(", "}": ")", "\\": "/"})


def bibtex_key(*parts) -> str:
    """A BibTeX citation key from ``parts`` (only letters, digits and ``_.:-``)."""
    return _KEY.sub("-", "-".join(str(p) for p in parts if p != "")).strip("-") or "atlas-figure"


def _field(text) -> str:
    """A value safe inside a braced BibTeX field (no unbalanced braces, no control sequences)."""
    return str(text).translate(_BRACES)


def figure_bibtex(fig, version: str, url: str = "") -> str:
    """BibTeX (``@misc``) of one figure of the atlas.

    ``url`` is the address of the figure's version (its versioned page, which never changes); pages pass
    its site-relative path, which the browser replaces by the absolute address the page was opened from (a
    site in one folder does not know where it will be hosted), or its absolute address when the site knows
    it (assets apart). The key ends with the version's first 8 digits, so two versions cited together differ.
    """
    key = bibtex_key("atlas", fig.model, fig.method, fig.target.slug(), f"s{fig.seed}",
                     (getattr(fig, "version", "") or "")[:8])
    config_hash = fig.meta.get("config_hash", "") if fig.meta else ""
    note = f"atlas {version}; target {fig.target.slug()}"
    if config_hash:
        note += f"; settings hash {config_hash}"
    note += f"; job {fig.key}"
    title = f"{fig.method_title} feature visualization of {fig.label or fig.target.slug()}, seed {fig.seed}, {fig.model}"
    lines = [f"@misc{{{key},",
             f"  title        = {{{_field(title)}}},",
             "  author       = {{atlas developers}},",
             f"  howpublished = {{\\url{{{_field(url or fig.page)}}}}},",
             f"  note         = {{{_field(note)}}},"]
    created = (fig.meta or {}).get("created", "")
    if created[:4].isdigit():
        lines.append(f"  year         = {{{created[:4]}}},")
    lines.append("}")
    return "\n".join(lines)
