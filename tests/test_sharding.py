"""Batches formed from the whole plan, cost-balanced shards, the ledger and the estimates (no model runs:
the method is replaced by a recorder where a run is needed)."""
import dataclasses
import json

import pytest
from helpers import fake_visualization, quick_config

from atlas.cli import main
from atlas.errors import AtlasError
from atlas.pipeline import Runner, Store, make_plan
from atlas.pipeline.estimate import (
    H100_PEAK_FLOPS,
    Rate,
    assumed_utilisation,
    estimate_seconds,
    gpu_hours,
    job_flops,
    peak_hours,
    relative_cost,
)
from atlas.pipeline.ledger import Ledger, completions, read_ledger
from atlas.pipeline.sharding import assign, parse_shard, plan_batches, shard_batches

CLASSES = (285, 967, 665, 872, 985, 657, 1, 2, 3, 4, 5)


def uneven_config(tmp_path, **extra):
    """MACO costs 15x Fourier per job here, so equal job counts are far from equal work."""
    return quick_config(tmp_path, classes=CLASSES, batch_size=2,
                        settings={"maco": {"steps": 30, "crops": 1}, "fourier": {"steps": 2, "crops": 1}}, **extra)


def test_batches_cover_the_plan_in_whole_groups(tmp_path):
    plan = make_plan(uneven_config(tmp_path))
    bs = plan_batches(plan.jobs, 2)
    assert sorted(k for b in bs for k in b.keys) == sorted(j.key for j in plan.jobs)
    assert all(len({j.batch_group() for j in b.jobs}) == 1 and 1 <= len(b) <= 2 for b in bs)
    assert len({b.id for b in bs}) == len(bs)
    # the same batches every time the plan is made
    assert [b.id for b in plan_batches(make_plan(uneven_config(tmp_path)).jobs, 2)] == [b.id for b in bs]


def test_per_method_batch_sizes_cut_the_batches_and_enter_the_keys(tmp_path):
    """[batch_sizes] sets a method's targets per batch; a job's key records a batch size above 1 (its image
    depends on the batch), so a job optimised alone keeps its key and a batched one gets another."""
    alone = make_plan(uneven_config(tmp_path, batch_sizes={"maco": 1, "fourier": 1}))
    mixed = make_plan(uneven_config(tmp_path, batch_sizes={"maco": 4, "fourier": 1}))
    sizes = {(b.method, len(b)) for b in plan_batches(mixed.jobs, 1)}
    assert ("maco", 4) in sizes and {n for m, n in sizes if m == "fourier"} == {1}
    keys = {j.method: set() for j in alone.jobs}
    for j in alone.jobs:
        keys[j.method].add(j.key)
    assert {j.key for j in mixed.jobs if j.method == "fourier"} == keys["fourier"]
    assert not {j.key for j in mixed.jobs if j.method == "maco"} & keys["maco"]
    with pytest.raises(AtlasError, match="batch_sizes.maco' must be a positive integer"):
        make_plan(uneven_config(tmp_path, batch_sizes={"maco": 0}))


def test_shards_partition_the_batches_and_balance_cost_not_count(tmp_path):
    plan = make_plan(uneven_config(tmp_path))
    bs = plan_batches(plan.jobs, 2)
    shards = assign(bs, 3)
    ids = [b.id for s in shards for b in s]
    assert sorted(ids) == sorted(b.id for b in bs) and len(set(ids)) == len(ids)
    loads = [relative_cost([j for b in s for j in b.jobs]) for s in shards]
    biggest = max(relative_cost(b.jobs) for b in bs)
    assert max(loads) - min(loads) <= biggest + 1e-9
    counts = [sum(len(b) for b in s) for s in shards]
    assert len(set(counts)) > 1  # balanced by cost, hence unequal job counts
    # a split by count (consecutive thirds) would be far less balanced
    thirds = [bs[i::3] for i in range(3)]
    naive = [relative_cost([j for b in s for j in b.jobs]) for s in thirds]
    assert max(loads) / min(loads) < max(naive) / min(naive)
    # shards keep plan order inside (one model load per group)
    order = {b.id: i for i, b in enumerate(bs)}
    assert all([order[b.id] for b in s] == sorted(order[b.id] for b in s) for s in shards)


