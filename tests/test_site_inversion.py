"""The site shows the data-free methods beside the others: the batch size used on every figure, and the
methods the plan skipped for a class (DeepInversion on a ViT) with the reason."""
from atlas.pipeline import Store, make_plan
from atlas.sitegen import paths, render
from atlas.sitegen.check import check_site
from helpers import fake_visualization, quick_config


def test_batch_size_and_skipped_methods_are_shown(tmp_path):
    cfg = quick_config(tmp_path, classes=(285, 967), methods=("maco", "deepinversion", "plugin_inversion"),
                       models=["efficientnet_lite0", "vit_l_16"], settings={})
    plan = make_plan(cfg)
    store = Store(cfg.store)
    for job in plan.jobs:
        vis = fake_visualization(job)
        vis.info = {"batch": 2 if job.method == "deepinversion" else 1, "batch_classes": [285, 967]}
        store.put(job, vis)
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    assert check_site(site) == []
    lite = (site / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert ">DeepInversion</a></h2>" in lite and ">Plug-In Inversion</a></h2>" in lite
    assert "batch 2" in lite and "batch 1" in lite
    assert "Methods not run for this class" not in lite
    vit = (site / "vit_l_16" / "class" / "0285.html").read_text()
    assert ">DeepInversion</a></h2>" not in vit and ">Plug-In Inversion</a></h2>" in vit
    assert "Methods not run for this class" in vit
    assert "DeepInversion</a>: skipped — deepinversion needs BatchNorm layers" in vit
    assert "vit_l_16 has none" in vit
    di = next(j for j in plan.jobs if j.method == "deepinversion")
    # the full record (settings, batch) is on the figure's versioned page
    fig = (site / paths.versioned(paths.figure_page(di.model, di.method, di.target, di.seed), di.key)).read_text()
    assert "batch: 2" in fig and "batch classes: [285, 967]" in fig


def rendered(cfg, plan, tmp_path):
    """The site of ``plan`` with a fake image for every job, checked: its folder."""
    store = Store(cfg.store)
    for job in plan.jobs:
        store.put(job, fake_visualization(job))
    render(plan, store, cfg.site)
    site = tmp_path / "site"
    assert check_site(site) == []
    return site


def test_left_out_methods_are_skipped_with_their_reason_on_every_page(tmp_path):
    """``[left_out]`` (the demo leaves out the data-free inversions): no job, every target it would take
    skipped with the reason, which the class page, the method page, the about page and the index give; the
    method filter and the compare page offer only the methods that ran."""
    cfg = quick_config(tmp_path, classes=(285,), methods=("maco", "plugin_inversion"), settings={},
                       left_out={"plugin_inversion": "its images are noise at this budget"})
    plan = make_plan(cfg)
    assert {j.method for j in plan.jobs} == {"maco"}
    assert [(s.method, s.reason) for s in plan.skipped] == [
        ("plugin_inversion", "left out of this atlas: its images are noise at this budget")]
    site = rendered(cfg, plan, tmp_path)
    cls = (site / "efficientnet_lite0" / "class" / "0285.html").read_text()
    assert "Plug-In Inversion</a>: skipped — left out of this atlas: its images are noise at this budget" in cls
    method = (site / paths.method_page("plugin_inversion")).read_text()
    assert "Not run in this atlas:</strong> its images are noise at this budget" in method
    assert "All its images" not in method and "All its images" in (site / paths.method_page("maco")).read_text()
    assert "Not run in this atlas: its images are noise at this budget" in (site / "about.html").read_text()
    index = (site / "index.html").read_text()
    assert 'value="maco"' in index and 'value="plugin-inversion"' not in index and 'value="plugin_inversion"' not in index
    assert "Not run here:" in index
    compare = (site / paths.COMPARE_PAGE).read_text()
    assert "Plug-In Inversion</option>" not in compare and "MACO</option>" in compare


def test_one_kind_of_a_methods_targets_is_left_out_with_its_reason(tmp_path):
    """``[left_out] "vital.neuron"`` (the demo's VITAL neurons, noise at its budget): VITAL's class targets
    run, its neuron targets are skipped with the reason, which the model page and VITAL's page give, while
    MACO still visualises the neuron; a kind the method does not visualise is a one-line error."""
    import pytest

    from atlas.errors import AtlasError

    cfg = quick_config(tmp_path, classes=(285,), methods=("maco", "vital"), settings={},
                       targets={"neurons": [["blocks.4", 96]], "kind_methods": {"neuron": ["maco", "vital"]}},
                       left_out={"vital.neuron": "its neuron images are noise at this budget"})
    plan = make_plan(cfg)
    assert sorted((j.method, j.target.kind) for j in plan.jobs) == [
        ("maco", "class"), ("maco", "neuron"), ("vital", "class")]
    assert [(s.method, s.target.kind, s.reason) for s in plan.skipped] == [
        ("vital", "neuron", "left out of this atlas: its neuron images are noise at this budget")]
    site = rendered(cfg, plan, tmp_path)
    method = (site / paths.method_page("vital")).read_text()
    assert "Its neuron targets are not run in this atlas:</strong> its neuron images are noise" in method
    assert "All its images" in method  # the method itself ran (its class targets)
    assert "Its neuron targets" not in (site / paths.method_page("maco")).read_text()
    model = next(p for p in site.glob("efficientnet_lite0/*.html") if "model-notes" in p.read_text())
    assert "VITAL, 1 neuron target: left out of this atlas: its neuron images are noise" in model.read_text()
    neuron = (site / "efficientnet_lite0" / "neuron" / "blocks.4-0096.html").read_text()
    assert "Methods not run for this neuron" in neuron and ">MACO</h2>" in neuron  # MACO's image, VITAL's reason
    assert "VITAL</a>: skipped — left out of this atlas: its neuron images are noise at this budget" in neuron
    for key, message in (("vital.neurons", "unknown target kind of vital in [left_out] ('vital.neurons'): "
                                           "'neurons'; did you mean 'neuron'?"),
                         ("deepinversion.neuron", "unknown target kind of deepinversion in [left_out] "
                                                  "('deepinversion.neuron'): 'neuron'; choose from: class"),
                         ("vitl.neuron", "unknown method in [left_out]: 'vitl'")):
        with pytest.raises(AtlasError) as err:
            make_plan(quick_config(tmp_path, classes=(285,), left_out={key: "x"}))
        assert str(err.value).startswith(message)


def test_the_demo_leaves_out_the_data_free_inversions_and_vital_neurons_with_a_measured_reason():
    from atlas.config import PRESETS

    demo = PRESETS.get("demo")()
    left = dict(demo.left_out)
    assert set(left) == {"deepinversion", "deepinversion_ms", "plugin_inversion", "vital.neuron"}
    assert {k.partition(".")[0] for k in left} <= set(demo.methods)
    assert all("% of their luminance power" in why for why in left.values())
