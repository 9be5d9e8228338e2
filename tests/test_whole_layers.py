"""Whole layers, facets, labels and the concept map, piece by piece (tiny model; no build). The site built
from them is tested in ``tests/test_layer_site.py``."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from atlas.concepts.labels import concentration, data_label
from atlas.config import config_from_mapping
from atlas.errors import AtlasError
from atlas.optim import OptimizerSpec, TargetRNG, optimize
from atlas.optim import objectives as obj
from atlas.optim.param import PixelParam
from atlas.pipeline.planner import make_plan
from atlas.pipeline.sharding import plan_batches
from atlas.targets import Target


def layer_config(tmp_path, **layer_settings):
    raw = {"preset": "demo", "classes": [285], "methods": ["maco", "vital"], "store": str(tmp_path / "store"),
           "batch_size": 4, "left_out": {}, "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "kind_methods": {},
                                        "layers": ["blocks.0"], "neurons": [["blocks.0", 3]],
                                        "layer_settings": layer_settings}}
    return config_from_mapping(raw)


# ------------------------------------------------------------------------------------------- targets
def test_facets_name_their_targets_and_keep_plain_keys():
    plain = Target.of_neuron("blocks.0", 3)
    neg = Target("neuron", layer="blocks.0", channel=3, facet="negative")
    div = Target("neuron", layer="blocks.0", channel=3, facet="diverse-1", fit_hash="abc")
    assert plain.to_dict() == {"kind": "neuron", "layer": "blocks.0", "channel": 3}  # old keys unchanged
    assert neg.slug() == "neuron-blocks.0-0003-negative" and div.slug() == "neuron-blocks.0-0003-diverse-1"
    assert div.diverse_index == 1 and neg.diverse_index is None
    assert div.together() == ("diverse", "blocks.0", 3, "abc") and neg.together() is None
    assert div.plain() == plain and Target.from_dict(div.to_dict()) == div
    with pytest.raises(ValueError, match="bad facet"):
        Target("class", class_id=1, facet="negative")
    with pytest.raises(ValueError, match="bad facet"):
        Target("neuron", layer="x", channel=0, facet="diverse")


# ------------------------------------------------------------------------------------------- plan
def test_a_layer_plans_every_channel_with_its_methods_and_settings(tmp_path):
    cfg = layer_config(tmp_path, diversity=2, methods=["maco", "vital"], settings={"maco": {"steps": 5}})
    plan = make_plan(cfg)
    layer_jobs = [j for j in plan.jobs if j.target.layer == "blocks.0"]
    maco = [j for j in layer_jobs if j.method == "maco"]
    # 16 channels maximised + 16 negative + 16 x 2 diverse; channel 3 is also listed: planned once, with the
    # listed neurons' settings (the first source that asks for a target decides)
    assert len(maco) == 64 and len({j.target for j in maco}) == 64
    assert {j.config.steps for j in maco if j.target != Target.of_neuron("blocks.0", 3)} == {5}
    assert next(j for j in maco if j.target == Target.of_neuron("blocks.0", 3)).config.steps == 48
    vital = [j for j in layer_jobs if j.method == "vital"]
    assert all(j.target.facet is None for j in vital) and len(vital) == 16  # no facets: its objective has none
    assert plan.jobs[0].target.kind == "class"  # classes untouched


def test_layer_settings_errors_are_one_line(tmp_path):
    with pytest.raises(AtlasError, match="does not visualise neurons"):
        make_plan(layer_config(tmp_path, methods=["deepinversion"]))
    with pytest.raises(AtlasError, match="not one of the layers' methods"):
        make_plan(layer_config(tmp_path, settings={"fourier": {"steps": 2}}))
    with pytest.raises(AtlasError, match="stepz"):
        make_plan(layer_config(tmp_path, settings={"maco": {"stepz": 2}}))
    cfg = config_from_mapping({"preset": "demo", "store": str(tmp_path / "s"), "targets": {"layers": ["blocks.60"]}})
    with pytest.raises(AtlasError, match="unknown layer"):
        make_plan(cfg)


def test_diversity_sets_are_never_split_between_batches(tmp_path):
    plan = make_plan(layer_config(tmp_path, diversity=3, methods=["maco"]))
    batches = [b for b in plan_batches(plan.jobs, 4) if b.jobs[0].target.layer == "blocks.0"]
    sets = {}
    for i, b in enumerate(batches):
        assert len(b) <= 4
        for j in b.jobs:
            if j.target.together() is not None:
                sets.setdefault(j.target.together(), set()).add(i)
    assert len(sets) == 16 and all(len(where) == 1 for where in sets.values())
    plain = [j for j in plan.jobs if j.method == "maco" and j.target.kind == "class"]
    assert [len(b) for b in plan_batches(plain, 4)] == [1]  # targets without sets: cut as before


# ------------------------------------------------------------------------------------------- objectives
def _gram_cos(model, images, layer):
    with torch.no_grad():
        acts = model.activations(images, [layer])[layer]
    return float(obj.gram_similarity(acts, images.shape[0])[0, 1])


def test_diversity_pushes_a_sets_gram_matrices_apart(tiny):
    def run(weight):
        rng = TargetRNG([1, 2], "cpu")
        objective = obj.channel("relu2", [5, 5])
        if weight:
            objective = objective + obj.diversity("relu2", ["a", "a"], weight)
        res = optimize(tiny, PixelParam(rng, 32, init_std=0.01), objective, 30, rng, OptimizerSpec("adam", lr=0.05))
        return _gram_cos(tiny, res.images, "relu2")

    assert run(10.0) < run(0.0) - 0.05


def test_negative_weights_lower_the_channel_and_diversity_ignores_other_groups(tiny):
    rng = TargetRNG([3, 4], "cpu")
    res = optimize(tiny, PixelParam(rng, 32), obj.per_target_weights(obj.channel("relu2", [5, 5]), [1.0, -1.0]), 12,
                   rng, OptimizerSpec("adam", lr=0.05))
    with torch.no_grad():
        a = tiny.activations(res.images, ["relu2"])["relu2"][:, 5].mean((1, 2))
    assert a[0] > a[1]
    x = torch.rand(2, 3, 32, 32)
    ev = obj.Evaluation(x, x, None, tiny.activations(x, ["relu2"]), 2)
    assert torch.equal(obj.diversity("relu2", ["a", "b"], 5.0)(ev), torch.zeros(2))
    assert (obj.diversity("relu2", ["a", "a"], 5.0)(ev) < 0).all()


def test_the_loop_stops_at_the_objectives_layer_with_the_same_gradients(tiny):
    """A channel objective reads no logits: the forward pass ends at its layer, and the images are those of
    the full pass (the layers above contribute nothing to its gradient)."""
    seen = []
    hook = tiny.module.fc.register_forward_hook(lambda m, i, o: seen.append(1))
    try:
        def run(objective):
            rng = TargetRNG([5], "cpu")
            return optimize(tiny, PixelParam(rng, 32), objective, 4, rng, OptimizerSpec("adam", lr=0.05)).images

        stopped = run(obj.channel("relu1", [2]))
        assert seen == []
        full = run(obj.channel("relu1", [2]) + obj.Objective(lambda ev: 0 * ev.logits.sum(1), (), "logits"))
        assert len(seen) == 4
    finally:
        hook.remove()
    assert torch.allclose(stopped, full, atol=1e-6)


# ------------------------------------------------------------------------------------------- labels
def test_concentration_and_label_text():
    assert concentration([10], 6) == 1.0
    assert concentration([5, 5], 2) == pytest.approx(0.0)
    assert concentration([2, 2, 2, 2, 2], 5) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < concentration([7, 2, 1], 6) < 1.0
    names = ["a", "b", "c", "tabby"]
    sources = ["3/x", "3/y", "1/z", "3/w", "2/v"]
    label = data_label(sources, names, census={"1": 10, "2": 10, "3": 5}, n=5)
    assert label.text == "tabby 60%, b 20%, c 20%" and label.short == "tabby 60%"
    assert label.lift == pytest.approx(0.6 / 0.2)
    assert data_label([], names).text == ""


# ------------------------------------------------------------------------------------------- bottom examples
def test_bottom_examples_come_from_the_same_sweep(tiny):
    from atlas.data import open_pool
    from atlas.data.patches import top_patches

    pool = open_pool("bundled")
    calls = []
    ex = top_patches(tiny, pool, "relu2", [1, 4], 5, patch=16, stride=16, max_images=10, bottom=True,
                     progress=calls.append)[4]
    assert sum(calls) == 10  # one pass over the 10 images for top and bottom
    assert len(ex.negative_scores) == 5 and ex.negative_scores == sorted(ex.negative_scores)
    assert ex.negative_scores[0] <= ex.scores[-1] and ex.scores == sorted(ex.scores, reverse=True)


# ------------------------------------------------------------------------------------------- concept map
def test_concept_map_is_cached_and_groups_classes(tmp_path):
    from atlas.concepts.concept_map import class_groups, concept_map
    from atlas.models.classes import imagenet_classes
    from atlas.pipeline.store import Store

    rng = np.random.default_rng(0)
    banks = {c: np.abs(rng.normal(size=(3, 8))) for c in (1, 2, 3)}
    banks[3][0] = banks[1][0] * 2  # same direction: must land next to each other
    store = Store(tmp_path / "store")
    m = concept_map(store, "m", banks)
    pts = {(c, k): (x, y) for c, k, x, y in m["points"]}
    assert len(pts) == 9 and all(-1 <= v <= 1 for xy in pts.values() for v in xy)
    d = {key: np.hypot(*np.subtract(pts[(1, 0)], xy)) for key, xy in pts.items() if key != (1, 0)}
    assert min(d, key=d.get) == (3, 0)
    assert concept_map(store, "m", banks) == m and len(list((tmp_path / "store").rglob("map.json"))) == 1
    names, wnids = imagenet_classes()
    assert class_groups([285, 967], names, wnids) == {285: "Egyptian cat", 967: "espresso"}
    many = class_groups(list(range(0, 1000, 50)), names, wnids)
    assert many[200] == "dogs" and many[950] == "food" and many[500] == "objects"


def test_concept_map_uses_umap_when_it_is_installed(tmp_path):
    """UMAP is an optional extra (``atlas-fv[map]``): skipped where umap-learn is not installed."""
    pytest.importorskip("umap")
    from atlas.embedding import map_2d

    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(20, 16)))
    xy, name = map_2d(x, seed=0)
    assert name == "UMAP (cosine)" and xy.shape == (20, 2) and np.abs(xy).max() == pytest.approx(1.0)
    again, _ = map_2d(x, seed=0)
    assert np.allclose(xy, again)  # deterministic for a seed
