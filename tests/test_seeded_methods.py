"""Feature accentuation and attribution visualization as registered methods: on the real
EfficientNet-Lite0 (few steps) the goal's logit rises while the early-layer distance is bounded by lambda,
the lambda search is cached in the store, and the site shows seed | result | mask | masked result."""
import json

import numpy as np
import pytest
import torch

from atlas.config import DataConfig, config_from_mapping
from atlas.data import open_pool
from atlas.data.seed_images import load_seed_images
from atlas.errors import AtlasError
from atlas.methods import METHODS, RunContext, Visualization
from atlas.methods.accentuation import calibrate_lambda
from helpers import smooth_image
from atlas.methods.accentuation.optimisation import accentuate
from atlas.optim import TargetRNG
from atlas.pipeline import Store, make_plan
from atlas.sitegen import render
from atlas.sitegen.check import check_site
from atlas.targets import Target

QUICK_ACC = {"steps": 8, "crops": 2, "lam": 1.0, "mask_images": 2, "natural_images": 3}


def context(model, tmp_path=None, store=None):
    return RunContext(model=model, data=DataConfig(spectrum_images=8), cache_dir=tmp_path,
                      pool_factory=lambda: open_pool("bundled"), store=store)


@pytest.fixture(scope="module")
def ctx(lite0):
    return context(lite0)


def test_accentuation_raises_the_goal_while_lambda_bounds_the_distance(ctx):
    model = ctx.model
    seeds, _ = load_seed_images(ctx.pool, [Target.of_image("chelsea", 285)], 224)
    goal = [282]  # tiger cat: chelsea's rival
    runs = {lam: accentuate(model, seeds, goal, "blocks.2.1.bn1.act", lam, 8, TargetRNG([3]), crops=2)
            for lam in (1e-6, 10.0)}
    rise = {}
    for lam, out in runs.items():
        with torch.no_grad():
            rise[lam] = float(model(out.result.images)[0, 282] - model(out.result.initial)[0, 282])
        assert (out.result.initial - seeds).abs().max() < 1e-3  # step 0 is the seed
    d = {lam: float(out.distance[0]) for lam, out in runs.items()}
    assert rise[1e-6] > 1.0 and rise[10.0] > 0.3, (rise, d)
    assert d[10.0] < 0.9 * d[1e-6], (rise, d)  # the stronger lambda keeps the image closer to its seed


def test_accentuation_method_outputs_and_different_images_differ(ctx):
    method = METHODS.get("accentuation")
    targets = [Target.of_image("chelsea", 285, toward="rival"), Target.of_image("coffee", 967)]
    vis = method.run(ctx, method.config(QUICK_ACC), targets, [1, 2])
    assert [v.info["goal"] for v in vis][1] == 967 and vis[0].info["goal"] != 285
    for v in vis:
        assert v.image.shape == (224, 224, 3) and v.extras["seed"].shape == (224, 224, 3)
        assert v.extras["mask"].shape == (224, 224) and 0 <= v.extras["mask"].min() <= v.extras["mask"].max() <= 1
        assert v.scores["logit_end"] > v.scores["logit_start"]
        assert np.abs(v.image - v.extras["seed"]).mean() > 0.003  # visibly changed
        path = v.info["path_similarity"]
        assert path["layers"][-1] == "logits" and len(path["to_seed"]) == len(path["layers"])
        assert -1 <= v.scores["path_similarity_seed"] <= 1
    assert np.abs(vis[0].image - vis[1].image).mean() > 0.05


def test_unknown_bundled_image_and_goal_are_errors(ctx):
    method = METHODS.get("accentuation")
    with pytest.raises(AtlasError, match="not a bundled photo of class 285"):
        method.run(ctx, method.config(QUICK_ACC), [Target.of_image("coffee", 285)], [0])
    with pytest.raises(AtlasError, match="unknown goal 'best'"):
        method.run(ctx, method.config(QUICK_ACC), [Target.of_image("chelsea", 285, toward="best")], [0])
    with pytest.raises(AtlasError, match="unknown layer"):
        method.run(ctx, method.config({**QUICK_ACC, "reg_layer": "blocks.99"}), [Target.of_image("chelsea", 285)], [0])


@pytest.mark.parametrize("init", ["seed", "noise"])
def test_attribution_visualization_improves_its_objective(ctx, init):
    method = METHODS.get("attribution_vis")
    cfg = method.config({"steps": 10, "views": 1, "attribution_steps": 8, "init": init, "lr": 0.1,
                         "baseline_steps": [3, 3]})
    v = method.run(ctx, cfg, [Target.of_image("coffee", 967)], [4])[0]
    assert v.scores["objective_end"] > v.scores["objective_start"]
    assert np.mean(v.history[-3:]) > np.mean(v.history[:3])
    assert 0 < v.scores["beta"] < 1  # Otsu on the channel-summed attribution map
    if init == "seed":
        assert abs(v.scores["mask_mean"] - v.scores["beta"]) < 0.05
    assert np.array_equal(v.alpha, v.extras["mask"]) and v.extras["composite"].shape == (224, 224, 3)
    assert -1 <= v.scores["visualization_correlation"] <= 1
    assert v.scores["classification_consistency"] in (0.0, 1.0)
    assert v.info["baseline"] == "output-targeted (§3.1, ref. [28]; 3+3 mask steps)"


