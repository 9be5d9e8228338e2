"""Configuration: what an atlas contains and how it is computed (the bottom room of atlas).

hashing   ``stable_hash``, the content hash behind every key
schema    the frozen dataclasses (``AtlasConfig`` and its tables)
stages    the concept (CRAFT) and neuron stages' settings
presets   ``demo``, ``paper``, ``lens``
validate  the one validator that checks a mapping against a dataclass's fields
load      TOML files and mappings -> ``AtlasConfig``
"""
from .hashing import canonical_json, stable_hash
from .load import config_from_mapping, load_config, resolve_config
from .presets import (DEMO_CLASSES, PAPER_JUDGES, PAPER_TSNE_CLASSES, PRESETS,
                      VITAL_DEMO, demo_preset, lens_preset, paper_preset)
from .schema import (EXECUTORS, PRECISIONS, AtlasConfig, ClusterConfig, ComputeConfig, DataConfig, MetricsConfig,
                     ModelConfig, Settings, SiteConfig, TargetsConfig, freeze_settings, pool_location)
from .stages import CraftConfig, LayerConfig, NeuronConfig, craft_config, layer_config, neuron_config

__all__ = [
    "canonical_json", "stable_hash", "config_from_mapping", "load_config", "resolve_config",
    "DEMO_CLASSES", "PAPER_JUDGES", "PAPER_TSNE_CLASSES", "PRESETS",
    "VITAL_DEMO", "demo_preset", "lens_preset", "paper_preset",
    "EXECUTORS", "PRECISIONS", "AtlasConfig", "ClusterConfig", "ComputeConfig", "DataConfig", "MetricsConfig",
    "ModelConfig", "Settings", "SiteConfig", "TargetsConfig", "freeze_settings", "pool_location",
    "CraftConfig", "LayerConfig", "NeuronConfig", "craft_config", "layer_config", "neuron_config",
]