def test_shard_share_does_not_depend_on_what_is_done(tmp_path):
    cfg = uneven_config(tmp_path)
    plan = make_plan(cfg)
    before = [b.id for b in shard_batches(plan.jobs, 2, 1, 3)]
    store = Store(cfg.store)
    for j in plan.jobs[::2]:
        store.put(j, fake_visualization(j))
    assert [b.id for b in shard_batches(make_plan(cfg).jobs, 2, 1, 3)] == before


@pytest.mark.parametrize("text", ["4/4", "a/b", "-1/3", "1", "2/0", ""])
def test_bad_shard_is_a_one_line_error(text):
    with pytest.raises(AtlasError) as err:
        parse_shard(text)
    assert "i/n" in str(err.value) or "0..n-1" in str(err.value)
    assert "\n" not in str(err.value)


def test_run_with_bad_shard_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["run", "--shard", "3/3", "--store", str(tmp_path / "s")]) == 2
    assert "bad shard '3/3'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


class Recorder:
    """Stands in for a method's ``run``: records each call's targets and returns fake results."""

    def __init__(self, jobs):
        self.by_target = {(j.method, j.target): j for j in jobs}
        self.calls = []

    def __call__(self, method_name):
        def run(ctx, cfg, targets, seeds):
            self.calls.append((method_name, tuple(t.class_id for t in targets)))
            return [fake_visualization(self.by_target[(method_name, t)]) for t in targets]

        return run


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    from atlas.methods import METHODS

    cfg = uneven_config(tmp_path)
    plan = make_plan(cfg)
    rec = Recorder(plan.jobs)
    for name in cfg.methods:
        monkeypatch.setattr(METHODS.get(name), "run", rec(name))
    monkeypatch.setattr(Runner, "context", lambda self, model: None)
    return cfg, plan, rec


def test_resumed_run_keeps_the_plan_batches_and_never_recomputes(recorded):
    """A run resumed after some jobs finished optimises the same batches as an uninterrupted run (a batch
    that was cut in half by a kill is optimised whole again - a job's image depends on its batch-mates -
    and only its missing job is stored), and records each job once in the ledger."""
    cfg, plan, rec = recorded
    store = Store(cfg.store)
    full = [(b.method, tuple(j.target.class_id for j in b.jobs)) for b in plan_batches(plan.jobs, 2)]
    first = plan.jobs[0]  # the first job of the first batch is already stored
    store.put(first, fake_visualization(first))
    report = Runner(cfg, store, progress=False).run(plan.jobs)
    assert report.done == len(plan.jobs) - 1 and report.cached == 1
    assert rec.calls == full  # the partial batch runs whole, as in an uninterrupted run
    counts = completions(store.root)
    assert set(counts) == {j.key for j in plan.jobs} - {first.key} and set(counts.values()) == {1}
    again = Runner(cfg, store, progress=False).run(plan.jobs)
    assert again.done == 0 and len(rec.calls) == len(full)
    meta = store.meta(plan.jobs[-1].key)
    assert meta["info"]["device"] == "cpu" and meta["info"]["precision"] == "fp32"


def test_shards_together_run_every_batch_once(recorded):
    cfg, plan, rec = recorded
    store = Store(cfg.store)
    for i in range(3):
        Runner(cfg, store, progress=False, tags={"shard": f"{i}/3"}).run_batches(shard_batches(plan.jobs, 2, i, 3))
    assert sorted(rec.calls) == sorted((b.method, tuple(j.target.class_id for j in b.jobs))
                                       for b in plan_batches(plan.jobs, 2))
    assert all(store.has(j.key) for j in plan.jobs)
    assert {r["shard"] for r in read_ledger(store.root)} == {"0/3", "1/3", "2/3"}


def test_ledger_skips_a_torn_line(tmp_path):
    led = Ledger(tmp_path, {"shard": 1})
    led.record(["a", "b"], 1.5)
    with open(led.path, "a") as fh:
        fh.write('{"keys": ["c"], "seco')  # killed mid-line
    assert completions(tmp_path) == {"a": 1, "b": 1}
    rec = next(read_ledger(tmp_path))
    assert rec["shard"] == 1 and rec["seconds"] == 1.5


