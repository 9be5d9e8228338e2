"""LRP with zennit: conservation through the canonized architectures, receptive fields, starts, errors."""
import copy

import pytest
import torch
from torch import nn

from atlas.errors import AtlasError
from atlas.models.handle import ModelHandle
from atlas.relevance import (channel_relevance, channel_start, class_start, direction_start, input_relevance,
                             layer_relevance, relevance, relevance_unsupported, rules_for)
from atlas.relevance import rules as rules_mod


def _bias_free(module: nn.Module) -> nn.Module:
    """A copy with every additive term removed from the forward pass (conv/linear biases, BN shifts and
    means), so that LRP's conservation is exact: no bias absorbs relevance."""
    module = copy.deepcopy(module)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.bias.zero_()
                m.running_mean.zero_()
            elif isinstance(m, (nn.Conv2d, nn.Linear, nn.LayerNorm)) and getattr(m, "bias", None) is not None:
                m.bias.zero_()
    return module


def _handle(module, family, size=64, channels_last=False):
    return ModelHandle(name=f"test-{family}", family=family, module=module, mean=(0.5,) * 3, std=(0.25,) * 3,
                       input_size=size, class_names=tuple(str(i) for i in range(1000)),
                       wnids=tuple(str(i) for i in range(1000)), blocks=(), penultimate="", channels_last=channels_last)


def _conserved(handle, images, classes, **kw):
    r = relevance(handle, images, class_start(classes), input=True, **kw)
    return r.start.sum(1), r.input.flatten(1).sum(1)


def test_conserved_through_a_small_conv_net(tiny):
    tiny = _handle(_bias_free(tiny.module), "test", 32)
    x = torch.rand(3, 3, 32, 32)
    start, total = _conserved(tiny, x, [1, 2, 3])
    torch.testing.assert_close(total, start, rtol=1e-4, atol=1e-6)
    assert (start.abs() > 1e-3).all()


def test_lite0_canonizer_conserves_and_the_generic_rules_do_not(lite0, monkeypatch):
    handle = _handle(_bias_free(lite0.module), "efficientnet_lite", 224, channels_last=True)
    x = torch.rand(1, 3, 224, 224)
    start, total = _conserved(handle, x, [285])
    torch.testing.assert_close(total, start, rtol=1e-3, atol=1e-5)
    # without the timm canonizers the residual sums duplicate relevance (DESIGN.md: 1.40 vs -0.19)
    monkeypatch.setitem(rules_mod.ARCHITECTURES._items, "efficientnet_lite", rules_mod.Rules("none", lambda m: []))
    start2, total2 = _conserved(handle, x, [285])
    assert (total2 - start2).abs().item() > 10 * (total - start).abs().item() + 1e-3


@pytest.mark.parametrize("family, build, size, tol", [
    ("resnet", lambda: __import__("torchvision").models.resnet18(weights=None), 64, 2e-3),
    ("densenet", lambda: __import__("torchvision").models.densenet121(weights=None), 64, 2e-3),
    # z+ drops the relevance of a depthwise-conv output whose window has no positive contribution; at 64 px
    # ConvNeXt's last stage is 2x2 and a 7x7 depthwise window sees 4 inputs, so this happens: use 128 px
    ("convnext", lambda: __import__("torchvision").models.convnext_tiny(weights=None), 128, 2e-2),
])
def test_torchvision_families_conserve_relevance(family, build, size, tol):
    """Random weights (no torchvision weights offline); biases removed so that conservation is exact up to
    the rules' stabilisers. Without the canonizers, the residual sums duplicate relevance."""
    torch.manual_seed(0)
    module = build().eval()
    with torch.no_grad():  # random BN statistics / layer scales, so that the merges do something
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.1, 1.0)
    handle = _handle(_bias_free(module), family, size)
    for p in handle.module.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        before = handle(x)
    start, total = _conserved(handle, x, [3, 7])
    torch.testing.assert_close(total, start, rtol=tol, atol=1e-5)
    with torch.no_grad():  # every canonizer was reverted
        torch.testing.assert_close(handle(x), before)


