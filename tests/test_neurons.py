"""Neuron selection (activation x gradient, top-k per class, fixed random sample), planning of concept and
neuron targets, dataset examples, polysemantic clusters and the cluster objective."""
import numpy as np
import pytest
import torch

from atlas.concepts.clusters import neuron_clusters, split_neuron
from atlas.concepts.examples import find_clusters, find_examples, neuron_examples
from atlas.concepts.neurons import PlanResources, random_channels, select_neurons
from atlas.config import NeuronConfig
from atlas.config import config_from_mapping
from atlas.data import BundledPool
from atlas.errors import AtlasError
from atlas.pipeline import Store, make_plan
from atlas.relevance import channel_attribution


def _cfg(tmp_path, **targets):
    return config_from_mapping({"preset": "demo", "classes": [285, 967], "store": str(tmp_path / "store"),
                                "targets": {"concepts": 0, "random_neurons": 0, "layers": [], **targets}})


def test_act_x_grad_is_weight_times_mean_activation_for_a_linear_head(tiny):
    x = torch.rand(3, 3, 32, 32)
    r = channel_attribution("act_x_grad", tiny, x, [1, 2, 3], "relu2")
    a = tiny.features(x, ["relu2"])["relu2"].mean((2, 3))
    expected = a * tiny.module.fc.weight[[1, 2, 3]]  # logit = w . mean(A) + b  =>  sum_hw A dlogit/dA = w * mean(A)
    torch.testing.assert_close(r, expected, rtol=1e-4, atol=1e-6)


def test_random_sample_is_fixed_distinct_and_per_layer():
    a = random_channels(320, 5, "efficientnet_lite0", "blocks.6")
    assert a == random_channels(320, 5, "efficientnet_lite0", "blocks.6") and len(set(a)) == 5
    assert all(0 <= c < 320 for c in a) and a == sorted(a)
    assert a != random_channels(320, 5, "efficientnet_lite0", "blocks.5")
    assert random_channels(3, 10, "m", "l") == [0, 1, 2]


def test_top_k_and_random_selection_with_lite0(lite0, tmp_path):
    cfg = _cfg(tmp_path, top_neurons=2, random_neurons=3, neurons=[["blocks.6", 7]],
               neuron_settings={"relevance_images": 2, "relevance": "act_x_grad"})
    res = PlanResources(cfg, "efficientnet_lite0")
    res.__dict__["model"] = lite0
    sel = select_neurons(cfg, "efficientnet_lite0", [285, 967], res)
    # top-2 per class: the channels with the largest mean activation x gradient over the class's images
    x = BundledPool().reference_images(285, 2, 224, seed=0)
    rel = channel_attribution("act_x_grad", lite0, x, [285, 285], "blocks.6").mean(0)
    top = [int(c) for c in torch.argsort(rel, descending=True)[:2]]
    assert [c for (layer, c), why in sel.reasons.items() if "for class 285" in " ".join(why)] == top
    assert sum("random sample" in why for why in sel.reasons.values()) == 3
    assert sel.reasons[("blocks.6", 7)][0] == "listed"
    # cached: a new plan needs no model
    res2 = PlanResources(cfg, "efficientnet_lite0")
    res2.__dict__["model"] = None
    assert select_neurons(cfg, "efficientnet_lite0", [285, 967], res2).reasons == sel.reasons


