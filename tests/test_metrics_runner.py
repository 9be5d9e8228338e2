"""The metrics step on a finished (tiny) build: every unit is computed from the store, fresh results are
skipped, a changed image recomputes only what depends on it, and every cell names its backbone or says
why it is unavailable."""
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atlas.cli import main
from atlas.metrics import MetricsRunner
from atlas.metrics.backbones import FID_WEIGHTS
from atlas.config import stable_hash
from atlas.metrics.cache import EVAL_CROP, REAL_SIZE, FeatureCache, read_png
from atlas.metrics.results import load_model_results
from atlas.metrics.runner import done_refs
from helpers import fake_visualization
from metrics_setup import tiny64, tiny_build

# neurons: MACO only (the demo preset's kind_methods leave Fourier to classes)
UNITS = {"maco/class", "fourier/class", "maco/neuron", "baseline", "tsne"}


def _run(cfg, plan, store):
    return MetricsRunner(cfg, store, progress=False).run(plan)


def test_every_unit_is_computed_once_then_skipped(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    first = _run(cfg, plan, store)
    assert {u.split("/", 1)[1] for u in first.computed} == UNITS and first.fresh == 0
    again = _run(cfg, plan, store)
    assert again.computed == [] and again.fresh == len(UNITS)
    res = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])
    assert set(res["units"]) == UNITS - {"baseline", "tsne"} and res["baseline"] and res["tsne"]


def test_changed_image_recomputes_only_what_depends_on_it(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    _run(cfg, plan, store)
    job = next(j for j in plan.jobs if j.method == "maco" and j.target.kind == "class")
    shutil.rmtree(store.job_dir(job.key))
    vis = fake_visualization(job, size=64)
    vis.image = 1.0 - vis.image
    store.put(job, vis)
    puts = []
    orig = FeatureCache.put
    monkeypatch.setattr(FeatureCache, "put", lambda self, b, o, i, v: (puts.append(i), orig(self, b, o, i, v)))
    report = _run(cfg, plan, store)
    assert {u.split("/", 1)[1] for u in report.computed} == {"maco/class", "tsne"}
    sha = store.meta(job.key)["files"]["image.png"]
    crop = stable_hash(["centre-crop", EVAL_CROP, sha], 32)
    assert puts and set(puts) == {sha[:32], crop}  # only the new image (and its centre crop) went through


def test_cells_are_real_measurements_with_backbones_and_reasons(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    _run(cfg, plan, store)
    res = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])
    unit = res["units"]["maco/class"]
    cells = unit["cells"]
    # self accuracy and plausibility, recomputed here by hand from the stored PNGs and the pool
    model = tiny64()
    jobs = [j for j in plan.jobs if j.method == "maco" and j.target.kind == "class"]
    pool = __import__("atlas.data", fromlist=["open_pool"]).open_pool("bundled")
    hits, dists = [], []
    for j in jobs:
        x = F.interpolate(read_png(store.job_dir(j.key) / "image.png")[None], size=(64, 64), mode="bilinear",
                          antialias=True)
        with torch.no_grad():
            hits.append(int(model(x).argmax()) == j.target.class_id)
            real = pool.reference_images(j.target.class_id, 4, REAL_SIZE, seed=cfg.metrics.seed)
            real = F.interpolate(real, size=(64, 64), mode="bilinear", antialias=True)
            d = torch.cdist(model.penultimate_features(x), model.penultimate_features(real)).min()
        dists.append(float(d))
    assert cells["acc"]["value"] == pytest.approx(100.0 * np.mean(hits)) and cells["acc"]["backbone"] == "tiny64"
    assert cells["plausibility"]["value"] == pytest.approx(np.mean(dists), rel=1e-4)
    assert cells["transfer:tiny64_judge"]["value"] is not None
    top2 = unit["targets"]["class-0285"]["0"]["top2"]
    assert len(top2) == 2 and top2[0][1] >= top2[1][1]
    # unavailable metrics say why; the substitute is labelled
    assert FID_WEIGHTS in cells["fid"]["unavailable"] and cells["fid"]["value"] is None
    assert "substitute for Inception-v3" in cells["kid_sub"]["backbone"] and cells["kid_sub"]["value"] is not None
    assert "rank-deficient" in cells["fid_sub"]["unavailable"]
    assert "Hugging Face cache" in cells["clip_top1"]["unavailable"]
    neuron = res["units"]["maco/neuron"]
    assert 0.0 <= neuron["cells"]["auc"]["value"] <= 1.0 and np.isfinite(neuron["cells"]["mad"]["value"])
    detail = neuron["targets"]["neuron-relu2-0003"]
    assert detail["n_control"] == 6 and detail["n_synthetic"] == 1
    assert res["baseline"]["cells"]["acc"]["n"] == 8
    pts = res["tsne"]["points"]
    assert sum(p["method"] == "real" for p in pts) == 8 and sum(p["method"] != "real" for p in pts) == 4


