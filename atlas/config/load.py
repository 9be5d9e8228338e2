"""Reading a configuration: a TOML file or a parsed mapping, optionally on top of a preset.

Every key and value is checked by the one validator (:mod:`atlas.config.validate`) against the fields of
:class:`~atlas.config.schema.AtlasConfig` and its tables; any problem is a one-line :class:`AtlasError`.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..errors import AtlasError
from .presets import PRESETS
from .schema import AtlasConfig
from .validate import Place, build, check, check_keys

log = logging.getLogger(__name__)

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
    cfg = build(AtlasConfig, raw, place, base=base, also=("preset",))
    if cfg.model and "models" not in raw:  # a file that defines models and does not list them builds them all
        cfg = replace(cfg, models=tuple(name for name, _ in cfg.model))
    if cfg.model and "classes" not in raw:  # the preset's classes are another model's: every class of these
        cfg = replace(cfg, classes=None)
    return own_title(cfg, base) if "title" not in raw else cfg


def own_title(cfg: AtlasConfig, base: AtlasConfig) -> AtlasConfig:
    """``cfg`` titled after its models when they are not its preset's (a lab's own models under the demo
    preset are not "EfficientNet-Lite0 on bundled photos")."""
    if cfg.model and cfg.title == base.title and cfg.models != base.models:
        return replace(cfg, title=f"Feature-visualization atlas: {', '.join(cfg.models)}")
    return cfg


def load_config(path: str | Path) -> AtlasConfig:
    """Read a TOML configuration file; a missing or malformed file is an :class:`AtlasError`."""
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder, a device, a pipe
            raise AtlasError(f"config file {str(path)!r} is not a regular file; name a .toml file with --config")
        raise AtlasError(f"config file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    cfg = config_from_mapping(raw, source=path.name)
    if "classes" not in raw and "preset" not in raw:
        log.warning("config file %r sets no classes and no preset: every class of the model is planned (%s); "
                    "set classes = [...] (or preset = \"demo\") to choose", str(path),
                    "the file is empty, so all defaults" if not raw else "1000 for ImageNet models")
    return cfg


def resolve_config(preset: Optional[str] = None, config: Optional[str] = None, *, model: Optional[str] = None,
                   methods: Optional[str] = None, classes: Optional[str] = None, seeds: Optional[str] = None,
                   checkpoint: Sequence[str] = (), labels: Optional[str] = None, **overrides) -> AtlasConfig:
    """The configuration the CLI uses: a preset (default ``demo``), or a TOML file, plus overrides.

    ``model``, ``methods``, ``classes`` and ``seeds`` are the command line's comma-separated lists (classes
    may be ids, names, ranges ``0-9`` or ``all``), checked like the file's keys. Each ``checkpoint`` defines a
    model named after its file (``runs/leafnet.pt`` -> ``leafnet``) of architecture ``model`` with class
    names ``labels`` (as a ``[model.<name>]`` table) and builds those models, every class unless ``classes``
    says otherwise; ``labels`` alone sets the labels of the models the file defines. ``site``, ``assets_url``
    and ``site_url`` change the ``[site]`` table's folder and addresses.
    """
    if config is not None:
        cfg = load_config(config)
        if preset is not None:
            raise AtlasError("give either --preset or --config (a config file may say preset = \"...\")")
    else:
        cfg = PRESETS.get(preset or "demo")()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "data" in overrides and isinstance(overrides["data"], str):
        overrides["data"] = {"pool": overrides["data"]}
    site = {k: overrides.pop(k) for k in ("site", "assets_url", "site_url") if k in overrides}
    if site:
        names = {"site": "folder", "assets_url": "assets_url", "site_url": "url"}
        overrides["site"] = {names[k]: v for k, v in site.items()}
    # command-line values pass the same validator as a file's (``~`` expanded, a file is not a folder, ...)
    if overrides:
        cfg = build(AtlasConfig, overrides, Place(source="the command line", options=True), base=cfg)
    raw: dict = {}
    for key, value in (("methods", methods), ("classes", classes), ("seeds", seeds)):
        if value is not None:
            items = [v.strip() for v in value.split(",") if v.strip()]
            if key == "seeds":
                items = [int(v) if v.lstrip("-").isdigit() else v for v in items]
            raw[key] = "all" if key == "classes" and items == ["all"] else items
    tables = {name: {k: v for k, v in asdict(spec).items() if v is not None} for name, spec in cfg.model}
    if checkpoint:
        if not model:
            raise AtlasError("--checkpoint needs --model, the architecture it was trained with "
                             "(e.g. --model timm:resnet18)")
        names = []
        for path in checkpoint:
            name = Path(path).stem
            if name in names:
                raise AtlasError(f"two checkpoints are named {name!r}; give them different file names (the file "
                                 f"name is the model's name)")
            names.append(name)
            tables[name] = {"arch": model, "checkpoint": path, **({"labels": labels} if labels else {})}
        raw["models"] = names
        raw.setdefault("classes", "all")  # the preset's (or file's) classes are another model's
    elif model is not None:
        raw["models"] = [m.strip() for m in model.split(",") if m.strip()]
    elif labels is not None:
        if not cfg.model:
            raise AtlasError("--labels names the classes of a model defined by --checkpoint or a [model.<name>] table")
        for table in tables.values():
            table["labels"] = labels
    if tables != {name: {k: v for k, v in asdict(spec).items() if v is not None} for name, spec in cfg.model}:
        raw["model"] = tables
    if not raw:
        return cfg
    return own_title(build(AtlasConfig, raw, Place(source="command line"), base=cfg), cfg)
