"""Degenerate images (issue 17): noise and saturated patterns are measured, recorded with every job,
warned about after a run, and never shown by the site as a result."""
import numpy as np
import pytest

from atlas.data import BundledPool
from atlas.data.pools import center_crop_tensor
from atlas.image_checks import (MAX_HIGH_FREQUENCY, MAX_SATURATED, degenerate_reason, high_frequency_share,
                                image_checks, saturated_share)


@pytest.fixture(scope="module")
def photos():
    pool = BundledPool()
    return {r.id: center_crop_tensor(pool.load(r), 224, resize_ratio=1.0).permute(1, 2, 0).numpy()
            for r in pool.spectrum_items()}


def test_natural_photos_pass_and_noise_and_saturated_patterns_fail(photos):
    for name, img in photos.items():
        assert degenerate_reason(image_checks(img)) is None, name
    assert max(high_frequency_share(p) for p in photos.values()) < MAX_HIGH_FREQUENCY
    rng = np.random.default_rng(0)
    noise = rng.random((224, 224, 3))  # Plug-In Inversion's start: uniform pixel noise
    assert high_frequency_share(noise) > 0.75
    assert degenerate_reason(image_checks(noise)).startswith("noise")
    # a photo with strong pixel noise on top (a half-optimised image) is noise too
    noisy = np.clip(photos["chelsea"] + rng.normal(0, 0.3, (224, 224, 3)), 0, 1)
    assert degenerate_reason(image_checks(noisy)).startswith("noise")
    blocks = np.kron(rng.integers(0, 2, (28, 28, 3)), np.ones((8, 8, 1))).astype(np.float32)  # 0/1 blocks
    assert saturated_share(blocks) == 1.0 > MAX_SATURATED and high_frequency_share(blocks) < MAX_HIGH_FREQUENCY
    assert degenerate_reason(image_checks(blocks)).startswith("saturated")
    # 8-bit images read the same as [0, 1] floats
    assert image_checks((photos["coffee"] * 255).round().astype(np.uint8)) == pytest.approx(
        image_checks(photos["coffee"]), abs=2e-3)


def test_a_class_the_model_does_not_rank_in_its_top_5_is_missed(photos):
    checks = image_checks(photos["coffee"])
    assert degenerate_reason(checks, {"rank_end": 3}) is None
    assert "9th" in degenerate_reason(checks, {"rank_end": 9})
    assert degenerate_reason(checks, {"rank_end": 9}, kind="image") is None  # judged for class targets only
