"""After a run, images whose target score did not rise are named (DESIGN.md: every image visibly
optimised) — judged from the scores each method stores."""
from helpers import fake_visualization

from atlas.cli import main
from atlas.methods import METHODS


def _toml(tmp_path, steps=2):
    tmp_path.mkdir(parents=True, exist_ok=True)
    toml = tmp_path / "a.toml"
    toml.write_text(f'preset = "demo"\nclasses = [285, 967]\nmethods = ["fourier"]\nstore = "{tmp_path}/store"\n'
                    f'site = "{tmp_path}/site"\n[settings.fourier]\nsteps = {steps}\ncrops = 2\n'
                    '[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\n')
    return toml


def test_a_real_run_long_enough_raises_every_logit_and_prints_no_warning(tmp_path, capsys):
    # (2 steps of one crop are not enough: both logits fell in that setting, and both were named)
    assert main(["-q", "run", "--config", str(_toml(tmp_path, steps=24))]) == 0
    out = capsys.readouterr().out
    assert "2 jobs run" in out and "did not raise" not in out, out


def test_an_image_whose_logit_fell_is_named_after_the_run(tmp_path, monkeypatch, capsys):
    method = METHODS.get("fourier")

    def flat_for_espresso(ctx, cfg, targets, seeds):
        out = []
        for t in targets:
            vis = fake_visualization(type("J", (), {"key": f"{t.slug()}-{seeds[0]}", "target": t})())
            if t.class_id == 967:
                vis.scores.update(logit_start=3.0, logit_end=1.5)
            out.append(vis)
        return out

    monkeypatch.setattr(method, "run", flat_for_espresso)
    assert main(["-q", "run", "--config", str(_toml(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "warning: 1 of 2 images did not raise their target's score" in out, out
    assert "efficientnet_lite0/fourier/class-0967/s0: logit 3 -> 1.5" in out
    assert "class-0285" not in out