def test_method_reported_scores_are_gathered(tmp_path, monkeypatch):
    cfg, plan, store = tiny_build(tmp_path, monkeypatch,
                                  scores={"path_similarity": {"relu1": 0.2, "relu2": 0.6}, "my_score": 3.0})
    _run(cfg, plan, store)
    cells = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])["units"]["fourier/class"]["cells"]
    assert cells["reported:path_similarity"]["value"] == pytest.approx(0.4)
    assert cells["reported:path_similarity"]["better"] == "higher"
    assert cells["reported:my_score"]["value"] == 3.0 and cells["reported:my_score"]["better"] is None
    assert "reported:logit_end" not in cells  # bookkeeping of the optimisation is not a metric


def test_inception_backbone_used_when_its_weights_are_cached_mocked_weights(tmp_path, monkeypatch):
    from test_metrics_backbones import _random_fid_inception_state

    cfg, plan, store = tiny_build(tmp_path, monkeypatch, real_images=2)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / FID_WEIGHTS
    ckpt.parent.mkdir(parents=True)
    torch.save(_random_fid_inception_state(), ckpt)
    _run(cfg, plan, store)
    cells = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])["units"]["maco/class"]["cells"]
    assert "fid_sub" not in cells and "kid_sub" not in cells
    assert cells["kid"]["backbone"].startswith("Inception-v3") and cells["kid"]["value"] is not None
    assert "2048" in cells["fid"]["unavailable"]  # 2 FVs cannot give a 2048-d covariance


def test_metrics_command_bad_judge_exits_2_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'preset = "demo"\nstore = "{tmp_path}/store"\n[metrics]\njudges = ["efficientnet_lit1"]\n')
    assert main(["metrics", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown model 'efficientnet_lit1'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("toml, needle", [
    ("[metrics]\nreal_images = 1", "metrics.real_images"),
    ("[metrics]\nclip = 'ViT'", "metrics.clip"),
    ("[metrics]\njudge = []", "did you mean 'judges'"),
])
def test_bad_metrics_config_is_one_line_error(tmp_path, capsys, toml, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'preset = "demo"\nstore = "{tmp_path}/store"\n{toml}\n')
    assert main(["metrics", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_classes_without_real_images_are_reported_not_fatal(tmp_path, monkeypatch):
    """Class 1 (tench) has no bundled photo: its FVs still get self/transfer accuracy, but no plausibility."""
    from metrics_setup import register_tiny, tiny_config

    from atlas.config import config_from_mapping
    from atlas.pipeline import Store, make_plan

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    register_tiny(monkeypatch)
    base = tiny_config(tmp_path)
    cfg = config_from_mapping({"preset": "demo", "models": ["tiny64"], "classes": [285, 1], "methods": ["maco"],
                               "store": base.store, "settings": {"maco": {"steps": 2, "crops": 1}}, "targets": {"layers": []},
                               "metrics": {"judges": ["tiny64_judge"], "substitute": "tiny64", "real_images": 3}})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job, size=64))
    _run(cfg, plan, store)
    res = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])
    unit = res["units"]["maco/class"]
    assert unit["cells"]["acc"]["n"] == 2
    assert "plausibility" in unit["targets"]["class-0285"]["0"]
    assert "plausibility" not in unit["targets"]["class-0001"]["0"]
    assert unit["cells"]["plausibility"]["n"] == 1
    assert set(res["baseline"]["classes"]) == {"285"}


