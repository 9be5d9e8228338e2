"""Reference thumbnails: the pipeline stores each class's real images for the site (a cached stage), and
the site finds them from the configuration alone, without opening the pool."""
import io

import pytest
from PIL import Image

from atlas.data import open_pool
from atlas.pipeline import Runner, Store, make_plan
from atlas.pipeline.references import COUNT, SIZE, class_reference_files, store_class_references
from helpers import quick_config


def test_thumbnails_are_stored_once_per_class(tmp_path):
    cfg = quick_config(tmp_path, classes=(285, 967))
    store = Store(cfg.store)
    opened = []

    def pool():
        opened.append(1)
        return open_pool("bundled")

    assert store_class_references(cfg, store, pool, [285, 967, 1], progress=False) == 2  # class 1: no photo
    files = class_reference_files(cfg, store, 285)
    assert len(files) == min(COUNT, cfg.data.references)
    with Image.open(io.BytesIO(files[0].read_bytes())) as img:
        assert img.format == "WEBP" and img.size == (SIZE, SIZE)
    # distinct crops, not one image repeated
    assert len({f.read_bytes() for f in files}) == len(files)
    assert class_reference_files(cfg, store, 1) == []
    assert len(opened) == 1
    # everything present: the pool is not even opened
    assert store_class_references(cfg, store, lambda: pytest.fail("pool opened"), [285, 967], progress=False) == 2


def test_an_unusable_pool_is_not_fatal(tmp_path):
    from atlas.errors import AtlasError

    cfg = quick_config(tmp_path, classes=(285,))

    def broken():
        raise AtlasError("data folder '/nope' does not exist")

    assert store_class_references(cfg, Store(cfg.store), broken, [285], progress=False) == 0


def test_runner_stores_references_of_the_planned_classes(tmp_path, monkeypatch):
    """Runner.run ends with the reference stage (the jobs themselves are already in the store here)."""
    from helpers import fake_visualization

    cfg = quick_config(tmp_path, classes=(285, 665))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job))
    Runner(cfg, store, device="cpu", progress=False).run(plan.jobs)
    assert len(class_reference_files(cfg, store, 285)) > 0
    assert len(class_reference_files(cfg, store, 665)) > 0
