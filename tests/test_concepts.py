"""CRAFT: Halton design and Jansen estimator, NMF (planted directions, error falling with K), Sobol
importance, the head split, non-negativity, the concept stage/resource, and MACO on a concept direction."""
import json

import numpy as np
import pytest
import torch

from atlas.concepts.craft import craft, fit_nmf, head_function, sobol_importance
from atlas.config import CraftConfig
from atlas.concepts.sobol import halton_design, jansen_total_indices
from atlas.data import BundledPool
from atlas.errors import AtlasError


# ------------------------------------------------------------------------------------------- sobol
def test_halton_design_is_a_b_and_the_c_matrices():
    k, n = 3, 16
    m = halton_design(k, n)
    assert m.shape == (n * (k + 2), k) and (m >= 0).all() and (m < 1).all()
    a, b = m[:n], m[n:2 * n]
    assert not np.allclose(a, b)
    for i in range(k):
        c = m[(2 + i) * n:(3 + i) * n]
        others = [j for j in range(k) if j != i]
        np.testing.assert_array_equal(c[:, i], b[:, i])
        np.testing.assert_array_equal(c[:, others], a[:, others])


def test_jansen_recovers_the_indices_of_an_additive_function():
    # f = x1 + 2 x2 (x3 unused), x ~ U(0, 1): variance shares 1/5 and 4/5, no interactions
    k, n = 3, 1024
    x = halton_design(k, n)
    st = jansen_total_indices(x[:, 0] + 2 * x[:, 1], n, k)
    np.testing.assert_allclose(st, [0.2, 0.8, 0.0], atol=0.04)


def test_jansen_is_zero_for_a_constant_and_rejects_wrong_lengths():
    assert (jansen_total_indices(np.full(5 * 8, 3.0), 8, 3) == 0).all()
    with pytest.raises(ValueError):
        jansen_total_indices(np.zeros(10), 8, 3)


# ------------------------------------------------------------------------------------------- nmf
def _planted(n=400, dims=64, k=2, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    dirs = rng.random((k, dims)) ** 4  # sparse-ish, non-negative
    coef = rng.exponential(size=(n, k))
    x = coef @ dirs + noise * rng.random((n, dims))
    return x.astype(np.float32), dirs


def test_nmf_recovers_two_planted_directions():
    x, dirs = _planted()
    _, u, w, err = fit_nmf(x, 2, CraftConfig())
    assert u.shape == (400, 2) and w.shape == (2, 64) and (w >= 0).all() and (u >= 0).all()
    cos = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    # each planted direction is found by its own NMF component
    assert cos.max(1).min() > 0.99 and sorted(cos.argmax(1)) == [0, 1]
    assert err < 0.05


def test_nmf_reconstruction_error_falls_with_k():
    x, _ = _planted(k=4, seed=1, noise=0.05)
    errs = [fit_nmf(x, k, CraftConfig())[3] for k in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs


def test_too_many_concepts_for_the_patches_is_an_error():
    with pytest.raises(AtlasError, match="5 concepts need at least 5 patches"):
        fit_nmf(np.ones((3, 8), np.float32), 5, CraftConfig())


# ------------------------------------------------------------------------------------------- importance
def test_sobol_importance_ranks_the_concept_that_drives_the_logit():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 2, 2, 3)).astype(np.float32)
    W = np.eye(3, dtype=np.float32)
    weights = torch.tensor([5.0, 1.0, 0.0])

    def head(acts):  # logit of class 0 = 5 * concept 0 + concept 1; concept 2 does nothing
        return torch.stack([acts.mean((2, 3)) @ weights, torch.zeros(acts.shape[0])], 1)

    st = sobol_importance(maps, W, head, 0, nb_design=64)
    assert st.shape == (4, 3) and (st >= 0).all()
    assert (st[:, 0] > st[:, 1]).all() and (st[:, 1] > st[:, 2]).all() and np.allclose(st[:, 2], 0)


