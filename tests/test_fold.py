"""BatchNorm folded into the convolution before it (atlas.models.fold): the same values at every key, the
model itself untouched, and no fold where it would not be the same model."""
import torch
import torchvision
from torch import nn

from atlas.models.fold import fold_batchnorm
from atlas.models.handle import ModelHandle

# a folded convolution's output and a folded BatchNorm's input (mapped back), BatchNormAct outputs, blocks
LITE0_KEYS = ["conv_stem", "bn1", "blocks.1.0.conv_pw", "blocks.1.0.bn1:in", "blocks.1.0.bn2", "blocks.3",
              "conv_head", "bn2", "classifier:in"]


def _rel(a, b):
    return float((a - b).abs().max() / a.abs().max())


def test_lite0_runs_its_folded_copy_with_the_models_values_and_gradients(lite0):
    x = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in lite0.module.state_dict().items()}
    lite0.fold_batchnorm = False
    try:
        with torch.no_grad():
            plain = lite0.features(x, LITE0_KEYS)
        xp = x.clone().requires_grad_(True)
        with lite0.capture(["blocks.1.0.conv_pw"]) as acts:
            lite0(xp)
        acts["blocks.1.0.conv_pw"].square().mean().backward()
    finally:
        lite0.fold_batchnorm = True
    with torch.no_grad():
        folded = lite0.features(x, LITE0_KEYS)
    assert lite0._fold is not None and lite0._fold.pairs == 49  # every conv of Lite0 has its BatchNorm
    assert lite0._runner()[0] is lite0._fold.module
    for key in LITE0_KEYS + ["logits"]:
        assert _rel(plain[key], folded[key]) < 1e-4, key
    xf = x.clone().requires_grad_(True)
    with lite0.capture(["blocks.1.0.conv_pw"]) as acts:
        lite0(xf)
    acts["blocks.1.0.conv_pw"].square().mean().backward()
    assert _rel(xp.grad, xf.grad) < 1e-4
    # the model itself keeps its weights and BatchNorm statistics (LRP and DeepInversion read them)
    after = lite0.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_hook_on_the_model_itself_runs_the_model_itself(lite0):
    """Code that hooks the model's own modules (LRP, CRAFT's replaced layer) must see them run."""
    seen = []
    hook = lite0.module.blocks[2].register_forward_hook(lambda m, a, o: seen.append(o.shape[0]))
    try:
        with torch.no_grad():
            lite0(torch.rand(2, 3, 64, 64))
        assert lite0._runner()[0] is lite0.module
    finally:
        hook.remove()
    assert seen == [2]
    assert lite0._runner()[0] is not lite0.module  # unhooked: the folded copy again


class _ConvBnHead(nn.Module):
    """conv -> BatchNorm2d -> a linear head: the smallest foldable pair."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)


class _ReadsTheConvTwice(_ConvBnHead):
    """conv -> BatchNorm, plus a skip connection from the convolution's own output: folding would change
    what the skip reads, so it must not fold."""

    def forward(self, x):
        c = self.conv(x)
        y = self.bn(c) + c
        return self.head(y.mean((2, 3)))


def _randomise_statistics(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


def test_no_fold_where_something_else_reads_the_convolution():
    model = _randomise_statistics(_ReadsTheConvTwice())
    assert fold_batchnorm(model, torch.rand(2, 3, 16, 16)) is None


def _resnet18_handle() -> ModelHandle:
    model = _randomise_statistics(torchvision.models.resnet18(weights=None, num_classes=10))
    return ModelHandle(name="r18", family="test", module=model, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=64,
                       class_names=tuple("abcdefghij"), wnids=tuple(f"n{i}" for i in range(10)), blocks=(),
                       penultimate="fc:in")


def test_torchvision_resnet_folds_its_plain_batchnorms_under_in_place_relus():
    """torchvision's BatchNorm2d is followed by ReLU(inplace=True): in the copy the folded BatchNorm passes
    the convolution's own tensor on and the ReLU overwrites it, so a captured convolution output must be
    read back when it is captured, not later."""
    handle = _resnet18_handle()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    keys = ["conv1", "bn1:in", "bn1", "layer1.0.conv2", "layer2.0.downsample.0", "layer4"]
    with torch.no_grad():
        handle.fold_batchnorm = False
        plain = handle.features(x, keys)
        handle.fold_batchnorm = True
        folded = handle.features(x, keys)
    assert handle._fold is not None and handle._fold.pairs == 20  # every BatchNorm2d of ResNet18
    assert plain["conv1"].min() < 0  # the convolution's output, before the in-place ReLU
    for key in keys + ["logits"]:
        assert _rel(plain[key], folded[key]) < 1e-4, key
    t = torch.randn(1, 64, 4, 4)
    assert torch.equal(handle._fold.module.bn1(t), t)  # the folded BatchNorm passes its input on


def test_a_handle_without_foldable_pairs_runs_the_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    handle = ModelHandle(name="plain", family="test", module=model, mean=(0.5,) * 3, std=(0.5,) * 3,
                         input_size=16, class_names=("a", "b"), wnids=("n0", "n1"), blocks=(), penultimate="4:in")
    with torch.no_grad():
        handle(torch.rand(1, 3, 16, 16))
    assert handle._fold is None and handle._runner()[0] is model


def test_a_copy_first_made_under_inference_mode_still_backpropagates():
    """A lab's first call may come under ``torch.inference_mode``: the folded copy made then must still
    serve a later optimisation (inference tensors cannot be saved for backward)."""
    handle = _resnet18_handle()
    with torch.inference_mode():
        handle(torch.rand(1, 3, 64, 64))
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    handle(x)[:, 0].sum().backward()
    assert handle._fold is not None and x.grad is not None and x.grad.abs().sum() > 0


class _RefusesOneImage(_ConvBnHead):
    """conv -> BatchNorm -> head, whose forward refuses a batch of one (the fold's check runs one image)."""

    def forward(self, x):
        if x.shape[0] < 2:
            raise RuntimeError("this model wants at least two images")
        return self.head(self.bn(self.conv(x)).mean((2, 3)))


def test_a_model_that_refuses_the_check_runs_as_it_is_and_the_copy_pickles():
    import pickle

    model = _randomise_statistics(_RefusesOneImage())
    handle = ModelHandle(name="picky", family="test", module=model, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=16,
                         class_names=("a", "b"), wnids=("n0", "n1"), blocks=(), penultimate="head:in")
    with torch.no_grad():
        assert handle(torch.rand(2, 3, 16, 16)).shape == (2, 2)
    assert handle._fold is None and handle._runner()[0] is model
    resnet = _resnet18_handle()
    with torch.no_grad():
        resnet(torch.rand(1, 3, 64, 64))
    assert isinstance(pickle.loads(pickle.dumps(resnet._fold.module)), nn.Module)