def test_plan_has_concepts_selected_neurons_and_clusters_once(lite0, tmp_path, monkeypatch):
    import atlas.models

    monkeypatch.setattr(atlas.models, "load_model", lambda *a, **k: lite0)
    cfg = _cfg(tmp_path, concepts=3, top_neurons=1, random_neurons=2, neurons=[["blocks.6", 7]],
               concept_settings={"visualise": 2},
               neuron_settings={"relevance_images": 2, "polysemantic": [["blocks.6", 7]], "clusters": 3},
               kind_methods={"concept": ["maco"], "neuron": ["maco"]})
    plan = make_plan(cfg)
    kinds = {}
    for j in plan.jobs:
        kinds.setdefault((j.method, j.target.kind), []).append(j.target)
    concepts = kinds[("maco", "concept")]
    assert sorted((t.class_id, t.concept) for t in concepts) == [(285, 0), (285, 1), (967, 0), (967, 1)]
    assert ("fourier", "concept") not in kinds and ("fourier", "neuron") not in kinds
    assert len(kinds[("fourier", "class")]) == 2
    neurons = kinds[("maco", "neuron")]
    assert len(neurons) == len(set(neurons))  # no duplicate jobs
    assert sum(t.cluster is not None for t in neurons) == 3
    assert sum(t.channel == 7 and t.cluster is None for t in neurons) == 1
    assert all(t.fit_hash for t in concepts) and len({t.fit_hash for t in concepts}) == 1
    # the concept jobs' keys follow the CRAFT settings; the class jobs' keys do not
    other = make_plan(_cfg(tmp_path, concepts=3, top_neurons=1, random_neurons=2, neurons=[["blocks.6", 7]],
                           concept_settings={"visualise": 2, "images": 7},
                           neuron_settings={"relevance_images": 2, "polysemantic": [["blocks.6", 7]], "clusters": 3},
                           kind_methods={"concept": ["maco"], "neuron": ["maco"]}))
    keys = lambda p, kind: {j.key for j in p.jobs if j.target.kind == kind}  # noqa: E731
    assert keys(plan, "class") == keys(other, "class") and not keys(plan, "concept") & keys(other, "concept")


@pytest.mark.parametrize("targets, needle", [
    ({"concept_settings": {"imgaes": 3}}, "unknown key in [targets.concept_settings]: 'imgaes'; did you mean 'images'"),
    ({"concept_settings": {"images": 0}}, "'targets.concept_settings.images' must be a positive integer, got 0"),
    ({"neuron_settings": {"relevance": "lrpp"}, "top_neurons": 1}, "unknown attribution method 'lrpp'"),
    ({"neuron_settings": {"polysemantic": [["blocks.6"]]}}, "'targets.neuron_settings.polysemantic' must be a list of"),
    ({"kind_methods": {"concepts": ["maco"]}}, "unknown target kind in [targets.kind_methods]: 'concepts'"),
    ({"kind_methods": {"concept": ["maco2"]}}, "unknown method 'maco2'"),
])
def test_bad_concept_and_neuron_settings_are_one_line_errors(tmp_path, targets, needle):
    with pytest.raises(AtlasError) as err:
        make_plan(_cfg(tmp_path, **targets))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_model_without_default_concept_layer_is_skipped_with_the_reason(tmp_path):
    """A preset asks for concepts on every model; one without a concept layer gets none, and the plan says why."""
    from atlas.concepts.layers import concept_layer
    from atlas.errors import SourceSkipped

    cfg = config_from_mapping({"preset": "demo", "models": ["timm:resnet18"], "classes": [1],
                               "methods": ["maco"], "targets": {"concepts": 2, "random_neurons": 0, "layers": [], "images": 0}})
    from atlas.concepts.sources import concept_targets

    with pytest.raises(SourceSkipped, match="no default concept layer"):
        concept_targets(cfg, "timm:resnet18", [1])
    plan = make_plan(cfg)
    assert [(m, src) for m, src, _ in plan.source_skips] == [("timm:resnet18", "concept")]
    assert not [j for j in plan.jobs if j.target.kind == "concept"]
    with pytest.raises(AtlasError, match="no default concept layer; set \\[targets\\] concept_layer"):
        concept_layer(cfg, "timm:resnet18")


