"""GPU throughput settings, checked on the CPU: bf16 autocast within the stated tolerance, channels-last,
the cuDNN/TF32 flags, and a loop that never makes the host wait for the device. Tests whose subject needs
a real GPU say so in their name (``_mocked_gpu``: the GPU query is mocked; ``_cuda``: skipped here)."""
import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from atlas.config import DataConfig
from atlas.data import open_pool
from atlas.methods import METHODS, RunContext
from atlas.optim import OptimizerSpec, TargetRNG, optimize
from atlas.optim import objectives as obj
from atlas.optim import transforms as T
from atlas.optim.param import FourierParam
from atlas.pipeline.compute import compute_settings, prepare_model, resolve_precision
from atlas.config import ComputeConfig
from atlas.targets import Target

PHOTO_CLASSES = (285, 967, 665, 872)


@pytest.fixture(scope="module")
def photos():
    pool = open_pool("bundled")
    x = torch.cat([torch.as_tensor(np.asarray(pool.reference_images(c, 1, 224, seed=0))) for c in PHOTO_CLASSES])
    return (x.permute(0, 3, 1, 2) if x.shape[-1] == 3 else x).float().contiguous()


def _logits_and_grad(model, x, autocast):
    model.autocast = autocast
    try:
        x = x.clone().requires_grad_(True)
        logits = model(x)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
        return logits.detach(), x.grad
    finally:
        model.autocast = None


