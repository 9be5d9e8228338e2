import dataclasses

import pytest

from atlas.config import (AtlasConfig, DataConfig, PRESETS, SiteConfig, config_from_mapping, freeze_settings,
                          load_config, resolve_config, stable_hash)
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


def test_site_table_its_shorthand_and_its_addresses(tmp_path):
    """``[site]`` holds the pages' folder and the addresses of both trees; ``site = "x"`` is its folder."""
    assert config_from_mapping({"site": "out"}).site == SiteConfig(folder="out")
    cfg = config_from_mapping({"site": {"folder": "out", "url": "https://lab.github.io/atlas",
                                        "assets_url": "https://storage.example.org/my-atlas/"}})
    assert cfg.site.url == "https://lab.github.io/atlas/"  # made a folder address
    assert cfg.site.assets_path == "out-assets" and cfg.site.external_assets
    assert config_from_mapping({"preset": "demo", "site": "elsewhere"}).site.folder == "elsewhere"
    with pytest.raises(AtlasError, match="site.assets_url needs site.url"):
        config_from_mapping({"site": {"assets_url": "https://storage.example.org/a/"}})
    with pytest.raises(AtlasError, match="must be an http:// or https:// address, got 'storage.example.org'"):
        config_from_mapping({"site": {"url": "storage.example.org"}})
    with pytest.raises(AtlasError, match=r"unknown key in \[site\]: 'asset_url'; did you mean 'assets_url'"):
        config_from_mapping({"site": {"asset_url": "https://a.org/"}})
    cli = resolve_config("demo", None, site="pages", assets_url="https://cdn.example.org/x", site_url="https://a.org/")
    assert (cli.site.folder, cli.site.assets_url, cli.site.url) == ("pages", "https://cdn.example.org/x/", "https://a.org/")
    with pytest.raises(AtlasError, match="needs site.url"):
        resolve_config("demo", None, assets_url="https://cdn.example.org/x")
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text('site = "s"\n[data]\npool = "bundled"\n')
    assert load_config(cfg_file).site.folder == "s"


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


def test_stable_hash_is_pinned():
    """Every job key is a stable_hash: its output for a fixed object must never change."""
    from atlas.config import canonical_json

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: float = 0.5
        name: str = "p"

    obj = {"b": [1, 2.0, "x", None, True, float("nan")], "a": Point(), "c": ((1, "z"),)}
    assert canonical_json(obj) == '{"a":{"name":"p","x":0.5},"b":[1,2.0,"x",null,true,"nan"],"c":[[1,"z"]]}'
    assert stable_hash(obj) == "a46c2eca41810240"  # the hash existing stores were keyed with


