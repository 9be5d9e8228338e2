"""The command line: bad input exits 2 with one line and writes nothing; plan works offline."""
import subprocess
import sys

import pytest

from atlas.cli import main


def test_bad_preset(capsys):
    assert main(["plan", "--preset", "dmeo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown preset 'dmeo'; did you mean 'demo'" in err and len(err.splitlines()) == 1


def test_preset_and_config_together(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "demo"\n')
    assert main(["plan", "--preset", "demo", "--config", str(cfg)]) == 2
    assert "either --preset or --config" in capsys.readouterr().err


@pytest.mark.parametrize("toml, needle", [
    ('models = ["resnet5"]', "unknown model 'resnet5'"),
    ('methods = ["macco"]', "unknown method 'macco'"),
    ('classes = [1234]', "unknown class 1234"),
    ('classes = ["espreso"]', "did you mean 'espresso'"),
    ('models = ["resnet50"]\n[targets]\nlayers = []', "not available offline"),  # (the demo sweeps Lite0's blocks.0)
])
@pytest.mark.parametrize("command", ["build", "run"])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, toml, needle, command):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'preset = "demo"\nstore = "{tmp_path}/store"\nsite = "{tmp_path}/site"\n{toml}\n'
                   '[settings.maco]\nsteps = 1\n[settings.fourier]\nsteps = 1\n')
    assert main([command, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "site").exists()
    jobs = tmp_path / "store" / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_missing_data_folder(tmp_path, capsys):
    assert main(["run", "--data", str(tmp_path / "nope"), "--store", str(tmp_path / "s")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_plan_warns_of_a_data_pool_that_is_not_a_folder(tmp_path, capsys):
    """Planning does not read the data (a login node plans without it), but says when the pool the jobs need
    is not a folder here; the bundled pool gets no warning."""
    assert main(["plan", "--data", "/dev/null", "--store", str(tmp_path / "s")]) == 0
    assert "warning: [data] pool /dev/null is not a folder on this machine" in capsys.readouterr().err
    assert main(["plan", "--store", str(tmp_path / "s")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_plan_paper_preset_offline(capsys, monkeypatch):
    from atlas import cli
    from atlas.config import PRESETS

    plans = []  # the plan the command made (planning the paper preset again took 20 s of the suite)
    monkeypatch.setattr(cli, "_plan", lambda cfg, _plan=cli._plan: plans.append((cfg, _plan(cfg))) or plans[-1][1])
    assert main(["plan", "--preset", "paper"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "warning: [data] pool imagenet/train does not exist on this machine" in captured.err
    cfg = PRESETS.get("paper")()
    assert len(plans) == 1 and plans[0][0] == cfg
    plan = plans[0][1]
    n = len(plan.jobs)
    assert n >= 5 * 1000 * 3 * 4  # 5 models x 1000 classes x 3 seeds x every method
    assert "resnet50" in out and "vit_l_32" in out and f"total {n} jobs" in out and "estimated time left" in out
    assert "H100-hours" in out
    assert "skipped: convnext_base deepinversion 3000 targets (e.g. class-0000): deepinversion needs BatchNorm" in out
    planned = {j.method for j in plan.jobs}
    assert planned == set(cfg.methods), f"methods without jobs: {set(cfg.methods) - planned}"
    kinds = {j.target.kind for j in plan.jobs}
    assert kinds == {"class", "concept", "neuron", "image"}
    assert len(out.splitlines()) < 80  # skips are grouped, not listed one per target


def test_every_preset_plans_jobs_for_every_method():
    """Each preset's methods all get jobs (image-seeded methods need [targets] images > 0), except those it
    leaves out with a reason ([left_out]: the demo's data-free inversions)."""
    from atlas.config import PRESETS
    from atlas.pipeline import make_plan

    for name in ("demo", "lens"):
        cfg = PRESETS.get(name)()
        planned = {j.method for j in make_plan(cfg).jobs}
        assert planned == set(cfg.methods) - set(dict(cfg.left_out)), (name, set(cfg.methods) - planned)
        assert not planned & set(dict(cfg.left_out))


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "build" in proc.stdout and "serve" in proc.stdout


def test_check_command(tmp_path, capsys):
    (tmp_path / "index.html").write_text('<a href="missing.html">x</a><img src="https://cdn.example/x.png">')
    assert main(["check", "--site", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "broken reference 'missing.html'" in out and "external reference" in out


def test_a_fresh_clone_can_build_into_the_default_site_folder():
    """`python build.py` writes the README's `site/` and `store/`: the repository must not ship files there
    (a tracked site/README.md made the first command of a fresh clone stop at render: the renderer refuses a
    folder holding files it did not write)."""
    from pathlib import Path

    from atlas.sitegen.writer import check_site_folder

    root = Path(__file__).resolve().parents[1]
    check_site_folder(root / "site")  # raises AtlasError when the folder holds files atlas did not write
    tracked = subprocess.run(["git", "ls-files", "site", "store"], cwd=root, capture_output=True, text=True)
    assert tracked.returncode != 0 or tracked.stdout.strip() == ""
