"""The metric functions against known values and independent computations."""
import numpy as np
import pytest

from atlas.embedding import tsne_2d
from atlas.metrics import functions as fn


def _closed_form_fd(mu1, s1, mu2, s2):
    """Fréchet distance of two Gaussians via the symmetric form tr(s1 + s2 - 2 (s1^½ s2 s1^½)^½), computed
    with eigendecompositions (a different route than frechet_distance's sqrtm of the product)."""
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    w2, v2 = np.linalg.eigh(r1 @ s2 @ r1)
    cross = v2 @ np.diag(np.sqrt(np.clip(w2, 0, None))) @ v2.T
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(400, 16))
    assert abs(fn.fid(x, x)) < 1e-6
    assert fn.fid(x, x + 1.0) == pytest.approx(16.0, rel=1e-6)  # a shift by 1 in 16 dims: |dmu|^2 = 16


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # = 5 + (1 + 1 + 4)
    assert fn.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    assert expected == 11.0


def test_frechet_distance_matches_closed_form_for_general_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2, s1, s2 = rng.normal(size=5), rng.normal(size=5), _spd(rng, 5), _spd(rng, 5)
    assert fn.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_closed_form_fd(mu1, s1, mu2, s2), rel=1e-8)
    assert fn.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_samples_approaches_the_gaussians_distance():
    rng = np.random.default_rng(2)
    s1, s2 = _spd(rng, 4), _spd(rng, 4)
    mu1, mu2 = np.zeros(4), np.full(4, 0.5)
    a = rng.multivariate_normal(mu1, s1, size=20000)
    b = rng.multivariate_normal(mu2, s2, size=20000)
    assert fn.fid(a, b) == pytest.approx(_closed_form_fd(mu1, s1, mu2, s2), rel=0.05)


def test_fid_rejects_degenerate_input_and_says_when_meaningless():
    with pytest.raises(ValueError):
        fn.fid(np.zeros((1, 3)), np.zeros((5, 3)))
    assert fn.fid_unavailable(6, 60, 1280) is not None and "1280" in fn.fid_unavailable(6, 60, 1280)
    assert fn.fid_unavailable(3000, 5000, 2048) is None


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), rng.normal(1.0, 1.0, size=(300, 8))
    same, _ = fn.kid(a, b)
    diff, _ = fn.kid(a, c)
    assert abs(same) < 0.05 and diff > 10 * abs(same) and diff > 0.1
    mean, std = fn.kid(a, c, subsets=10, subset_size=100)  # subset path
    assert std is not None and mean == pytest.approx(diff, rel=0.3)
    with pytest.raises(ValueError):
        fn.kid(a[:1], b)


def test_auc_separable_identical_and_sklearn_agreement():
    from sklearn.metrics import roc_auc_score

    assert fn.auc([0.0, 0.1, 0.2], [1.0, 2.0]) == 1.0
    assert fn.auc([1.0, 2.0], [0.0, 0.1, 0.2]) == 0.0
    x = np.random.default_rng(4).normal(size=50)
    assert fn.auc(x, x) == 0.5
    rng = np.random.default_rng(5)
    c, s = rng.normal(size=40).round(1), rng.normal(0.5, 1, size=7).round(1)  # rounding makes ties
    expected = roc_auc_score(np.r_[np.zeros(40), np.ones(7)], np.r_[c, s])
    assert fn.auc(c, s) == pytest.approx(expected, abs=1e-12)


def test_mad_is_the_standardised_mean_difference():
    control = np.array([1.0, 2.0, 3.0])  # mean 2, unbiased std 1
    assert fn.mad(control, [4.0, 6.0]) == pytest.approx(3.0)
    assert fn.mad([2.0, 2.0], [5.0]) == 0.0  # CoSy: 0 when the control does not vary


def test_top_predictions_accuracy_and_nearest_distances():
    logits = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    ids, p = fn.top_predictions(logits, 2)
    assert ids.tolist() == [[1, 2], [0, 2]]
    assert p[0, 0] == pytest.approx(np.exp(3) / np.exp([0, 3, 1]).sum())
    assert fn.accuracy(ids[:, 0] == np.array([1, 2])) == 50.0
    assert fn.topk_hits(ids, [2, 2], 2).tolist() == [True, True]
    q, r = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [3.0, 0.0]])
    assert fn.nearest_distances(q, r) == pytest.approx([1.0, 4.0])
    assert fn.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


def test_tsne_is_deterministic_for_a_seed_and_separates_clusters():
    rng = np.random.default_rng(6)
    x = np.r_[rng.normal(0, 1, size=(20, 30)), rng.normal(8, 1, size=(20, 30))]
    a, b = tsne_2d(x, seed=0), tsne_2d(x, seed=0)
    assert a.shape == (40, 2) and np.array_equal(a, b)
    assert np.abs(a).max() == pytest.approx(1.0)
    gap = np.linalg.norm(a[:20].mean(0) - a[20:].mean(0))
    spread = max(np.linalg.norm(a[:20] - a[:20].mean(0), axis=1).mean(), np.linalg.norm(a[20:] - a[20:].mean(0), axis=1).mean())
    assert gap > 3 * spread
    with pytest.raises(ValueError):
        tsne_2d(x[:3])


def test_reported_tables_average_no_class_id_and_show_consistency_in_percent():
    from atlas.metrics.reported import gather_reported

    target = {"kind": "image", "class_id": 285, "image": "chelsea", "toward": "rival"}
    metas = [{"target": target, "seed": s, "scores": {"goal": g, "top1_start": 285, "top1_end": g,
                                                       "classification_consistency": c, "beta": 0.2}}
             for s, (g, c) in enumerate([(281, 1.0), (282, 0.0), (283, 1.0), (281, 1.0)])]
    cells, per = gather_reported(metas)
    assert not {"reported:goal", "reported:top1_start", "reported:top1_end"} & set(cells)
    assert cells["reported:classification_consistency"]["value"] == pytest.approx(75.0)  # 3 of 4 in the top-5
    assert cells["reported:classification_consistency"]["title"] == "Classification consistency (%)"
    assert cells["reported:beta"]["value"] == pytest.approx(0.2)
    assert "goal" not in per["image-0285.rival-chelsea"]["0"]
