import pytest

from atlas.errors import AtlasError
from atlas.registry import Registry


def test_registry_get_and_close_match():
    r = Registry("widget")
    r.register("alpha")(1)
    r.add("beta", 2)
    assert r.get("beta") == 2 and r.names() == ["alpha", "beta"] and "alpha" in r
    with pytest.raises(AtlasError, match="unknown widget 'alpah'; did you mean 'alpha'"):
        r.get("alpah")
    with pytest.raises(ValueError):
        r.add("alpha", 3)