def test_flops_and_h100_hours(tmp_path):
    cfg = quick_config(tmp_path, models=["resnet50"], classes=(1, 2), methods=("maco",), steps=256)
    plan = make_plan(cfg)
    job = plan.jobs[0]
    assert job_flops(job) == pytest.approx(256 * 1 * 2 * 2 * 4.1e9)  # passes x (fwd+bwd) x FLOPs/MAC x GMACs
    assert peak_hours(plan.jobs) == pytest.approx(2 * 256 * 4 * 4.1e9 / H100_PEAK_FLOPS["bf16"] / 3600)
    assert peak_hours(plan.jobs, "fp32") > peak_hours(plan.jobs, "bf16")
    # measured utilisation and loop ratio scale the peak figure
    assert gpu_hours(plan.jobs, utilisation=0.5, loop_ratio=0.8) == pytest.approx(peak_hours(plan.jobs) / 0.4)
    assert gpu_hours(plan.jobs) == pytest.approx(peak_hours(plan.jobs) / (0.10 * 0.85))  # convnet assumption
    assert assumed_utilisation("vit_l_16") == 0.40 and assumed_utilisation("timm:vit_base_patch16_224") == 0.40


def test_calibrated_rates_come_first(tmp_path):
    plan = make_plan(quick_config(tmp_path, classes=(1, 2, 3, 4), methods=("maco",), steps=10))
    nominal = estimate_seconds(plan.jobs)
    cal = {("efficientnet_lite0", "maco"): Rate(overhead=2.0, per_target_step=0.5)}
    assert estimate_seconds(plan.jobs, calibrated=cal, batch=2) == pytest.approx(4 * (2.0 / 2 + 10 * 0.5))
    assert estimate_seconds(plan.jobs, {("efficientnet_lite0", "maco"): 1.0}) == pytest.approx(4 * 10 * 1)
    assert nominal > 0


