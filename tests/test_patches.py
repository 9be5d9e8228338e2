import numpy as np
import torch

from atlas.data import BundledPool
from atlas.data.mosaic import mosaic_png
from atlas.data.patches import cached_top_patches, cluster_patches, extract_patches, patch_boxes, patch_images, top_patches
from atlas.pipeline import Store


def test_patch_grid_at_224():
    boxes = patch_boxes(224)
    assert len(boxes) == 16 and boxes[0] == (0, 0) and boxes[-1] == (153, 153)
    x = torch.rand(2, 3, 224, 224)
    p = extract_patches(x, 32)
    assert p.shape == (32, 3, 32, 32)
    torch.testing.assert_close(p[17], torch.nn.functional.interpolate(x[1:, :, :64, 51:115], size=32, mode="bilinear")[0])


def test_top_patches_are_the_most_activating_with_unique_sources(lite0):
    pool = BundledPool()
    ex = top_patches(lite0, pool, "blocks.4", [3, 50], n=5, max_images=24)
    for c in (3, 50):
        e = ex[c]
        assert len(e.sources) == 5 and len(set(e.sources)) == 5
        assert e.scores == sorted(e.scores, reverse=True)
        # recompute the best patch's score independently
        patch = patch_images(pool, e, 224)[:1]
        act = lite0.activations(patch, ["blocks.4"])["blocks.4"][0, c].mean()
        assert abs(float(act) - e.scores[0]) < 1e-3 * max(1, abs(e.scores[0]))
    # a random patch scores lower than the best one
    rand = lite0.activations(torch.rand(4, 3, 224, 224), ["blocks.4"])["blocks.4"][:, 3].mean((1, 2))
    assert float(rand.max()) < ex[3].scores[0]


def test_top_patches_are_cached_as_a_stage(lite0, tmp_path):
    store = Store(tmp_path)
    pool = BundledPool()
    a = cached_top_patches(store, lite0, pool, "blocks.2", [1, 2], 3, max_images=12)
    assert (tmp_path / "stages" / "top_patches").is_dir()
    b = cached_top_patches(store, lite0, pool, "blocks.2", [2, 1], 3, max_images=12)
    assert a[1].sources == b[1].sources and a[2].scores == b[2].scores


def test_kmeans_separates_two_groups_and_mosaic():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 8, generator=g) * 0.1 + torch.tensor([1.0] + [0.0] * 7)
    b = torch.randn(20, 8, generator=g) * 0.1 + torch.tensor([0.0] * 7 + [1.0])
    labels = cluster_patches(torch.cat([a, b]), 2)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]
    png = mosaic_png(torch.rand(7, 3, 40, 40), cols=5, tile=16)
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(png)).size == (80, 32)
    assert np.isfinite(labels).all()


def test_one_png_encoder_rounds_as_asked_and_one_mosaic_tiles():
    import io

    from PIL import Image

    from atlas.data.mosaic import mosaic
    from atlas.png import png_bytes

    a = np.array([[0.0, 0.5, 0.999, np.nan, 2.0]], dtype=np.float32)
    near = np.asarray(Image.open(io.BytesIO(png_bytes(a))))
    floor = np.asarray(Image.open(io.BytesIO(png_bytes(a, rounding="floor"))))
    assert near.tolist() == [[0, 128, 255, 0, 255]] and floor.tolist() == [[0, 127, 254, 0, 255]]
    grid = mosaic(torch.rand(3, 3, 20, 20), cols=2, tile=8)
    assert grid.shape == (16, 16, 3) and (grid[8:, 8:] == 1).all()  # the cell past the last image stays white