# ------------------------------------------------------------------------------------------- examples
def test_dataset_examples_stage(lite0, tmp_path):
    store, pool = Store(tmp_path), BundledPool()
    ncfg = NeuronConfig(examples=4, mosaic=3, max_images=8)
    ex = neuron_examples(store, lambda: lite0, lite0.name, pool, "blocks.6", [3, 40], ncfg)
    for c in (3, 40):
        assert len(ex[c].sources) == 4 == len(set(ex[c].sources))
        assert ex[c].scores == sorted(ex[c].scores, reverse=True)
    cfg = config_from_mapping({"preset": "demo", "targets": {"neuron_settings": {"examples": 4, "mosaic": 3,
                                                                                   "max_images": 8}}})
    found = find_examples(store, lite0.name, cfg)
    assert set(found) == {("blocks.6", 3), ("blocks.6", 40)}
    from PIL import Image

    assert Image.open(found[("blocks.6", 3)] / "mosaic.png").size == (3 * 48, 48)
    # stored: no model needed the second time
    again = neuron_examples(store, lambda: pytest.fail("model loaded"), lite0.name, pool, "blocks.6", [40], ncfg)
    assert again[40].sources == ex[40].sources


def test_split_neuron_separates_two_planted_groups():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 6, generator=g) * 0.05 + torch.tensor([1.0, 1, 0, 0, 0, 0])
    b = torch.randn(30, 6, generator=g) * 0.05 + torch.tensor([1.0, 0, 0, 0, 1, 1])
    found = {"features": torch.cat([a, b]), "scores": np.linspace(2, 1, 60),
             "sources": [f"s{i % 20}" for i in range(60)], "boxes": [(0, 0)] * 60}
    clusters = split_neuron(found, "l", 0, 2, examples=5)
    assert sorted(c["size"] for c in clusters) == [30, 30]
    assert clusters[0]["examples"]["scores"][0] == 2.0  # cluster 0 holds the best patch
    for c in clusters:
        assert len(c["examples"]["sources"]) == 5 == len(set(c["examples"]["sources"]))
    cents = np.array([c["centroid"] for c in clusters])
    assert np.allclose(sorted(cents[:, 1]), [0, 1], atol=0.05)
    with pytest.raises(AtlasError, match="cannot form 2 clusters"):
        split_neuron({**found, "scores": np.ones(1)}, "l", 0, 2, 5)


def test_clusters_of_a_lite0_neuron_and_their_objective(lite0, tmp_path):
    from atlas.config import DataConfig
    from atlas.methods import METHODS, RunContext
    from atlas.targets import Target

    store, pool = Store(tmp_path), BundledPool()
    ncfg = NeuronConfig(examples=3, mosaic=3, max_images=6, clusters=2, cluster_patches=40)
    cl = neuron_clusters(store, lambda: lite0, lite0.name, pool, "blocks.6", [11], ncfg)[11]
    assert len(cl) == 2 and sum(c["size"] for c in cl) == 40
    cfg = config_from_mapping({"preset": "demo", "targets": {"neuron_settings": {
        "examples": 3, "mosaic": 3, "max_images": 6, "clusters": 2, "cluster_patches": 40}}})
    assert set(find_clusters(store, lite0.name, cfg)) == {("blocks.6", 11)}
    ctx = RunContext(model=lite0, data=DataConfig(spectrum_images=8), cache_dir=tmp_path, pool_factory=BundledPool,
                     store=store, config=cfg)
    t = Target("neuron", layer="blocks.6", channel=11, cluster=1)
    refs = ctx.resource("neuron_clusters").references(t, 2)
    assert refs.shape[1:] == (3, 224, 224) and refs.shape[0] == min(2, len(cl[1]["examples"]["sources"])) >= 1
    maco = METHODS.get("maco")
    vis = maco.run(ctx, maco.config({"steps": 10, "crops": 2, "crop_size": 0.5}), [Target.of_neuron("blocks.6", 11), t],
                   [0, 1])
    for v in vis:  # the plain neuron maximises the channel, the cluster its centroid direction
        assert np.mean(v.history[-3:]) > np.mean(v.history[:3]) + 0.5
    with pytest.raises(AtlasError, match="cluster 5 of neuron blocks.6#11 does not exist"):
        ctx.resource("neuron_clusters")(Target("neuron", layer="blocks.6", channel=11, cluster=5))


