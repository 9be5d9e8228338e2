"""``atlas run --workers N``: the jobs run in N local processes (real spawned processes, real model)."""
from atlas.cli import main
from atlas.pipeline import Store, make_plan
from atlas.config import load_config

CONFIG = """preset = "demo"
classes = [285, 967]
methods = ["maco"]
batch_sizes = {{}}
left_out = {{}}
store = "{store}"
[settings.maco]
steps = 2
crops = 1
image_size = 32
[targets]
concepts = 0
random_neurons = 0
images = 0
kind_methods = {{}}
layers = []
"""


def test_workers_store_every_job_of_the_plan_and_a_second_run_has_nothing_left(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(store=tmp_path / "store"))
    assert main(["-q", "run", "--config", str(cfg), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs run, 0 already in the store (2 of them by 2 worker processes)" in out
    plan = make_plan(load_config(cfg))
    store = Store(tmp_path / "store")
    assert len(plan.jobs) == 2 and all(store.intact(j.key) for j in plan.jobs)
    ledger = (tmp_path / "store" / "ledger").rglob("*")
    assert any("local" in p.read_text() for p in ledger if p.is_file())  # each worker tagged its records
    assert main(["-q", "run", "--config", str(cfg), "--workers", "2"]) == 0
    assert "0 jobs run, 2 already in the store" in capsys.readouterr().out


def test_workers_and_a_shard_are_refused_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(store=tmp_path / "store"))
    assert main(["run", "--config", str(cfg), "--workers", "2", "--shard", "0/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["atlas: error: --workers and --shard do not go together: a shard runs in one process (give one)"]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("meta.json"))


def test_workers_take_batches_model_by_model_the_costliest_first():
    """The queue the workers share: each model's batches together (a worker loads a model once), in the
    plan's model order, within a model by falling estimated cost (the small batches last)."""
    from dataclasses import replace

    from atlas.cli_workers import queue_order
    from atlas.config import PRESETS
    from atlas.pipeline.estimate import relative_cost
    from atlas.pipeline.sharding import plan_batches

    cfg = PRESETS.get("demo")()
    cfg = replace(cfg, models=("efficientnet_lite0", "efficientnet_lite1"), left_out=())
    batches = plan_batches(make_plan(cfg).jobs, cfg.batch_size)
    order = queue_order(batches)
    assert sorted(b.id for b in order) == sorted(b.id for b in batches)
    models = [b.model for b in order]
    assert models == sorted(models, key=["efficientnet_lite0", "efficientnet_lite1"].index)
    for model in ("efficientnet_lite0", "efficientnet_lite1"):
        costs = [relative_cost(b.jobs) for b in order if b.model == model]
        assert len(set(costs)) > 3 and costs == sorted(costs, reverse=True)


def test_workers_bar_estimates_the_time_left_from_the_estimated_cost_done():
    """The costliest batches run first, so after a quarter of the estimated cost the time left is three times
    the time taken, whatever the count of stored jobs; nothing done yet: unknown."""
    from atlas.cli_workers import remaining_time

    assert remaining_time(60.0, 25.0, 100.0) == "<03:00 (by estimated cost)"
    assert remaining_time(5.0, 0.0, 100.0) == "<?"