def test_sobol_importance_fast_path_equals_the_full_computation(tiny):
    rng = np.random.default_rng(1)
    maps = rng.random((2, 8, 8, 3)).astype(np.float32)
    W = rng.random((3, 16)).astype(np.float32)
    head = head_function(tiny, "relu2", torch.rand(1, 3, 32, 32))
    assert head.spatial_mean
    fast = sobol_importance(maps, W, head, 4, nb_design=16)
    slow = sobol_importance(maps, W, lambda a: head(a), 4, nb_design=16)  # same h, without the shortcut
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-7)
    assert fast.sum() > 0


def test_head_function_matches_the_model_linear_and_replaced(tiny):
    x = torch.rand(3, 3, 32, 32)
    logits = tiny(x)
    for layer in ("relu2", "relu1"):  # relu2: classifier on the mean; relu1: forward with the layer replaced
        acts = tiny.features(x, [layer])[layer]
        torch.testing.assert_close(head_function(tiny, layer, x)(acts), logits, rtol=1e-4, atol=1e-5)


def test_craft_rejects_a_layer_with_negative_activations(tiny):
    cfg = CraftConfig(images=2, patch=16, stride=8, nb_design=4)
    with pytest.raises(AtlasError, match="non-negative activations.*conv1"):
        craft(tiny, torch.rand(2, 3, 32, 32), 0, "conv1", 2, cfg)


def test_craft_on_the_tiny_model_sorts_and_normalises(tiny):
    cfg = CraftConfig(images=4, patch=16, stride=8, nb_design=16)
    res = craft(tiny, torch.rand(4, 3, 32, 32), 3, "relu2", 3, cfg)
    assert res.W.shape == (3, 16) and res.maps.shape == (4, 8, 8, 3) and res.U.shape == (4 * 9, 3)
    assert list(res.importance) == sorted(res.importance, reverse=True)
    assert (res.share >= 0).all() and res.share.sum() <= 100 + 1e-9
    assert list(res.errors) == [1, 2, 3] and res.errors[1] > res.errors[2] > res.errors[3]


# ------------------------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def cat_concepts(lite0):
    cfg = CraftConfig(images=4, nb_design=16, min_wins=1)
    images = BundledPool().reference_images(285, 4, 224, seed=0)
    return craft(lite0, images, 285, "bn2", 3, cfg), images


def test_craft_on_lite0_importances_and_errors(cat_concepts):
    res, _ = cat_concepts
    assert (res.W >= 0).all() and res.W.shape == (3, 1280)
    assert (res.share >= 0).all() and 99.999 < res.share.sum() <= 100 + 1e-9
    assert list(res.share) == sorted(res.share, reverse=True)
    assert res.errors[1] > res.errors[2] > res.errors[3]
    assert res.wins.sum() == 4


def test_lite0_concept_maps_locate_the_top_patches(cat_concepts, lite0):
    res, images = cat_concepts
    # the top patches of concept 0 score higher on concept 0 than the average patch
    top = res.top_patches(0, 5)
    assert res.U[top, 0].mean() > 2 * res.U[:, 0].mean()
    assert res.maps.shape == (4, 7, 7, 3) and (res.maps >= 0).all()


@pytest.mark.parametrize("name", ["maco", "fourier"])
def test_concept_direction_objective_rises(cat_concepts, lite0, tmp_path, name):
    from atlas.config import DataConfig
    from atlas.methods import METHODS, RunContext
    from atlas.targets import Target

    res, _ = cat_concepts
    t = Target.of_concept(285, 0, "bn2")
    ctx = RunContext(model=lite0, data=DataConfig(spectrum_images=8), cache_dir=tmp_path, pool_factory=BundledPool)
    ctx.resources["concepts"] = lambda target: ("bn2", torch.from_numpy(res.W[target.concept]))
    method = METHODS.get(name)
    vis = method.run(ctx, method.config({"steps": 12, "crops": 2, "crop_size": 0.5}), [t], [0])[0]
    assert np.mean(vis.history[-3:]) > 3 * np.mean(vis.history[:3])


