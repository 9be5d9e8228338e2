"""Jinja filters of the site. The blocks that repeat on thousands of pages (a method's settings, a BibTeX
box) are formatted here once per distinct value and reused, escaped with markupsafe."""
from __future__ import annotations

import json
from functools import lru_cache

from markupsafe import Markup, escape


def fmt(value, digits: int = 3) -> str:
    """Numbers for people: floats to ``digits`` significant digits, None as empty."""
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


@lru_cache(maxsize=4096)
def _settings_html(items: tuple) -> Markup:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return Markup(f'<dl class="settings">{rows}</dl>')


def settings_dl(settings) -> Markup:
    """A ``<dl class="settings">`` of a settings mapping, sorted by key (formatted once per distinct value)."""
    return _settings_html(tuple(sorted((str(k), str(v)) for k, v in dict(settings).items())))


@lru_cache(maxsize=4096)
def copy_block(text: str, label: str) -> Markup:
    """A ``<pre>`` with a copy button (the button is shown by the script)."""
    return Markup('<div class="copyable"><pre class="bib" data-copy-src>{}</pre>'
                  '<button type="button" class="btn small" data-copy hidden>Copy {}</button></div>').format(text, label)


def tojson_pretty(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def versioned(path: str, version: str) -> str:
    """The versioned path of ``path`` (:func:`atlas.sitegen.paths.versioned`)."""
    from .paths import versioned as v

    return v(path, version)


FILTERS = {"fmt": fmt, "sparkline": sparkline_points, "settings_dl": settings_dl, "copy_block": copy_block,
           "tojson_pretty": tojson_pretty, "versioned": versioned}
