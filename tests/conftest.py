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
