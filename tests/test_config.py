import dataclasses

import pytest

from atlas.config import (AtlasConfig, DataConfig, PRESETS, config_from_mapping, freeze_settings, load_config,
                          resolve_config, stable_hash)
from atlas.errors import AtlasError


def test_stable_hash_ignores_dict_order_and_sees_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash(DataConfig()) == stable_hash(DataConfig())
    assert stable_hash(DataConfig(references=3)) != stable_hash(DataConfig())


def test_presets_exist_and_are_frozen():
    assert {"demo", "paper", "lens"} <= set(PRESETS.names())
    demo = PRESETS.get("demo")()
    assert demo.models == ("efficientnet_lite0",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.seeds = (1,)


def test_toml_overrides_a_preset(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('preset = "demo"\nseeds = [0, 1]\nclasses = [285, "espresso"]\n'
                 '[data]\nreferences = 3\n[settings.maco]\nsteps = 7\n')
    cfg = load_config(f)
    assert cfg.seeds == (0, 1)
    assert cfg.classes == (285, "espresso")
    assert cfg.data.references == 3 and cfg.data.pool == "bundled"
    assert cfg.method_settings("maco")["steps"] == 7
    assert cfg.method_settings("maco")["crops"] == 4  # the preset's other settings are kept


@pytest.mark.parametrize("text, needle", [
    ("modles = ['x']", "models"),
    ("seeds = 'zero'", "seeds"),
    ("batch_size = 0", "batch_size"),
    ("[data]\nrefs = 3", "references"),
    ("classes = [true]", "classes"),
    ("preset = 'dem'", "demo"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_toml_is_one_line_error(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(AtlasError) as err:
        load_config(f)
    msg = str(err.value)
    assert "\n" not in msg and needle in msg


def test_missing_config_file(tmp_path):
    with pytest.raises(AtlasError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_resolve_config_data_override():
    cfg = resolve_config("demo", None, data="/some/imagenet")
    assert cfg.data.pool == "/some/imagenet"
    with pytest.raises(AtlasError, match="did you mean 'demo'"):
        resolve_config("demoo")


def test_freeze_settings_sorted():
    assert freeze_settings({"b": {"y": 1, "x": [1, 2]}, "a": {}}) == (("a", ()), ("b", (("x", (1, 2)), ("y", 1))))
    assert AtlasConfig(settings=freeze_settings({"maco": {"steps": 3}})).method_settings("maco") == {"steps": 3}
    assert config_from_mapping({}).name == "custom"


def test_data_eval_pool_is_a_path_and_changes_no_job_key():
    from atlas.config import config_from_mapping
    from atlas.errors import AtlasError

    cfg = config_from_mapping({"preset": "demo", "data": {"eval_pool": "/data/imagenet/val"}})
    assert cfg.data.eval_pool == "/data/imagenet/val" and cfg.data.pool == "bundled"
    with pytest.raises(AtlasError, match="data.eval_pool"):
        config_from_mapping({"preset": "demo", "data": {"eval_pool": 3}})