def test_relevance_stays_in_the_receptive_field(tiny):
    # tiny: conv 3x3 s2 p1 -> conv 3x3 s2 p1; output (y, x) of relu2 sees input rows/cols 4y-3 .. 4y+3
    x = torch.rand(1, 3, 32, 32)
    act = tiny.activations(x, ["relu2"])["relu2"][0, 5]
    y, x0 = divmod(int(act.argmax()), act.shape[1])
    r = relevance(tiny, x, channel_start("relu2", [5], position=(y, x0)), input=True)
    assert float(r.start.abs().sum()) > 0
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[max(0, 4 * y - 3):4 * y + 4, max(0, 4 * x0 - 3):4 * x0 + 4] = True
    heat = r.input[0].abs().sum(0)
    assert float(heat[~mask].max()) == 0.0
    assert float(heat[mask].sum()) > 0


def test_channel_start_uses_only_that_channel_and_layers_in_between(lite0):
    x = torch.rand(2, 3, 224, 224)
    r = relevance(lite0, x, channel_start("blocks.4", [3, 9]), ["bn1", "blocks.2"])
    assert r.start[0, :3].abs().sum() == 0 and r.start[0, 4:].abs().sum() == 0 and r.start[1, 9].abs().sum() > 0
    torch.testing.assert_close(r.start[0, 3], lite0.activations(x, ["blocks.4"])["blocks.4"][0, 3], rtol=1e-3, atol=1e-4)
    assert r.layers["blocks.2"].shape == r.activations["blocks.2"].shape == (2, 40, 28, 28)
    assert r.layers["bn1"].abs().sum() > 0
    act = lite0.activations(x, ["blocks.4"])["blocks.4"][1, 9]
    assert (act < 0).any() and (act > 0).any()  # blocks.4 ends in a linear projection: a signed output
    pos = relevance(lite0, x, channel_start("blocks.4", [3, 9], positive=True), ["bn1"])
    torch.testing.assert_close(pos.start[1, 9], act.clamp(min=0), rtol=1e-3, atol=1e-4)  # VITAL's neurons
    with pytest.raises(AtlasError, match="start layer blocks.4; relevance flows only to earlier layers"):
        relevance(lite0, x, channel_start("blocks.4", [3]), ["blocks.6"])
    with pytest.raises(AtlasError, match="valid channels are 0-111"):
        relevance(lite0, x, channel_start("blocks.4", [500]), ["bn1"])


def test_a_session_gives_the_relevance_of_a_plain_pass_and_leaves_the_model_alone(lite0):
    """An LRPSession (canonizers and hooks registered once, on a copy) gives what a plain pass gives; the
    model itself has no hooks and its outputs are unchanged."""
    from atlas.relevance.lrp import LRPSession

    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    before = lite0(x).detach()
    start, keys = channel_start("blocks.4", [7]), ["conv_stem", "blocks.2"]
    plain = relevance(lite0, x, start, keys)
    session = LRPSession(lite0)
    for _ in range(2):
        again = relevance(lite0, x, start, keys, session=session)
        for k in keys:
            torch.testing.assert_close(again.layers[k], plain.layers[k], rtol=1e-5, atol=1e-7)
    session.close()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lite0.module.modules())
    torch.testing.assert_close(lite0(x).detach(), before)