def test_eval_pool_supplies_the_real_images_and_changes_no_job(tmp_path, monkeypatch):
    """``data.eval_pool`` (e.g. ImageNet val): the metrics' real images come from it, the results are
    recomputed for it, and no visualisation job changes."""
    from dataclasses import replace

    from PIL import Image

    from atlas.data.pools import FolderPool
    from atlas.models.classes import imagenet_classes
    from atlas.pipeline import make_plan

    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    first = _run(cfg, plan, store)
    val = tmp_path / "val"
    rng = np.random.default_rng(0)
    for c in (285, 967):
        d = val / imagenet_classes()[1][c]
        d.mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(d / f"v{i}.png")
    cfg2 = replace(cfg, data=replace(cfg.data, eval_pool=str(val)))
    plan2 = make_plan(cfg2)
    assert [j.key for j in plan2.jobs] == [j.key for j in plan.jobs]
    loaded = []
    orig = FolderPool.load_tensor
    monkeypatch.setattr(FolderPool, "load_tensor", lambda self, ref, size: (loaded.append(ref), orig(self, ref, size))[1])
    second = _run(cfg2, plan2, store)
    assert "maco/class" in {u.split("/", 1)[1] for u in second.computed}
    assert {r.class_id for r in loaded} == {285, 967}
    assert {r.id for r in loaded} == {f"v{i}" for i in range(4)}, loaded  # the val folder's files
    assert _run(cfg2, plan2, store).computed == []  # then fresh
    assert first.computed and _run(cfg, plan, store).computed == []  # the main pool's results are kept


def test_a_rival_accentuation_that_reaches_its_goal_scores_as_a_hit(tmp_path, monkeypatch):
    """Image targets are judged against the goal they were driven toward (meta ``info.goal``), not the
    seed's class: a rival job whose image the model assigns to the rival is a hit, for the model and the
    judges alike, and its plausibility compares it with real images of the rival class."""
    from metrics_setup import register_tiny

    from atlas.config import config_from_mapping
    from atlas.pipeline import Store, make_plan

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    register_tiny(monkeypatch)
    cfg = config_from_mapping({
        "preset": "demo", "models": ["tiny64"], "classes": [285, 967], "methods": ["accentuation"],
        "store": str(tmp_path / "store"), "targets": {"images": 1, "concepts": 0, "random_neurons": 0, "layers": []},
        "metrics": {"judges": ["tiny64"], "substitute": "tiny64", "real_images": 3}})
    plan = make_plan(cfg)
    rivals = [j for j in plan.jobs if j.target.toward == "rival"]
    assert rivals and len(rivals) < len(plan.jobs)
    store = Store(cfg.store)
    model = tiny64()
    for job in plan.jobs:
        vis = fake_visualization(job, size=64)
        x = F.interpolate(torch.from_numpy(vis.image).permute(2, 0, 1)[None], size=(64, 64))
        with torch.no_grad():
            top = int(model(x).argmax())
        # a rival job that reached its goal (the model's top-1 is the rival); the own-class jobs missed
        vis.info = {"goal": top if job.target.toward == "rival" else job.target.class_id}
        vis.scores.update({"goal": vis.info["goal"], "top1_end": top})
        store.put(job, vis)
    _run(cfg, plan, store)
    unit = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])["units"]["accentuation/image"]
    per = unit["targets"]
    for job in plan.jobs:
        d = per[job.target.slug()][str(job.seed)]
        assert d["correct"] is (job.target.toward == "rival") and d["label"] == store.meta(job.key)["info"]["goal"]
    assert unit["cells"]["acc"]["value"] == pytest.approx(100.0 * len(rivals) / len(plan.jobs))
    assert unit["cells"]["transfer:tiny64"]["value"] == unit["cells"]["acc"]["value"]
    # the reported table averages no class id
    assert not {"reported:goal", "reported:top1_end"} & set(unit["cells"])


