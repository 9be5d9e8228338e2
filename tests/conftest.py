"""Shared fixtures: a tiny convolutional classifier (fast unit tests) and the real EfficientNet-Lite0."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from atlas.app import install
from atlas.models.handle import Block, ModelHandle

torch.set_num_threads(2)
install()  # the composition root, once for the whole session (as the CLI does)


class TinyNet(nn.Module):
    """Conv(3->8, s2) ReLU Conv(8->16, s2) ReLU AvgPool Linear(16->10): small enough for any unit test."""

    def __init__(self, classes: int = 10):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def tiny_handle(classes: int = 10) -> ModelHandle:
    return ModelHandle(
        name="tiny", family="test", module=TinyNet(classes), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
        input_size=32, class_names=tuple(f"class {i}" for i in range(classes)),
        wnids=tuple(f"n{i:08d}" for i in range(classes)),
        blocks=(Block("relu1"), Block("relu2")), penultimate="fc:in", concept_layer="relu2",
    )


@pytest.fixture
def tiny():
    return tiny_handle()


@pytest.fixture(scope="session")
def lite0():
    from atlas.models import load_model

    return load_model("efficientnet_lite0")


CONCEPT_TOML = """preset = "demo"
classes = [285, 967]
methods = ["maco", "fourier"]
store = "{tmp}/store"
site = {{folder = "{tmp}/site", degenerate = "mark"}}
[settings.maco]
steps = 8  # MACO's random phase offset: a few steps more before every objective rises
crops = 1
[settings.fourier]
steps = 3
crops = 1
[targets]
concepts = 3
random_neurons = 1
neurons = [["blocks.6", 11]]
layers = ["blocks.0"]
[targets.concept_settings]
images = 3
nb_design = 8
min_wins = 1
visualise = 2
[targets.neuron_settings]
max_images = 6
examples = 4
cluster_patches = 40
polysemantic = [["blocks.6", 11]]
[targets.layer_settings]
diversity = 2
[targets.layer_settings.settings.maco]
steps = 3
crops = 1
[targets.kind_methods]
concept = ["maco"]
neuron = ["maco"]
"""


@pytest.fixture(scope="session")
def concept_build(tmp_path_factory):
    """One small build of EfficientNet-Lite0 with CRAFT concepts, selected and polysemantic neurons and the
    whole layer ``blocks.0`` (shared by tests/test_concept_site.py and tests/test_layer_site.py)."""
    from atlas.cli import main

    tmp = tmp_path_factory.mktemp("concepts")
    cfg = tmp / "c.toml"
    cfg.write_text(CONCEPT_TOML.format(tmp=tmp))
    assert main(["-q", "build", "--config", str(cfg)]) == 0
    return tmp