def test_the_written_out_lite_rules_give_zennits_relevance_without_running_zennit(lite0):
    """atlas.relevance.direct (no hooks, the negative half skipped after ReLU6) against zennit's composite on
    the canonized copy: the same relevance at every layer asked, for a neuron's positive part, a signed
    channel and a direction, and zennit is never built for them; class starts and the input still go
    through zennit. In double precision: a signed start's relevance at the stem is a sum of cancelling terms
    that amplifies single-precision rounding (~1 % of the map's largest value)."""
    from atlas.relevance.lrp import LRPSession

    lite0 = _handle(copy.deepcopy(lite0.module).double(), "efficientnet_lite", 224, channels_last=True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 224, 224, generator=g, dtype=torch.float64)
    keys = ["conv_stem", "blocks.1", "blocks.2.1"]
    starts = [(channel_start("blocks.4", [96, 3], positive=True), keys), (channel_start("blocks.3.2", [5, 6]), keys),
              (direction_start("blocks.5", torch.randn(2, 192, generator=g, dtype=torch.float64)), keys),
              (direction_start("bn2", torch.randn(2, 1280, generator=g, dtype=torch.float64)),
               ["conv_stem", "blocks.6", "conv_head"])]  # the demo's concept layer
    for start, keys in starts:
        direct, zennit = LRPSession(lite0), LRPSession(lite0)
        zennit.direct = None
        a = relevance(lite0, x, start, keys, session=direct)
        b = relevance(lite0, x, start, keys, session=zennit)
        assert direct.module is None, "the direct engine fell back to zennit"
        for k in keys:
            scale = b.layers[k].abs().max()
            assert scale > 0
            torch.testing.assert_close(a.layers[k], b.layers[k], rtol=1e-7, atol=1e-9 * scale.item())
            torch.testing.assert_close(a.activations[k], b.activations[k], rtol=1e-9, atol=1e-9)
        zennit.close()
    session = LRPSession(lite0)
    relevance(lite0, x[:1], class_start([285]), ["blocks.2"], session=session)
    assert session.module is not None  # logits: zennit's rules
    session.close()


def test_the_written_out_lite_rules_conserve_relevance_without_biases(lite0):
    handle = _handle(_bias_free(lite0.module), "efficientnet_lite", 224, channels_last=True)
    r = relevance(handle, torch.rand(1, 3, 224, 224), channel_start("blocks.3", [4]), ["conv_stem"], zero_bias=True)
    torch.testing.assert_close(r.layers["conv_stem"].sum(), r.start.sum(), rtol=1e-3, atol=1e-5)
    assert r.start.sum() > 0


def test_direction_start_sits_at_the_most_similar_position(tiny):
    x = torch.rand(2, 3, 32, 32)
    act = tiny.activations(x, ["relu2"])["relu2"]
    v = act[0, :, 2, 5].clone()
    r = relevance(tiny, x, direction_start("relu2", v[None]), ["relu1"])
    nz = r.start[0].abs().sum(0).nonzero().tolist()
    assert nz == [[2, 5]]
    torch.testing.assert_close(r.start[0, :, 2, 5], v)
    with pytest.raises(AtlasError, match="does not fit layer relu2"):
        relevance(tiny, x, direction_start("relu2", torch.ones(1, 7)), ["relu1"])


def test_convenience_functions_and_chunking(tiny):
    x = torch.rand(5, 3, 32, 32)
    cr = channel_relevance(tiny, x, [0, 1, 2, 3, 4], "relu2", batch_size=2)
    whole = channel_relevance(tiny, x, [0, 1, 2, 3, 4], "relu2", batch_size=8)
    assert cr.shape == (5, 16)
    torch.testing.assert_close(cr, whole)
    maps = layer_relevance(tiny, x, class_start([1] * 5), ["relu1"])
    assert maps["relu1"].shape == (5, 8, 16, 16)
    assert input_relevance(tiny, x, class_start([1] * 5)).shape == (5, 3, 32, 32)


def test_transformers_are_refused_with_a_reason():
    assert "zennit has no attention" in relevance_unsupported("vit_l_16")
    assert relevance_unsupported("timm:deit_small_patch16_224") is not None
    assert relevance_unsupported("resnet50") is None and relevance_unsupported("efficientnet_lite0") is None
    vit = _handle(nn.Linear(2, 2), "vit")
    vit.name = "vit_b_16"
    with pytest.raises(AtlasError, match="not available for the transformer vit_b_16"):
        rules_for(vit)