def test_cosy_control_activations_come_from_the_top_full_images(tmp_path, monkeypatch):
    """VITAL supp. §2.1: the control set is the neuron's top-50 real *images* (here 6, at the model's 128 px);
    the top 64-px patches, a declared option, activate the neuron more than whole images do."""
    from dataclasses import replace

    from metrics_setup import register_tiny, tiny_config

    from atlas.data import open_pool
    from atlas.models import MODELS
    from atlas.pipeline import Store, make_plan

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    register_tiny(monkeypatch)
    model = replace(tiny64("tiny128"), input_size=128)
    monkeypatch.setitem(MODELS._items, "tiny128", lambda download=False: model)
    cfg = replace(tiny_config(tmp_path), models=("tiny128",), methods=("maco",))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job, size=128))
    _run(cfg, plan, store)
    unit = load_model_results(store, cfg, "tiny128", plan.classes["tiny128"])["units"]["maco/neuron"]
    detail = unit["targets"]["neuron-relu2-0003"]
    pool = open_pool("bundled")
    with torch.no_grad():
        acts = [float(model.activations(pool.source_image(s, 128)[None], ["relu2"])["relu2"][0, 3].mean())
                for s in pool.source_ids(24)]  # the demo's neuron_settings.max_images
    top = sorted(acts, reverse=True)[:6]
    assert detail["n_control"] == 6 and detail["control_mean"] == pytest.approx(np.mean(top), rel=1e-4)
    assert "top-6 real images" in unit["cells"]["auc"]["backbone"]
    cfg_p = replace(cfg, metrics=replace(cfg.metrics, control_from="patches"))
    _run(cfg_p, plan, store)
    unit_p = load_model_results(store, cfg_p, "tiny128", plan.classes["tiny128"])["units"]["maco/neuron"]
    assert unit_p["targets"]["neuron-relu2-0003"]["control_mean"] > detail["control_mean"]
    assert "top-6 real patches" in unit_p["cells"]["auc"]["backbone"]


def test_fid_in_each_backbone_a_column_naming_it_on_centre_crops(tmp_path, monkeypatch):
    """VITAL Table 1: FID in ResNet50's features ("RN50") and in the model's own ("Arch."), besides Inception's;
    here the judge stands in for ResNet50 (whose weights are absent: its column says why). The FVs enter
    centre-cropped (the real images' evaluation crop), not squashed whole."""
    from atlas.metrics import functions as fn
    from atlas.metrics.cache import center_crop

    cfg, plan, store = tiny_build(tmp_path, monkeypatch, seeds=list(range(8)), real_images=8,
                                  fid_models=["tiny64_judge", "resnet50"])
    _run(cfg, plan, store)
    cells = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])["units"]["maco/class"]["cells"]
    assert "weights for resnet50 are not available offline" in cells["fid:resnet50"]["unavailable"]
    assert "VITAL Table 1 'RN50'" in cells["fid:resnet50"]["backbone"]
    assert cells["fid:tiny64_judge"]["backbone"] == "tiny64_judge penultimate"
    assert cells["fid:self"]["backbone"].startswith("tiny64 penultimate") and cells["fid:self"]["n"] == 16
    # the own-features FID by hand: centre crops of the 16 FVs vs 8 real images of each class
    model = tiny64()
    jobs = [j for j in plan.jobs if j.method == "maco" and j.target.kind == "class"]
    pool = __import__("atlas.data", fromlist=["open_pool"]).open_pool("bundled")
    resize = lambda x: F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)  # noqa: E731
    with torch.no_grad():
        fv = torch.stack([center_crop(read_png(store.job_dir(j.key) / "image.png")) for j in jobs])
        real = torch.cat([pool.reference_images(c, 8, REAL_SIZE, seed=cfg.metrics.seed) for c in (285, 967)])
        a, b = model.penultimate_features(resize(fv)).numpy(), model.penultimate_features(resize(real)).numpy()
        whole = torch.stack([read_png(store.job_dir(j.key) / "image.png") for j in jobs])
        squashed = model.penultimate_features(resize(whole)).numpy()
    assert cells["fid:self"]["value"] == pytest.approx(fn.fid(a, b), rel=1e-3)
    assert cells["fid:self"]["value"] != pytest.approx(fn.fid(squashed, b), rel=1e-3)
    assert cells["fid:tiny64_judge"]["value"] is not None and cells["fid:tiny64_judge"]["value"] != cells["fid:self"]["value"]


