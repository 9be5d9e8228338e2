"""Bad input, tried systematically: each case ends in one ``atlas: error:`` line (exit 2) that names the bad
value, and nothing is written. Image folders with odd files are handled (see also test_data.py)."""
import numpy as np
import pytest
from PIL import Image

from atlas.cli import main
from atlas.data import open_pool
from atlas.errors import AtlasError
from atlas.models.classes import imagenet_classes

BASE = 'preset = "demo"\nstore = "{tmp}/store"\nsite = "{tmp}/site"\n'

CASES = {
    "misspelled model": ('models = ["efficientnet_lite9"]', "unknown model 'efficientnet_lite9'"),
    "unknown method": ('methods = ["macco"]', "unknown method 'macco'"),
    "unknown preset": ('preset = "dmeo"', "unknown preset 'dmeo'"),
    "unknown class id": ("classes = [1000]", "unknown class 1000"),
    "misspelled class": ('classes = ["espreso"]', "did you mean 'espresso'"),
    "negative neuron": ('[targets]\nneurons = [["blocks.4", -1]]', "targets.neurons"),
    "malformed toml": ("steps = 3 = 4", "is not valid TOML"),
    "unclosed string": ('title = "atlas', "is not valid TOML"),
    "unknown key": ("stepz = 3", "unknown key"),
    "unknown setting": ("[settings.maco]\nstepz = 3", "did you mean 'steps'"),
    "negative steps": ("[settings.maco]\nsteps = -3", "'steps' of method maco must be a positive integer, got -3"),
    "zero steps": ("[settings.fourier]\nsteps = 0", "'steps' of method fourier must be a positive integer, got 0"),
    "negative crops": ("[settings.maco]\ncrops = -1", "'crops' of method maco must be a positive integer, got -1"),
    "nan learning rate": ("[settings.fourier]\nlr = nan", "'lr'"),
    "zero batch size": ("batch_size = 0", "'batch_size' must be a positive integer"),
    "no seeds": ("seeds = []", "'seeds' must be a non-empty list"),
    "wrong type": ("classes = 3.5", "'classes'"),  # a lone string is a class name or range ("0-9")
    "unknown class name": ('classes = "cat"', "unknown class 'cat'; did you mean"),
    "unknown neuron layer": ('[targets]\nneurons = [["blocks.99", 3]]',
                             "unknown layer of model efficientnet_lite0: 'blocks.99'; did you mean"),
    "neuron out of range": ('[targets]\nneurons = [["blocks.6", 320]]',
                            "neuron 320 out of range for layer blocks.6 of efficientnet_lite0: valid channels are 0-319"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration_is_one_line_error_and_writes_nothing(tmp_path, capsys, case):
    text, needle = CASES[case]
    base = BASE.format(tmp=tmp_path)
    if text.startswith("preset"):
        base = base.replace('preset = "demo"\n', "")
    cfg = tmp_path / "c.toml"
    cfg.write_text(base + text + "\n")
    code = main(["-q", "plan", "--config", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("atlas: error: ") and len(err.splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "store").exists() and not (tmp_path / "site").exists()


@pytest.mark.parametrize("folder", ["missing", "empty", "only junk"])
def test_unusable_data_folder_is_one_line_error(tmp_path, capsys, folder):
    data = tmp_path / "data"
    if folder != "missing":
        data.mkdir()
    if folder == "only junk":
        (data / "n02123045").mkdir()
        (data / "n02123045" / "x.JPEG").write_bytes(b"")
        (data / "readme.txt").write_text("hi")
    code = main(["-q", "run", "--data", str(data), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(data) in err, err
    assert not (tmp_path / "store" / "jobs").exists()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_odd_images_are_converted_skipped_or_downsized(tmp_path, monkeypatch):
    """Greyscale, CMYK, 1x1 and an 8000x8000 image load as RGB; unreadable and zero-byte files are skipped
    and counted; a file past Pillow's decompression-bomb limit is skipped, not fatal."""
    wnid = imagenet_classes()[1][285]
    d = tmp_path / "data" / wnid
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(d / "grey.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 4), dtype=np.uint8), "CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.full((1, 1, 3), 200, dtype=np.uint8)).save(d / "one.png")
    Image.new("RGB", (8000, 8000), (10, 200, 30)).save(d / "huge.JPEG", quality=50)
    (d / "broken.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    (d / "empty.png").write_bytes(b"")
    pool = open_pool(str(tmp_path / "data"))
    refs = pool.reference_images(285, 6, 32, seed=0, allow_fewer=True)
    assert refs.shape == (4, 3, 32, 32) and bool(refs.isfinite().all())
    assert sorted(s.split(":")[0].rsplit("/", 1)[-1] for s in pool.skipped) == ["broken.JPEG", "empty.png"]
    greens = [r for r in refs if abs(float(r[1].mean()) - 200 / 255) < 0.05 and float(r[0].mean()) < 0.1]
    assert len(greens) == 1  # the huge image, downsized, keeps its colour
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # every image past it is a decompression bomb
    bomb = open_pool(str(tmp_path / "data"))
    assert bomb.reference_images(285, 6, 32, seed=0, allow_fewer=True).shape[0] == 3
    assert any("huge.JPEG" in s for s in bomb.skipped)
    with pytest.raises(AtlasError, match="fewer than the 7 references"):
        pool.reference_images(285, 7, 32)


def test_hostile_class_names_are_escaped_and_never_become_paths(tmp_path):
    """Class names holding HTML, quotes and path characters (as a class-name file could): every page shows
    them escaped, no file name is built from them, nothing is written outside the site."""
    import dataclasses
    import json

    from atlas.pipeline import Store, make_plan
    from atlas.sitegen import render
    from atlas.sitegen.check import check_site
    from helpers import fake_visualization, quick_config

    hostile = {285: '<img src=x onerror="alert(1)">', 967: "../../../etc/passwd", 665: "a/b\\c\x00 d\"'&"}
    cfg = quick_config(tmp_path, classes=(285, 967, 665), methods=("fourier",))
    plan = make_plan(cfg)
    info = plan.models[cfg.models[0]]  # the class names pages show come from the plan's model record
    names = tuple(hostile.get(i, n) for i, n in enumerate(info.class_names))
    plan.models[cfg.models[0]] = dataclasses.replace(info, class_names=names)
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job))
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "store" not in p.relative_to(tmp_path).parts]
    assert all(site in p.parents or p.name == "c.toml" for p in files)  # nothing outside the site
    assert not [p for p in files if "passwd" in str(p) or "onerror" in str(p)]
    for p in site.rglob("*.html"):
        html = p.read_text()
        assert "<img src=x" not in html and "\x00" not in html
    page = (site / "efficientnet_lite0/class/0285.html").read_text()
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page or "&lt;img src=x onerror=&quot;" in page
    index = (site / "search.json").read_text()
    assert json.loads(index)  # the names stay data, valid JSON
    assert check_site(site) == []


@pytest.mark.parametrize("layer, channel, needle", [
    ("blocks.99", 3, "unknown layer"),
    ("blocks.4", 99999, "neuron 99999 out of range for layer blocks.4"),
])
def test_unknown_layer_or_neuron_index_stops_the_plan_with_one_line(tmp_path, layer, channel, needle):
    """Layers and channel counts come from the architecture alone (meta device, no weights), so the plan
    stops with one line before any job runs, even before class jobs of the same run."""
    from atlas.pipeline import make_plan
    from helpers import quick_config

    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",), steps=1,
                       targets={"neurons": [[layer, channel]]})
    with pytest.raises(AtlasError, match=needle) as info:
        make_plan(cfg)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()


def test_listed_neuron_layer_of_one_model_is_skipped_for_the_others(tmp_path):
    """With several models, a listed layer that only one has (ResNet50's layer4) gives neuron jobs for
    that model and a printed skip for the others; its channel range is still checked."""
    from dataclasses import replace

    from atlas.pipeline import make_plan
    from helpers import quick_config

    cfg = quick_config(tmp_path, classes=(285,), methods=("fourier",), steps=1,
                       targets={"neurons": [["layer4", 2047]], "classes": False})
    cfg = replace(cfg, models=("efficientnet_lite0", "resnet50"))
    plan = make_plan(cfg)
    assert {(j.model, j.target.layer, j.target.channel) for j in plan.jobs} == {("resnet50", "layer4", 2047)}
    assert any(m == "efficientnet_lite0" and "no layer 'layer4'" in why for m, _, why in plan.source_skips)
    with pytest.raises(AtlasError, match="valid channels are 0-2047"):
        make_plan(replace(cfg, targets=replace(cfg.targets, neurons=(("layer4", 2048),))))