def test_bf16_autocast_within_stated_tolerance(lite0, photos):
    """The tolerance stated in atlas.pipeline.compute, on real photos and real weights."""
    ref, g_ref = _logits_and_grad(lite0, photos, None)
    bf, g_bf = _logits_and_grad(lite0, photos, torch.bfloat16)
    noise = (torch.rand(photos.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.1
    noisy, g_noisy = _logits_and_grad(lite0, photos + noise, None)
    assert bf.dtype == torch.float32 and g_bf.dtype == torch.float32
    assert torch.equal(bf.argmax(1), ref.argmax(1))
    spread = ref.std(1)
    bf_dev = (bf - ref).abs().mean(1) / spread
    noise_dev = (noisy - ref).abs().mean(1) / spread
    assert float(bf_dev.max()) <= 0.1
    assert bool((bf_dev <= noise_dev / 5).all())
    cos = torch.nn.functional.cosine_similarity(g_bf.flatten(1), g_ref.flatten(1), dim=1)
    cos_noise = torch.nn.functional.cosine_similarity(g_noisy.flatten(1), g_ref.flatten(1), dim=1)
    assert float(cos.min()) >= 0.7 and bool((cos > cos_noise).all())


def test_bf16_optimisation_reaches_its_target(lite0, tmp_path):
    ctx = RunContext(model=lite0, data=DataConfig(spectrum_images=4), cache_dir=tmp_path,
                     pool_factory=lambda: open_pool("bundled"))
    method = METHODS.get("fourier")
    cfg = method.config({"steps": 10, "crops": 1, "crop_size": 0.5, "crop_size_std": 0.15})
    lite0.autocast = torch.bfloat16
    try:
        vis = method.run(ctx, cfg, [Target.of_class(967)], [3])[0]
    finally:
        lite0.autocast = None
    assert np.isfinite(vis.image).all()
    assert vis.scores["logit_end"] > vis.scores["logit_start"] + 1.0  # scored in fp32 after the run


def test_channels_last_matches_contiguous(lite0, photos):
    import copy

    handle = copy.copy(lite0)
    handle.module = copy.deepcopy(lite0.module).to(memory_format=torch.contiguous_format)
    handle.channels_last = False
    with torch.no_grad():
        a, b = lite0(photos), handle(photos)
    assert float((a - b).abs().max()) <= 1e-3


def test_prepare_model_applies_precision_and_memory_format(tiny):
    tiny.channels_last = True
    assert prepare_model(tiny, ComputeConfig(precision="bf16"), "cpu") == "bf16"
    assert tiny.autocast is torch.bfloat16
    with tiny.capture(["relu2"]) as acts:
        out = tiny(torch.rand(2, 3, 32, 32))
    assert out.dtype == torch.float32 and acts["relu2"].dtype == torch.float32
    assert prepare_model(tiny, ComputeConfig(precision="auto", channels_last=False), "cpu") == "fp32"
    assert tiny.autocast is None and tiny.channels_last is False


def test_precision_auto_is_bf16_only_on_a_capable_gpu_mocked_gpu(monkeypatch):
    auto = ComputeConfig()
    assert resolve_precision(auto, "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision(auto, "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(auto, "cuda") == "fp32"  # e.g. a V100
    assert resolve_precision(ComputeConfig(precision="fp32"), "cuda") == "fp32"


def test_a_bf16_job_and_an_fp32_job_of_one_target_are_two_jobs(tmp_path, monkeypatch):
    """Precision is part of a job's identity: two keys, both in one store, each computed (and recorded) in
    the precision its key names, whatever the runner's own setting; ``auto`` resolves where the plan is
    made, and a submission pins it for its tasks."""
    from dataclasses import replace

    from atlas.pipeline import Runner, Store, make_plan
    from atlas.pipeline.cluster import absolute_config
    from helpers import quick_config

    cfg = quick_config(tmp_path, classes=(285,), methods=("maco",), compute={"precision": "fp32"})
    p32 = make_plan(cfg)
    p16 = make_plan(replace(cfg, compute=replace(cfg.compute, precision="bf16")))
    (a,), (b,) = p32.jobs, p16.jobs
    assert a.target == b.target and a.seed == b.seed and (a.precision, b.precision) == ("fp32", "bf16")
    assert a.key != b.key and a != b and a.batch_group() != b.batch_group()
    store = Store(cfg.store)
    runner = Runner(cfg, store, progress=False)  # configured fp32: the bf16 job still runs in bf16
    assert runner.run(p32.jobs + p16.jobs).done == 2
    for job in (a, b):
        meta = store.meta(job.key)
        assert meta["precision"] == meta["info"]["precision"] == job.precision
    auto = replace(cfg, compute=replace(cfg.compute, precision="auto"))
    assert make_plan(auto).jobs[0].key == a.key  # auto on this CPU: fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # mock: no GPU here (the plan only asks)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    on_gpu = replace(auto, device="cuda")
    assert make_plan(on_gpu).jobs[0].precision == "bf16"
    assert absolute_config(on_gpu).compute.precision == "bf16" and absolute_config(cfg).compute.precision == "fp32"


def test_cudnn_autotuning_and_tf32_only_during_a_cuda_run():
    flags = lambda: (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,  # noqa: E731
                     torch.backends.cudnn.allow_tf32)
    before = flags()
    with compute_settings(ComputeConfig(cudnn_benchmark=True, tf32=True), "cuda"):
        assert flags() == (True, True, True)
    assert flags() == before
    with compute_settings(ComputeConfig(cudnn_benchmark=True, tf32=True), "cpu"):
        assert flags() == before  # nothing to tune on the CPU


class HostReads(TorchDispatchMode):
    """Records operations that copy a tensor's value to the host (``.item()``, ``int(t)``, ``bool(t)``,
    ``nonzero``...) when called from atlas code: on a GPU each of them makes the host wait for the device.
    (The optimisers' own step counters live on the host in torch and are not atlas's to change.)"""

    SYNCING = ("aten._local_scalar_dense", "aten.nonzero", "aten.is_nonzero", "aten.equal", "aten.allclose")

    def __init__(self):
        super().__init__()
        self.hits = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
        if name.startswith(self.SYNCING):
            stack = traceback.extract_stack()
            ours = [i for i, f in enumerate(stack) if "/atlas/" in f.filename]
            in_optimizer = ours and any("torch/optim/" in f.filename for f in stack[ours[-1]:])
            if ours and not in_optimizer:  # the optimisers' step counters are host tensors by design
                self.hits.append((name, f"{stack[ours[-1]].filename}:{stack[ours[-1]].lineno}"))
        return func(*args, **(kwargs or {}))


def _run_loop(tiny, objective, steps=20):
    rng = TargetRNG([1, 2])
    transforms = T.compose(T.random_crops(2, 32, 0.5, 0.15), T.jitter(2), T.random_flip(), T.uniform_noise(0.1))
    return optimize(tiny, FourierParam(rng, 48), objective, steps, rng, OptimizerSpec("nadam", lr=0.5),
                    transforms=transforms, check_every=4)


def test_loop_never_reads_device_values_on_the_host(tiny):
    mode = HostReads()
    with mode:
        result = _run_loop(tiny, obj.class_logit([3, 5]) + obj.channel("relu2", [1, 2]))
    assert result.history.shape == (20, 2)
    assert mode.hits == []


def test_host_read_detector_catches_a_sync(tiny):
    """The detector above is not vacuous: an objective that reads a score with ``.item()`` is caught."""
    logit = obj.class_logit([3, 5])
    leaky = obj.Objective(lambda ev: logit(ev) * (1.0 if logit(ev)[0].item() < 1e9 else 0.0))
    mode = HostReads()
    with mode:
        _run_loop(tiny, leaky, steps=3)
    assert any("_local_scalar_dense" in name for name, _ in mode.hits)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_loop_has_no_sync_cuda(tiny):
    """On a GPU, torch itself raises on any synchronising call between the end of step 0 (when constants
    move to the device once) and the last step."""
    tiny.to("cuda")
    rng = TargetRNG([1, 2], "cuda")
    steps = 9

    def watch(step):
        torch.cuda.set_sync_debug_mode("error" if step < steps - 1 else "default")

    transforms = T.compose(T.random_crops(2, 32, 0.5, 0.15), T.jitter(2), T.random_flip(), T.uniform_noise(0.1))
    try:
        optimize(tiny, FourierParam(rng, 48), obj.class_logit([3, 5]), steps, rng, OptimizerSpec("nadam", lr=0.5),
                 transforms=transforms, on_step=watch, check_every=4)
    finally:
        torch.cuda.set_sync_debug_mode("default")