def test_cosy_control_images_are_mined_for_every_layer_in_one_sweep_and_never_run_again(tmp_path, monkeypatch):
    """Neurons of two layers: one sweep over the pool ranks the top whole images of both layers (every call
    asks both), and the control images' activations are the scores that sweep measured - the model under study
    runs only the FVs afterwards (until 2026-12-01 the demo's 18 neurons ran their control images again,
    546 images through Lite0 where 150 were distinct, then 150 of which 48 were control images). Each FV's
    layer activation is still computed once, and each neuron reads its own control values."""
    from dataclasses import replace

    from atlas.models.handle import ModelHandle
    from atlas.pipeline import make_plan

    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    cfg = replace(cfg, targets=replace(cfg.targets, neurons=(("relu2", 3), ("relu2", 5), ("relu1", 2))))
    plan = make_plan(cfg)
    for job in plan.jobs:
        if not store.has(job.key):
            store.put(job, fake_visualization(job, size=64))
    puts, asked = [], []
    orig_put, orig_acts = FeatureCache.put, ModelHandle.activations
    monkeypatch.setattr(FeatureCache, "put", lambda self, b, o, i, v: (puts.append((b, o, i)), orig_put(self, b, o, i, v)))
    monkeypatch.setattr(ModelHandle, "activations",
                        lambda self, x, keys: (asked.append((tuple(sorted(keys)), len(x))), orig_acts(self, x, keys))[1])
    _run(cfg, plan, store)
    fvs = {r.sha[:32] for r in done_refs(plan, store, "tiny64") if r.job.target.kind == "neuron"}
    # the sweep: the demo's 24 pool images in batches of 8, both layers at once; then the FVs, one layer each
    assert [n for k, n in asked if k == ("relu1", "relu2")] == [8, 8, 8]
    assert sum(n for k, n in asked if len(k) == 1) == len(fvs)
    layer = [p for p in puts if p[1].startswith("layer:")]
    assert len(layer) == len(set(layer)) > 0, "an image's layer activation was computed more than once"
    assert {i for _, _, i in layer} <= fvs, "a control image went through the model again"
    assert len(puts) == len(set(puts))
    res = load_model_results(store, cfg, "tiny64", plan.classes["tiny64"])
    targets = res["units"]["maco/neuron"]["targets"]
    three, five, two = targets["neuron-relu2-0003"], targets["neuron-relu2-0005"], targets["neuron-relu1-0002"]
    assert three["n_control"] == five["n_control"] == two["n_control"] == 6
    assert len({three["control_mean"], five["control_mean"], two["control_mean"]}) == 3


def test_each_real_image_is_loaded_once_for_all_backbones(tmp_path, monkeypatch):
    """The backbones (here the model under study and its judge) run one after the other over the same real
    images: each class's images are drawn (decoded, randomly cropped) once, not once per backbone, and the
    judge's features are those of the same images."""
    from atlas.data.pools import BundledPool

    cfg, plan, store = tiny_build(tmp_path, monkeypatch)
    drawn = []
    orig = BundledPool.reference_images
    monkeypatch.setattr(BundledPool, "reference_images",
                        lambda self, c, *a, **k: (drawn.append(c), orig(self, c, *a, **k))[1])
    _run(cfg, plan, store)
    backbones = {p.parts[-3] for p in (store.metrics_dir / "features").glob("*/*/*.npy")}
    assert len(backbones) >= 2
    assert sorted(drawn) == sorted(plan.classes["tiny64"])  # one draw per class, whatever the backbones


def test_loaded_images_keep_within_their_budget_and_never_lose_an_image_being_read():
    """The cache of loaded images evicts the least recently used past its budget; an image read from it in
    the same call that loads others (which may evict it) is still returned."""
    from atlas.metrics.cache import ItemGroup
    from atlas.metrics.runner import LoadedImages

    loads = []
    imgs = {f"i{k}": torch.full((3, 4, 4), float(k)) for k in range(4)}  # 192 bytes each
    group = ItemGroup("g", tuple(imgs), lambda idx: (loads.extend(idx), [imgs[f"i{i}"] for i in idx])[1])
    cache = LoadedImages(budget=2 * 192)
    assert [float(x[0, 0, 0]) for x in cache.load(group, [0, 1])] == [0.0, 1.0]
    got = cache.load(group, [2, 3, 0])  # 2 and 3 are loaded and evict 0 and 1, then 0 is returned anyway
    assert [float(x[0, 0, 0]) for x in got] == [2.0, 3.0, 0.0]
    assert loads == [0, 1, 2, 3] and cache.used <= cache.budget
