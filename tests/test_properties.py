"""Property-based tests (hypothesis): the config loader never crashes on odd input (it returns a config
or raises a one-line AtlasError), and slugs/paths can never escape the output folder."""
import posixpath
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from atlas.config import AtlasConfig, config_from_mapping, stable_hash
from atlas.errors import AtlasError
from atlas.sitegen import paths
from atlas.targets import Target, safe_slug

SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=10)
keys = st.sampled_from(["preset", "models", "classes", "methods", "seeds", "data", "settings", "targets",
                        "batch_size", "store", "site", "title", "download", "device", "bogus"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_config_loader_returns_a_config_or_a_one_line_error(raw):
    try:
        cfg = config_from_mapping(raw)
    except AtlasError as err:
        assert "\n" not in str(err) and str(err)
    else:
        assert isinstance(cfg, AtlasConfig)
        stable_hash(cfg)  # every accepted config is hashable into a job key


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_safe_slug_is_safe_and_idempotent(text):
    s = safe_slug(text)
    assert SAFE.match(s), s
    assert s not in (".", "..") and "/" not in s and "\\" not in s
    assert safe_slug(s) == s


@settings(max_examples=300, deadline=None)
@given(layer=st.text(max_size=20), image=st.text(max_size=20), model=st.text(min_size=1, max_size=20),
       method=st.text(min_size=1, max_size=12), channel=st.integers(0, 10**6), cid=st.integers(0, 9999),
       seed=st.integers(0, 10**6))
def test_site_paths_stay_inside_the_site(layer, image, model, method, channel, cid, seed):
    for t in (Target.of_neuron(layer, channel), Target.of_image(image, cid), Target.of_class(cid),
              Target.of_concept(cid, 3, layer)):
        assert SAFE.match(t.slug())
        page, key = paths.figure_page(model, method, t, seed), "0123456789abcdef0123"
        for p in (page, paths.figure_stem(model, method, t, seed, key) + ".png", paths.versioned(page, key),
                  paths.class_page(model, cid), paths.model_page(model), paths.method_page(method)):
            norm = posixpath.normpath(p)
            assert not norm.startswith("..") and not norm.startswith("/") and norm == p, p
        # a versioned page is told apart from its plain permalink, whatever dots the slugs hold
        assert paths.unversioned(paths.versioned(page, key)) == (page, key)
        assert paths.unversioned(page) == (page, None)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_stable_hash_ignores_key_order(d):
    assert stable_hash(d) == stable_hash(dict(reversed(list(d.items()))))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["steps", "lr", "crops", "noise", "image_size", "bogus"]), scalars, max_size=4))
def test_method_settings_are_checked(overrides):
    from atlas.methods import METHODS

    for name in METHODS.names():
        try:
            cfg = METHODS.get(name).config(overrides)
        except AtlasError as err:
            assert "\n" not in str(err)
        else:
            for k, v in overrides.items():
                assert getattr(cfg, k) == v or (isinstance(v, int) and getattr(cfg, k) == float(v))
