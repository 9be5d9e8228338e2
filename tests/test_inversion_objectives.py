"""The data-free inversion pieces (atlas.optim.inversion, augment, stages) on tiny models: BatchNorm
statistics against a naive reference, hooks on BatchNorm inputs (timm's fused layers included) removed after
use, the BN term falling under optimisation, logged terms, ColorShift and the growing canvas."""
import pytest
import torch
from torch import nn

from atlas.models.cards import has_batchnorm
from atlas.models.handle import Block, ModelHandle
from atlas.optim import OptimizerSpec, TargetRNG, optimize
from atlas.optim.augment import CanvasParam, DecayingChannelNoise, color_shift, grow_canvas, paste_center
from atlas.optim.inversion import batchnorm_layers, bn_distance, bn_loss, bn_statistics, cross_entropy, input_l2
from atlas.optim.objectives import Evaluation, logged, total_variation
from atlas.optim.param import PixelParam


class BNNet(nn.Module):
    """Conv-BN-ReLU x2, pool, linear; BN running statistics set to non-trivial values."""

    def __init__(self, act_layer: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        if act_layer:
            from timm.layers import BatchNormAct2d

            self.bn1 = BatchNormAct2d(8)
        else:
            self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            for bn in (self.bn1, self.bn2):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.5)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def bn_handle(act_layer: bool = False) -> ModelHandle:
    return ModelHandle(
        name="bn-tiny", family="test", module=BNNet(act_layer), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
        input_size=32, class_names=tuple(f"class {i}" for i in range(10)),
        wnids=tuple(f"n{i:08d}" for i in range(10)), blocks=(Block("bn1"), Block("bn2")), penultimate="fc:in",
    )


def naive_bn_loss(model: ModelHandle, x: torch.Tensor, first: float) -> float:
    """Reference: run the layers by hand, take mean / biased var of each BN input, sum the L2 norms."""
    net = model.module
    h = net.conv1(model.normalize(x))
    total = 0.0
    for i, (bn, nxt) in enumerate(((net.bn1, net.conv2), (net.bn2, None))):
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
        d = (bn.running_var - var).norm() + (bn.running_mean - mean).norm()
        total += float(d) * (first if i == 0 else 1.0)
        h = torch.relu(bn(h))
        if nxt is not None:
            h = nxt(h)
    return total


@pytest.mark.parametrize("act_layer", [False, True])
def test_bn_loss_matches_naive_reference_and_counts_fused_layers(act_layer):
    model = bn_handle(act_layer)
    assert [n for n, _ in batchnorm_layers(model.module)] == ["bn1", "bn2"]
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert bn_loss(model, x, 10.0) == pytest.approx(naive_bn_loss(model, x, 10.0), rel=1e-4)
    assert bn_loss(model, x, 1.0) < bn_loss(model, x, 10.0)


def test_bn_distance_is_accurate_for_large_means():
    bn = nn.BatchNorm2d(4)
    bn.running_mean.fill_(300.0)
    x = torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(0)) * 0.01 + 300.0
    ref = (bn.running_var - x.var((0, 2, 3), unbiased=False)).norm() + (bn.running_mean - x.mean((0, 2, 3))).norm()
    assert float(bn_distance(x, bn)) == pytest.approx(float(ref), rel=1e-4)


def test_bn_hooks_removed_after_loss_and_after_optimisation():
    model = bn_handle(act_layer=True)
    x = torch.rand(2, 3, 32, 32)
    bn_loss(model, x)
    rng = TargetRNG([1, 2])
    optimize(model, PixelParam(rng, 32), bn_statistics(model), 2, rng)
    for m in model.module.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks


def test_bn_term_falls_and_is_logged():
    model = bn_handle()
    rng = TargetRNG([3, 4, 5])
    param = PixelParam(rng, 32, mean=model.mean, std=model.std)
    objective = logged("bn", bn_statistics(model), sign=-1.0)
    result = optimize(model, param, objective, 30, rng, OptimizerSpec("adam", lr=0.1))
    bn = result.terms["bn"]
    assert bn.shape == (30, 3)
    assert torch.allclose(bn[:, 0], bn[:, 2])  # a batch-level term: the same for every target
    assert bn[-5:].mean() < 0.5 * bn[:5].mean()
    assert bn_loss(model, result.images) < bn_loss(model, result.initial)


def test_model_without_batchnorm_is_an_error(tiny):
    with pytest.raises(ValueError, match="no BatchNorm"):
        bn_statistics(tiny)


