"""Reading a configuration: a TOML file or a parsed mapping, optionally on top of a preset.

Every key and value is checked by the one validator (:mod:`atlas.config.validate`) against the fields of
:class:`~atlas.config.schema.AtlasConfig` and its tables; any problem is a one-line :class:`AtlasError`.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import AtlasError
from .presets import PRESETS
from .schema import AtlasConfig
from .validate import Place, build, check, check_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_from_mapping(raw: Mapping[str, Any], source: str = "config") -> AtlasConfig:
    """Build an :class:`AtlasConfig` from a parsed TOML mapping (optionally starting from ``preset``);
    ``source`` names it in messages (the file name)."""
    place = Place(source=source)
    check_keys(AtlasConfig, raw, place, also=("preset",))
    base = AtlasConfig()
    if "preset" in raw:
        base = PRESETS.get(check(raw["preset"], str, {"what": "a preset name"}, place, "preset"))()
        if "batch_size" in raw and "batch_sizes" not in raw:
            # a preset's per-method batch sizes refine its own batch_size: a file that sets batch_size
            # means it for every method
            base = replace(base, batch_sizes=())
    return build(AtlasConfig, raw, place, base=base, also=("preset",))


def load_config(path: str | Path) -> AtlasConfig:
    """Read a TOML configuration file; a missing or malformed file is an :class:`AtlasError`."""
    path = Path(path)
    if not path.is_file():
        raise AtlasError(f"config file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    return config_from_mapping(raw, source=path.name)


def resolve_config(preset: Optional[str] = None, config: Optional[str] = None, **overrides) -> AtlasConfig:
    """The configuration the CLI uses: a preset (default ``demo``), or a TOML file, plus overrides
    (``site``, ``assets_url`` and ``site_url`` change the ``[site]`` table's folder and addresses)."""
    if config is not None:
        cfg = load_config(config)
        if preset is not None:
            raise AtlasError("give either --preset or --config (a config file may say preset = \"...\")")
    else:
        cfg = PRESETS.get(preset or "demo")()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "data" in overrides and isinstance(overrides["data"], str):
        overrides["data"] = replace(cfg.data, pool=overrides["data"])
    site = {k: overrides.pop(k) for k in ("site", "assets_url", "site_url") if k in overrides}
    if site:
        names = {"site": "folder", "assets_url": "assets_url", "site_url": "url"}
        try:
            overrides["site"] = replace(cfg.site, **{names[k]: v for k, v in site.items()})
        except ValueError as exc:
            raise AtlasError(f"bad [site]: {exc}") from None
    return replace(cfg, **overrides)
