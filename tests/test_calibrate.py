"""``atlas plan --estimate``: a few steps of each (model, method) timed on this device (the real Lite0 on
the CPU), saved in the store and used by later plans; a model that cannot load keeps the nominal estimate
with its reason."""
import json

from atlas.cli import main
from atlas.config import load_config
from atlas.pipeline import Store, make_plan
from atlas.pipeline.calibrate import calibrate, saved_rates


def _config(tmp_path, models='["efficientnet_lite0"]'):
    path = tmp_path / "c.toml"
    path.write_text(f'preset = "demo"\nmodels = {models}\nclasses = [285, 967, 665]\nmethods = ["fourier"]\n'
                    f'store = "{tmp_path}/store"\nbatch_size = 2\n[settings.fourier]\nsteps = 40\ncrops = 1\n')
    return path


def test_calibration_times_steps_and_is_saved(tmp_path):
    cfg = load_config(_config(tmp_path))
    plan = make_plan(cfg)
    store = Store(cfg.store)
    cals = calibrate(cfg, plan.jobs, store, steps=(1, 3), progress=False)
    cal = cals[("efficientnet_lite0", "fourier")]
    assert cal.rate is not None and cal.rate.per_target_step > 0 and cal.rate.overhead >= 0
    saved = json.loads((store.cache_dir / "calibration.json").read_text())
    assert list(saved) == ["cpu"] and len(saved["cpu"]) == 1
    rates, label = saved_rates(store, plan.jobs, cfg.batch_size, "cpu")
    assert label == "cpu" and rates[("efficientnet_lite0", "fourier")] == cal.rate
    assert not (store.root / "jobs").exists()  # calibrating stores no job


def test_plan_estimate_calibrates_what_it_can(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no resnet50 weights here
    toml = _config(tmp_path, '["efficientnet_lite0", "resnet50"]')
    assert main(["-q", "plan", "--config", str(toml), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "calibrated efficientnet_lite0 fourier:" in out and "ms per target step" in out
    assert "not calibrated resnet50 (fourier): weights for model resnet50 are not available offline" in out
    assert "calibrated on cpu for 1 of 2 (model, method) pairs" in out and "CPU-hours" in out
    assert main(["plan", "--config", str(toml)]) == 0  # a later plan uses the saved calibration
    assert "calibrated on cpu for 1 of 2" in capsys.readouterr().out