def test_cross_entropy_and_priors_per_target():
    model = bn_handle()
    views = torch.rand(4, 3, 32, 32)  # 2 targets x 2 views
    logits = torch.randn(4, 10)
    ev = Evaluation(views[::2], views, logits, {}, 2)
    ce = cross_entropy([3, 7])(ev)
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor([3, 3, 7, 7]), reduction="none").view(2, 2).mean(1)
    assert torch.allclose(-ce, ref)
    tv = total_variation(1.0, model=model, on_views=True, whole_batch=True)(ev)
    assert tv.shape == (2,) and tv[0] == tv[1] and tv[0] < 0
    l2 = input_l2(model, 1.0)(ev)
    norms = model.normalize(views).flatten(1).norm(dim=1).view(2, 2).mean(1)
    assert torch.allclose(-l2, norms)


def test_has_batchnorm_without_weights():
    assert has_batchnorm("efficientnet_lite0") is True
    assert has_batchnorm("resnet50") is True
    assert has_batchnorm("vit_l_16") is False
    assert has_batchnorm("convnext_base") is False
    assert has_batchnorm("timm:vit_tiny_patch16_224") is False
    assert has_batchnorm("no_such_model") is None


def test_color_shift_draws_per_view_and_step():
    rng = TargetRNG([1, 2])
    x = torch.full((6, 3, 4, 4), 0.5)  # 2 targets x 3 views
    shift = color_shift(1.0, 1.0)
    a, b = shift(x, rng), shift(x, rng)
    per_view = a.flatten(2).mean(-1)
    assert len({round(float(v), 5) for v in per_view[:, 0]}) == 6  # every view its own shift
    assert not torch.allclose(a, b)  # redrawn every call
    sigma_max = torch.e
    assert float(a.abs().max()) <= (0.5 + 1.0) * sigma_max + 1e-5


def test_decaying_noise_reaches_zero():
    rng = TargetRNG([1])
    noise = DecayingChannelNoise(0.5, steps=4)
    x = torch.zeros(4000, 3, 1, 1)  # many views: their offsets' std measures the noise amount
    amounts = [float(noise(x, rng).std()) for _ in range(5)]
    assert amounts == pytest.approx([0.5, 0.375, 0.25, 0.125, 0.0], abs=0.02)


def test_growing_canvas_keeps_the_previous_image_at_its_centre():
    rng = TargetRNG([1, 2])
    small = torch.zeros(2, 3, 4, 4)
    canvas = grow_canvas(small, 8, rng)
    assert canvas.shape == (2, 3, 8, 8)
    assert torch.all(canvas[:, :, 2:6, 2:6] == 0) and canvas[:, :, :2].min() >= 0 and canvas.max() < 1
    maps = paste_center(torch.ones(2, 4, 4), 8)
    assert maps.sum() == 32 and maps[0, 2:6, 2:6].min() == 1
    param = CanvasParam(canvas * 3 - 1)
    assert param().min() >= 0 and param().max() <= 1
    with pytest.raises(ValueError, match="cannot paste"):
        grow_canvas(torch.zeros(1, 3, 9, 9), 8, TargetRNG([1]))


def test_batch_stats_gradient_matches_finite_differences():
    from atlas.optim.inversion import _BatchStats

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    for t in (x, x.contiguous(memory_format=torch.channels_last), x[:, :, 0]):
        assert torch.autograd.gradcheck(_BatchStats.apply, (t.clone().requires_grad_(True),))
        mean, var = _BatchStats.apply(t)
        dims = [0] + list(range(2, t.dim()))
        assert torch.allclose(mean, t.mean(dims)) and torch.allclose(var, t.var(dims, unbiased=False))


def test_bn_statistics_of_channels_last_inputs_equal_the_plain_reduction_and_its_gradient():
    """PyTorch's BatchNorm statistics kernel, on channels-last and contiguous inputs, gives the statistics and
    gradient of the plain per-channel reduction, also far from zero mean (40 means of 0.5 standard
    deviation: the variance keeps its precision, where E[x^2] - E[x]^2 in float32 would lose it)."""
    from atlas.optim.inversion import batch_stats

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 5, 7, 6, generator=g) * 0.5 + 40.0).contiguous(memory_format=torch.channels_last)
    for inp in (x, x.contiguous()):
        leaf = inp.detach().clone().requires_grad_(True)
        mean, var = batch_stats(leaf)
        (mean.square().sum() + 3 * var.sum()).backward()
        ref = inp.detach().clone().requires_grad_(True)
        rm, rv = ref.mean((0, 2, 3)), ref.var((0, 2, 3), unbiased=False)
        (rm.square().sum() + 3 * rv.sum()).backward()
        torch.testing.assert_close(mean, rm, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(var, rv, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(leaf.grad, ref.grad, rtol=1e-4, atol=1e-5)