# ------------------------------------------------------------------------------------------- stage
def test_concept_stage_is_cached_and_serves_the_resource(tiny, tmp_path, monkeypatch):
    from atlas.concepts import bank
    from atlas.config import AtlasConfig, DataConfig, TargetsConfig
    from atlas.methods import RunContext
    from atlas.pipeline import Store
    from atlas.targets import Target

    class Pool:
        def fingerprint(self):
            return "random-images"

        def reference_images(self, class_id, n, size, seed=0, allow_fewer=True):
            return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(class_id))

    cfg = AtlasConfig(targets=TargetsConfig(concepts=2, concept_settings=(
        ("images", 3), ("patch", 16), ("stride", 8), ("nb_design", 8), ("map_images", 2))))
    store = Store(tmp_path)
    ctx = RunContext(model=tiny, data=DataConfig(), cache_dir=None, pool_factory=Pool, store=store, config=cfg)
    t = Target("concept", class_id=3, concept=1, layer="relu2", fit_hash=bank.fit_hash(cfg, "relu2"))
    layer, vec = ctx.concept_direction(t)
    assert layer == "relu2" and vec.shape == (16,) and (vec >= 0).all()
    d = next((tmp_path / "stages" / "craft").iterdir())
    summary = json.loads((d / "summary.json").read_text())
    assert summary["k"] == 2 and sum(summary["share"]) <= 100 + 1e-9
    assert {"mosaic-00.png", "map-01.png", "bank.npz"} <= {p.name for p in d.iterdir()}
    # a second run context reads the stage; nothing is recomputed
    monkeypatch.setattr(bank, "compute_bank", lambda *a, **k: pytest.fail("recomputed"))
    ctx2 = RunContext(model=tiny, data=DataConfig(), cache_dir=None, pool_factory=Pool, store=store, config=cfg)
    torch.testing.assert_close(ctx2.concept_direction(t)[1], vec)
    with pytest.raises(AtlasError, match="concept 5 of class 3 does not exist"):
        ctx2.concept_direction(Target("concept", class_id=3, concept=5, layer="relu2"))
    assert set(bank.find_banks(store, "tiny", t.fit_hash)) == {3}


def test_concept_references_are_ranked_by_crafts_own_coefficients(tiny, tmp_path):
    """VITAL's concept references (§2.3, "the images that highly activate the concepts through CRAFT"): the
    bank's patches ranked by their NMF coefficient U for the concept, one per image - not a dot product of
    the patches' activations with the concept's row of W - as full images (default) or as the patches."""
    from atlas.concepts import bank
    from atlas.config import AtlasConfig, DataConfig, TargetsConfig
    from atlas.data.patches import extract_patches
    from atlas.methods import RunContext
    from atlas.pipeline import Store
    from atlas.targets import Target

    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    class Pool:
        def fingerprint(self):
            return "six-images"

        def reference_images(self, class_id, n, size, seed=0, allow_fewer=True):
            return images[:n]

    cfg = AtlasConfig(targets=TargetsConfig(concepts=3, concept_settings=(
        ("images", 6), ("patch", 16), ("stride", 8), ("nb_design", 4), ("map_images", 2), ("error_curve", False))))
    ctx = RunContext(model=tiny, data=DataConfig(), cache_dir=None, pool_factory=Pool, store=Store(tmp_path),
                     config=cfg)
    provider = ctx.resource("concepts")
    t = Target("concept", class_id=3, concept=0, layer="relu2", fit_hash=bank.fit_hash(cfg, "relu2"))
    got = provider.examples(t, 3)
    U = provider.bank(3, "relu2").coefficients()
    per = U.shape[0] // 6  # 9 patches per image

    def one_per_image(order):
        rows, seen = [], set()
        for i in order:
            if int(i) // per not in seen:
                seen.add(int(i) // per)
                rows.append(int(i))
        return rows

    rows = one_per_image(np.argsort(-U[:, 0], kind="stable"))
    torch.testing.assert_close(got, images[[i // per for i in rows[:3]]])
    patches = provider.examples(t, 3, patches=True)
    crops = extract_patches(images, 32, 16, 8)
    torch.testing.assert_close(patches, crops[rows[:3]])
    # the ranking a dot product with W's row would give differs here: the coefficients are CRAFT's own
    with torch.no_grad():
        a = tiny.activations(crops, ["relu2"])["relu2"].mean((2, 3))
    w = torch.from_numpy(provider.bank(3, "relu2").W[0]).float()
    assert one_per_image(torch.argsort(a @ w, descending=True))[:3] != rows[:3]