def test_bad_neuron_for_dataset_examples_is_an_error(lite0, tmp_path):
    ncfg = NeuronConfig(examples=2, max_images=2)
    with pytest.raises(AtlasError, match="neuron 999 out of range for layer blocks.6 of .*: valid channels are 0-319"):
        neuron_examples(Store(tmp_path), lambda: lite0, lite0.name, BundledPool(), "blocks.6", [3, 999], ncfg)
    with pytest.raises(AtlasError, match="unknown layer"):
        neuron_examples(Store(tmp_path), lambda: lite0, lite0.name, BundledPool(), "blocks.66", [3], ncfg)


def test_one_pool_sweep_serves_the_neurons_of_two_layers_and_the_concepts(lite0, tmp_path, monkeypatch):
    """A whole-plan run sweeps the pool's patches once for the dataset examples of neurons at two layers and
    the concepts' pool examples (atlas.concepts.pool_scan), and each answer is what a sweep of its own gives."""
    import json

    from atlas.app import install
    from atlas.concepts.bank import find_banks, fit_hash
    from atlas.concepts.concept_examples import STAGE, compute_concept_examples
    from atlas.concepts.layers import concept_layer
    from atlas.data import patches
    from atlas.data.patches import examples_from_json, top_patches
    from atlas.pipeline import Runner

    install()
    cfg = config_from_mapping({
        "preset": "demo", "classes": [285, 967], "methods": ["maco"], "store": str(tmp_path / "store"),
        "targets": {"concepts": 2, "random_neurons": 0, "neurons": [["blocks.6", 11], ["blocks.0", 3]], "layers": [],
                    "concept_settings": {"images": 3, "nb_design": 8, "min_wins": 1, "visualise": 1},
                    "neuron_settings": {"max_images": 5, "examples": 3}, "kind_methods": {"neuron": ["maco"]}}})
    sweeps = []
    real = patches.scan_patch_layers

    def counted(model, pool, ids, layers, *args, **kwargs):
        sweeps.append(list(layers))
        return real(model, pool, ids, layers, *args, **kwargs)

    monkeypatch.setattr(patches, "scan_patch_layers", counted)
    store = Store(tmp_path / "store")
    runner = Runner(cfg, store, progress=False)
    runner.prepare(make_plan(cfg).jobs)
    layer = concept_layer(cfg, "efficientnet_lite0")
    assert sweeps == [["blocks.6", "blocks.0", layer]]  # one sweep, up to the deepest layer asked

    pool = runner.pool("efficientnet_lite0")
    for lay, channel in (("blocks.6", 11), ("blocks.0", 3)):
        d = store.find_stage("top_patches", lambda inputs, lay=lay: inputs["layer"] == lay)
        shared = examples_from_json((d / "examples.json").read_bytes())[channel]
        alone = top_patches(lite0, pool, lay, [channel], 3, max_images=5, bottom=True)[channel]
        assert (shared.sources, shared.negative_sources) == (alone.sources, alone.negative_sources)
        assert np.allclose(shared.scores, alone.scores, atol=1e-4)
    assert set(find_examples(store, "efficientnet_lite0", cfg)) == {("blocks.6", 11), ("blocks.0", 3)}
    banks = {c: b.W for c, b in find_banks(store, "efficientnet_lite0", fit_hash(cfg, layer), [285, 967]).items()}
    d = store.find_stage(STAGE, lambda inputs: True)
    shared = json.loads((d / "examples.json").read_bytes())
    alone = json.loads(compute_concept_examples(lite0, pool, layer, banks, 3, 10, 5)[0]["examples.json"])
    assert len(shared) == 4 and {k: v["sources"] for k, v in shared.items()} == {k: v["sources"] for k, v in alone.items()}