def test_saved_calibration_is_used_by_plan(tmp_path, capsys):
    from atlas.pipeline.calibrate import _entry_key

    from atlas.config import load_config

    cfg = quick_config(tmp_path, classes=(1, 2), methods=("fourier",), steps=10)
    store = Store(cfg.store)
    toml = tmp_path / "c.toml"
    toml.write_text(f'preset = "demo"\nclasses = [1, 2]\nmethods = ["fourier"]\nstore = "{cfg.store}"\n'
                    '[batch_sizes]\n[targets]\nconcepts = 0\nrandom_neurons = 0\nimages = 0\nlayers = []\n'
                    '[settings.fourier]\nsteps = 10\ncrops = 1\n')
    job = make_plan(load_config(toml)).jobs[0]
    key = _entry_key(job, job.batch, "bf16")  # saved at the size of the batch the plan forms
    store.cache_dir.mkdir(parents=True)
    (store.cache_dir / "calibration.json").write_text(json.dumps(
        {"cuda:NVIDIA H100 80GB HBM3": {key: {"overhead": 0.0, "per_target_step": 36.0}}}))
    assert main(["plan", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "calibrated on cuda:NVIDIA H100 80GB HBM3" in out and "0.2 GPU-hours" in out  # 2 x 10 x 36 s


def test_a_shard_prepares_only_the_concept_banks_and_scans_its_own_jobs_need(tmp_path, monkeypatch):
    """Run stages of a shard cover its own batches: the CRAFT bank of the class whose concept job it runs,
    not every class's (32 shards would otherwise each fit all 1000 banks); no neuron scan without neuron
    jobs. A run of the whole plan prepares the rest (every class's bank, for the site)."""
    import atlas.concepts.bank as bank
    import atlas.concepts.examples as examples
    from atlas.pipeline.sharding import plan_batches

    cfg = quick_config(tmp_path, classes=(285, 967), methods=("maco",), steps=1,
                       targets={"concepts": 2, "concept_settings": {"images": 2, "visualise": 1},
                                "random_neurons": 1, "neuron_settings": {"max_images": 4, "examples": 2}})
    plan = make_plan(cfg)
    fitted, scanned = [], []
    real_bank, real_examples = bank.class_bank, examples.neuron_examples
    monkeypatch.setattr(bank, "class_bank", lambda *a, **k: (fitted.append(a[4]), real_bank(*a, **k))[1])
    monkeypatch.setattr(examples, "neuron_examples",
                        lambda *a, **k: (scanned.append(a[4]), real_examples(*a, **k))[1])
    batches = plan_batches(plan.jobs, 1)
    concept_285 = [b for b in batches if b.jobs[0].target.kind == "concept" and b.jobs[0].target.class_id == 285]
    store = Store(cfg.store)
    Runner(cfg, store, progress=False).run_batches(concept_285)
    assert set(fitted) == {285} and scanned == []  # (the concept job reads its bank too)
    assert all(store.has(j.key) for b in concept_285 for j in b.jobs)
    Runner(cfg, store, progress=False).run(plan.jobs)
    assert 967 in fitted
    assert scanned and all(store.has(j.key) for j in plan.jobs)


def test_a_neurons_job_is_charged_for_the_depth_of_its_pass_and_vitals_neuron_steps():
    """A pass that stops at a layer costs what the layer's depth costs (the demo's ledger: a MACO step at
    Lite0's blocks.0 took 0.31 of a class step); VITAL's neuron jobs run ``neuron_steps`` of a pass and an
    LRP pass, not its class ``steps``."""
    from atlas.config import PRESETS
    from atlas.models.footprint import layer_depths
    from atlas.pipeline.estimate import FIXED_STEP_SHARE, depth_factor

    jobs = make_plan(dataclasses.replace(PRESETS.get("demo")(), left_out=())).jobs  # VITAL's neurons included

    def one(method, kind, layer=None):
        return next(j for j in jobs if j.method == method and j.target.kind == kind
                    and (layer is None or j.target.layer == layer))

    depths = layer_depths("efficientnet_lite0")
    assert 0 < depths["blocks.0"] < depths["blocks.4"] < depths["blocks.6"] < depths["bn2"] <= 1.0
    shallow, deep, whole = one("maco", "neuron", "blocks.0"), one("maco", "neuron", "blocks.6"), one("maco", "class")
    per_pass = lambda j: relative_cost([j]) / (j.config.steps * j.config.crops)  # noqa: E731
    assert per_pass(shallow) < 0.35 * per_pass(whole)
    assert per_pass(shallow) < per_pass(deep) < per_pass(whole)
    assert depth_factor(shallow) == pytest.approx(FIXED_STEP_SHARE + (1 - FIXED_STEP_SHARE) * depths["blocks.0"])
    v_class, v_neuron = one("vital", "class"), one("vital", "neuron")
    cfg = v_neuron.config
    assert relative_cost([v_neuron]) == pytest.approx(
        relative_cost([v_class]) * 2 * cfg.neuron_steps / cfg.steps * depth_factor(v_neuron))


def test_an_accentuation_is_charged_for_its_seed_views_and_its_mask():
    """Besides its loop's views, an accentuation runs each seed view forward to the regularisation layer
    and a Grad-CAM pass per natural image of its collective mask (the demo's ledger ran accentuation at
    3.3x its nominal cost when only ``steps x crops`` were charged, the other methods at 1.6-1.8x)."""
    from atlas.config import PRESETS
    from atlas.methods import METHODS

    jobs = make_plan(PRESETS.get("demo")()).jobs
    job = next(j for j in jobs if j.method == "accentuation")
    cfg = job.config
    loop = cfg.steps * cfg.crops
    more = dataclasses.replace(cfg, mask_images=cfg.mask_images + 5)
    method = METHODS.get("accentuation")
    assert method.passes_per_target(cfg) == pytest.approx(loop * 4 / 3 + cfg.mask_images + 2)
    assert method.passes_per_target(more) == pytest.approx(method.passes_per_target(cfg) + 5)
    maco = next(j for j in jobs if j.method == "maco" and j.target.kind == "class")
    per_view = lambda j: relative_cost([j]) / (j.config.steps * j.config.crops)  # noqa: E731
    assert per_view(job) > 1.3 * per_view(maco)  # both whole passes of Lite0; accentuation's views cost more
