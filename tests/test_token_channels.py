"""A neuron of a transformer's token layer, (B, L, C), is channel c of C averaged over the L tokens - wherever
a neuron is read: the plan's channel count, the objectives, the dataset examples, CoSy's control images,
CRAFT's activations and the diversity term's Gram matrices. Until 2026-12-01 every one of them but the
channel count averaged the *channels* of token c, so on a ViT a neuron was a token, and a channel beyond
the number of tokens failed with an index error.

A tiny timm ViT (random weights, 32 px, 16 patches + the class token, 48 channels), on the CPU.
"""
from __future__ import annotations

import pytest
import torch

from atlas.concepts.neurons import check_channels
from atlas.data import open_pool
from atlas.data.patches import top_images
from atlas.errors import AtlasError
from atlas.models.card import Block
from atlas.models.handle import ModelHandle, as_channels, channel_count, channel_means
from atlas.optim import OptimizerSpec, TargetRNG, optimize
from atlas.optim import objectives as obj
from atlas.optim import transforms as T
from atlas.optim.param import FourierParam

LAYER, TOKENS, WIDTH = "blocks.1", 17, 48


@pytest.fixture(scope="module")
def vit():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=32, patch_size=8, embed_dim=WIDTH, depth=2, num_heads=2, num_classes=10)
    return ModelHandle(name="tinyvit", family="vit", module=net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32,
                       class_names=tuple(f"class {i}" for i in range(10)),
                       wnids=tuple(f"n{i:08d}" for i in range(10)),
                       blocks=(Block("patch_embed"), Block(LAYER, layout="nld")), penultimate="head:in")


def _acts(vit, x):
    with torch.no_grad():
        return vit.activations(x, [LAYER])[LAYER]


def test_a_token_layers_channels_are_its_last_dimension_averaged_over_tokens(vit):
    a = _acts(vit, torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert a.shape == (3, TOKENS, WIDTH)
    assert channel_count(a) == WIDTH
    assert torch.allclose(channel_means(a), a.mean(1))
    # VITAL's sort matching reads (B, C, L) - also from a derived card, whose blocks carry no token layout
    assert torch.equal(as_channels(a, "nchw"), a.transpose(1, 2)) and torch.equal(as_channels(a, "nld"), a.transpose(1, 2))
    check_channels(vit, LAYER, [0, WIDTH - 1])  # channels beyond the 17 tokens are valid
    with pytest.raises(AtlasError, match=f"valid channels are 0-{WIDTH - 1}"):
        check_channels(vit, LAYER, [WIDTH])


def test_maco_style_optimisation_raises_a_token_layers_channel_beyond_the_token_count(vit):
    """The channel objective reads channel 40 (> 17 tokens) averaged over the tokens, and optimising it
    raises that mean - not some token's mean over the channels."""
    rng = TargetRNG([1])
    transforms = T.compose(T.jitter(2), T.uniform_noise(0.05))
    result = optimize(vit, FourierParam(rng, 32), obj.channel(LAYER, [40]), 64, rng, OptimizerSpec("adam", lr=0.3),
                      transforms=transforms)
    start, end = (channel_means(_acts(vit, im[None]))[0, 40].item() for im in (result.initial[0], result.images[0]))
    spread = channel_means(_acts(vit, torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(5))))[:, 40].std()
    assert end - start > 3 * spread.item()  # measured: +0.67, 5.8 x its spread over random images


def test_dataset_examples_rank_images_by_the_channel_over_tokens(vit):
    pool = open_pool("bundled")
    ex = top_images(vit, pool, LAYER, [40, 5], n=4, max_images=10)[40]
    assert len(ex.sources) == 4
    scores = [channel_means(_acts(vit, pool.source_image(s, 32)[None]))[0, 40].item() for s in ex.sources]
    assert scores == pytest.approx(ex.scores, rel=1e-4, abs=1e-5)
    assert scores == sorted(scores, reverse=True)


def test_diversity_compares_channel_gram_matrices_which_ignore_token_order():
    """lucid's Gram matrix is (C, C) over positions: two targets whose tokens are the same values in another
    order have identical Grams (similarity 1); over (L, L) token Grams they would differ."""
    a = torch.rand(1, TOKENS, WIDTH, generator=torch.Generator().manual_seed(2))
    b = a[:, torch.randperm(TOKENS, generator=torch.Generator().manual_seed(3))]
    sim = obj.gram_similarity(torch.cat([a, b]), 2)
    assert sim[0, 1].item() == pytest.approx(1.0, abs=1e-5)
    c = torch.rand(1, TOKENS, WIDTH, generator=torch.Generator().manual_seed(4)) ** 4
    assert obj.gram_similarity(torch.cat([a, c]), 2)[0, 1].item() < 0.99


def test_a_channels_last_map_swin_is_read_channels_first():
    """Swin's stages (torchvision and timm) return (B, H, W, C): their channels are the last axis. The plan's
    channel count, the channel means and VITAL's (B, C, L) view read it so; a (B, C, H, W) map is unchanged."""
    from torchvision.models import swin_t

    from atlas.models.handle import channels_first
    from atlas.models.zoo import layer_width

    assert layer_width("swin_t", "features") == layer_width("timm:swin_tiny_patch4_window7_224", "layers.3") == 768
    net = swin_t().eval()
    with torch.no_grad():
        a = net.features(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)))
    assert a.shape == (2, 2, 2, 768)
    assert channel_count(a) == 768
    assert torch.allclose(channel_means(a), a.mean((1, 2)))
    assert torch.equal(as_channels(a), a.permute(0, 3, 1, 2).flatten(2))
    maps = torch.rand(2, 16, 7, 7)
    assert channels_first(maps) is maps and torch.allclose(channel_means(maps), maps.mean((2, 3)))
    cube = torch.rand(1, 7, 7, 7)  # channels == grid side: read as (B, C, H, W)
    assert channels_first(cube) is cube