def test_attribution_visualizations_of_different_images_differ(ctx):
    """Two real images of different classes, one batch: different visualisations and masks, and each
    one's own objective rises."""
    method = METHODS.get("attribution_vis")
    cfg = method.config({"steps": 10, "views": 1, "attribution_steps": 8, "init": "seed", "lr": 0.1,
                         "baseline": "zero"})
    coffee, cat = method.run(ctx, cfg, [Target.of_image("coffee", 967), Target.of_image("chelsea", 285)], [4, 4])
    assert np.abs(coffee.image - cat.image).mean() > 0.05
    assert np.abs(coffee.alpha - cat.alpha).mean() > 0.05
    assert coffee.scores["objective_end"] > coffee.scores["objective_start"]
    assert cat.scores["objective_end"] > cat.scores["objective_start"]
    assert coffee.info["baseline"].startswith("zero - a deviation")


def test_lambda_search_is_cached_in_the_store(tiny, tmp_path):
    store = Store(tmp_path / "store")
    method = METHODS.get("accentuation")
    cfg = method.config({"steps": 2, "crops": 1, "lambda_images": 1, "lambda_iters": 2})
    first = calibrate_lambda(context(tiny, store=store), cfg, "relu1")
    assert len(first.evaluations) == 4 and first.d_min <= first.d_chosen <= first.d_max
    assert 1e-6 <= first.lam <= 1e6
    stage = list((tmp_path / "store" / "stages" / "accentuation-lambda").iterdir())
    assert len(stage) == 1
    again = calibrate_lambda(context(tiny, store=store), cfg, "relu1")  # a new run: read from the store
    assert again == first
    other = calibrate_lambda(context(tiny, store=store), cfg, "relu2")
    assert len(list((tmp_path / "store" / "stages" / "accentuation-lambda").iterdir())) == 2 and other.lam > 0


# ------------------------------------------------------------------------------ site
def fake(job, size=16):
    rng = np.random.default_rng(abs(hash(job.key)) % 2**32)
    img = smooth_image(rng, size)
    mask = rng.random((size, size), dtype=np.float32)
    path = {"layers": ["bn1", "blocks.4", "logits"], "to_natural": [0.6, 0.3, 0.8],
            "natural": [0.7, 0.35, 0.9], "to_seed": [0.95, 0.8, 0.85]}
    return Visualization(target=job.target, image=img, alpha=mask, history=[0.0, 1.0], seconds=0.1,
                         scores={"logit_start": 1.0, "logit_end": 3.0, "prob_end": 0.4, "rank_end": 1,
                                 "lambda": 2.0, "path_similarity": 0.5},
                         extras={"seed": img[::-1].copy(), "mask": mask, "composite": img * mask[..., None]},
                         info={"goal": 281 if job.target.toward else job.target.class_id,
                               "goal_name": "tabby" if job.target.toward else "own class",
                               "seed_top1": 670 if job.target.image == "motorcycle_right" else job.target.class_id,
                               "source": f"{job.target.class_id}/{job.target.image}", "path_similarity": path})


def test_class_pages_show_four_panels_per_image_method_and_goal(tmp_path):
    cfg = config_from_mapping({"preset": "demo", "classes": [285, 665], "methods": ["maco", "accentuation",
                               "attribution_vis"], "targets": {"images": 2}, "store": str(tmp_path / "store"),
                               "site": {"folder": str(tmp_path / "site"), "degenerate": "mark"}})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    image_jobs = [j for j in plan.jobs if j.target.kind == "image"]
    assert len(image_jobs) == 2 * 2 * 3  # classes x images x (accentuation: class, rival; attribution_vis: class)
    for job in image_jobs[:-1]:  # leave one pending
        store.put(job, fake(job))
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    assert check_site(site) == []
    html = (site / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert html.count("data-seeded") == 6
    for label in ("seed image", "result", "mask", "masked result"):
        assert html.count(f'data-panel="{label}"') == 6
    assert "toward its rival: tabby (281)" in html and "toward its class: Egyptian cat (285)" in html
    assert '<svg class="pathsim"' in html and html.count("<polyline") == 3
    folder = site / "efficientnet_lite0" / "img" / "accentuation"
    for name in ("seed", "mask", "composite"):  # versioned by the job key: image-...-s0.<key>-<name>.png
        assert len(list(folder.glob(f"image-0285.rival-chelsea-s0.*-{name}.png"))) == 1
    fig = (site / "efficientnet_lite0" / "fig" / "accentuation" / "image-0285.rival-chelsea-s0.html").read_text()
    assert fig.count("data-panel=") == 4 and "Goal: tabby (281)" in fig
    data = json.loads((site / "efficientnet_lite0" / "path-similarity.json").read_text())
    assert data["classes"]["285"]["summary"]["to_seed"] == pytest.approx([0.95, 0.8, 0.85])
    pending = (site / "efficientnet_lite0" / "class" / "0665.html").read_text()
    assert "not built yet" in pending
    assert "toward the predicted class (misclassified): tabby (281)" in pending  # Fig. 9