def test_canonical_values_are_spliced_as_the_same_json_and_a_job_key_is_its_specs_hash():
    """Job keys hash a spec whose shared parts (configuration, target, data) are pre-encoded once
    (``Canonical``): the text must be exactly what encoding the plain values gives, or every store's keys
    would change."""
    from atlas.config import canonical_json
    from atlas.config.hashing import canonical_form
    from atlas.pipeline import make_plan

    plain = {"z": 1, "config": {"b": [1.5, None], "a": "x"}, 3: "three", "target": {"kind": "class"}}
    spliced = dict(plain, config=canonical_form(plain["config"]), target=canonical_form(plain["target"]))
    assert canonical_json(spliced) == canonical_json(plain)
    assert canonical_json(plain) == '{"3":"three","config":{"a":"x","b":[1.5,null]},"target":{"kind":"class"},"z":1}'
    jobs = make_plan(PRESETS.get("demo")()).jobs
    assert len({j.key for j in jobs}) == len(jobs)
    for job in jobs[:: max(1, len(jobs) // 12)]:  # the fast path and Job.spec() agree, batched or alone
        assert job.key == stable_hash(job.spec(), length=20)
        alone = dataclasses.replace(job, batch=1, batch_mates=())
        assert job.base_key == stable_hash(alone.spec(), length=20) == alone.key


def _tables():
    """(dotted path, dataclass) of the configuration and each of its tables."""
    from atlas.config import ClusterConfig, ComputeConfig, MetricsConfig, TargetsConfig

    return [("", AtlasConfig), ("data", DataConfig), ("targets", TargetsConfig), ("metrics", MetricsConfig),
            ("compute", ComputeConfig), ("cluster", ClusterConfig), ("site", SiteConfig)]


@pytest.mark.parametrize("path, cls", _tables())
def test_every_key_of_every_table_is_checked(path, cls):
    """The one validator reads each field's type: a value of another type is a one-line error naming the
    dotted key (or, for a key with fixed choices, the closest choice)."""
    for f in dataclasses.fields(cls):
        if f.name in dict(_tables()):  # a table: checked field by field below
            continue
        wrong = "three" if f.type in ("int", "float", "Optional[int]", "Optional[float]") else 3
        raw = {f.name: wrong} if not path else {path: {f.name: wrong}}
        with pytest.raises(AtlasError) as err:
            config_from_mapping(raw)
        msg = str(err.value)
        key = f"{path}.{f.name}" if path else f.name
        assert "\n" not in msg and (repr(key) in msg or f"unknown {f.name}" in msg), msg


@pytest.mark.parametrize("raw, needle", [
    ({"batch_size": 0}, "config key 'batch_size' must be a positive integer, got 0"),
    ({"seeds": [1.5]}, "config key 'seeds' must be a non-empty list of integers, got [1.5]"),
    ({"metrics": {"real_images": 1}}, "config key 'metrics.real_images' must be an integer >= 2, got 1"),
    ({"metrics": {"clip": ["a"]}}, """config key 'metrics.clip' must be ["model", "pretrained"], got ['a']"""),
    ({"metrics": {"tsne_classes": []}}, "'metrics.tsne_classes' must be a non-empty list of class ids"),
    ({"targets": {"concepts": -1}}, "config key 'targets.concepts' must be a non-negative integer, got -1"),
    ({"targets": {"neurons": [["blocks.4", -1]]}}, """'targets.neurons' must be a list of ["layer", channel] pairs"""),
    ({"targets": {"kind_methods": {"concepts": ["maco"]}}},
     "unknown target kind in [targets.kind_methods]: 'concepts'; did you mean 'concept'?"),
    ({"targets": {"kind_methods": {"concept": "maco"}}}, "'targets.kind_methods.concept' must be a list of strings"),
    ({"compute": {"precision": "fp16"}}, "unknown precision 'fp16'; did you mean 'bf16' or 'fp32'?"),
    ({"cluster": {"shard": 2}}, "unknown key in [cluster]: 'shard'; did you mean 'shards'?"),
    ({"cluster": {"mem_gb": 0}}, "config key 'cluster.mem_gb' must be a positive integer, got 0"),
    ({"settings": {"maco": 3}}, "config key 'settings.maco' must be a table, got 3"),
    ({"preset": 3}, "config key 'preset' must be a preset name, got 3"),
])
def test_rules_of_single_keys(raw, needle):
    with pytest.raises(AtlasError) as err:
        config_from_mapping(raw)
    assert needle in str(err.value)


def test_values_are_stored_frozen_and_unchanged():
    """Lists become tuples and tables sorted pairs; ints stay ints (``lr = 1`` hashes as it always did)."""
    cfg = config_from_mapping({"preset": "demo", "classes": "all", "targets": {
        "neurons": [["blocks.6", 3]], "kind_methods": {"neuron": ["maco"], "concept": ["vital", "maco"]},
        "concept_settings": {"visualise": 2, "images": 4}}, "settings": {"vital": {"betas": [0.1, 0.2]}}})
    assert cfg.classes is None and cfg.targets.neurons == (("blocks.6", 3),)
    assert cfg.targets.kind_methods == (("concept", ("vital", "maco")), ("neuron", ("maco",)))
    assert cfg.targets.concept_settings == (("images", 4), ("visualise", 2))
    assert cfg.method_settings("vital") == {"betas": (0.1, 0.2), "steps": 256, "neuron_steps": 32, "warmup": 8}
    assert cfg.targets.random_neurons == 2  # the preset's other [targets] keys are kept


def test_method_settings_and_stage_settings_share_the_validator():
    from atlas.config import craft_config, neuron_config
    from atlas.methods.base import METHODS

    maco = METHODS.get("maco")
    assert maco.config({"lr": 1}).lr == 1 and isinstance(maco.config({"lr": 1}).lr, int)
    assert METHODS.get("vital").config({"betas": [0.1, 0.2]}).betas == (0.1, 0.2)
    for overrides, needle in [({"steps": 0}, "setting 'steps' of method maco must be a positive integer, got 0"),
                              ({"crops": -1}, "setting 'crops' of method maco must be a positive integer"),
                              ({"lr": float("nan")}, "setting 'lr' of method maco must be a finite number, got nan"),
                              ({"lr": "x"}, "setting 'lr' of method maco must be a non-negative number, got 'x'"),
                              ({"stesp": 3}, "unknown setting of method maco: 'stesp'; did you mean 'steps'?")]:
        with pytest.raises(AtlasError, match=needle.replace("?", r"\?").replace("(", r"\(")):
            maco.config(overrides)
    with pytest.raises(AtlasError, match="bad settings for method plugin_inversion: grow must be"):
        METHODS.get("plugin_inversion").config({"grow": "sideways"})
    bad = config_from_mapping({"targets": {"concept_settings": {"map_percentile": 100},
                                           "neuron_settings": {"clusters": 1}}})
    with pytest.raises(AtlasError, match=r"'targets.concept_settings.map_percentile' must be a number in \(0, 100\)"):
        craft_config(bad)
    with pytest.raises(AtlasError, match="'targets.neuron_settings.clusters' must be an integer >= 2, got 1"):
        neuron_config(bad)
    assert craft_config(config_from_mapping({"preset": "demo"})).images == 8


def test_a_file_setting_batch_size_drops_the_presets_per_method_batch_sizes():
    """The demo's [batch_sizes] refine its own batch_size; a file that sets batch_size means it for every
    method, unless it also sets batch_sizes."""
    demo = config_from_mapping({"preset": "demo"})
    assert dict(demo.batch_sizes)["vital"] == 6 and demo.batch_size_of("vital") == 6
    assert demo.batch_size_of("deepinversion") == demo.batch_size
    flat = config_from_mapping({"preset": "demo", "batch_size": 3})
    assert flat.batch_sizes == () and flat.batch_size_of("vital") == 3
    both = config_from_mapping({"preset": "demo", "batch_size": 3, "batch_sizes": {"maco": 5}})
    assert both.batch_size_of("maco") == 5 and both.batch_size_of("vital") == 3
