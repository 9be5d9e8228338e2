"""glibc keeps freed memory in atlas's processes (``atlas.allocator``): a training step stops faulting pages."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]

# Forward+backward of a small convolutional network (its activations 1.6-6.4 MB each, as a vision model's
# at batch 4) on one thread: the minor page faults of a step - the median of 12 steps after two warm-up
# steps. With the thresholds raised, a step faults no page, except now and then one step that grows the
# heap by the largest activation (1 568 pages; 0-3 of 12 steps, measured 2026-12-02 on an AVX-512 Xeon):
# an average over four steps read 392-784 there, near a tenth of glibc's defaults on a quiet run.
PROBE = """
import resource, torch
from torch import nn
from atlas.allocator import keep_freed_memory
applied = keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
layers = [nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
for width in (32, 64, 64, 128):
    layers += [nn.Conv2d(layers[-3].out_channels, width, 3, padding=1, stride=1 + (width > 32)),
               nn.BatchNorm2d(width), nn.ReLU()]
model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)).eval()
x = torch.rand(4, 3, 112, 112, requires_grad=True)
for _ in range(2):
    model(x).sum().backward()
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(x).sum().backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sorted(faults)[len(faults) // 2])
"""


def _faults(**env) -> tuple:
    out = subprocess.run([sys.executable, "-c", PROBE], env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_freed_memory_stops_a_training_steps_page_faults():
    """With glibc as it comes, every step maps its large activations afresh (thousands of faults); with
    the thresholds raised, almost none."""
    applied, kept = _faults()
    off, plain = _faults(ATLAS_KEEP_FREED_MEMORY="0")
    assert applied and not off
    assert plain > 2000, f"glibc's defaults faulted only {plain} pages per step: the probe shows nothing"
    assert kept < 0.1 * plain, (kept, plain)


def test_a_users_own_allocator_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("ATLAS_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
