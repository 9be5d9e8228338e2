import numpy as np
import pytest
import torch
from PIL import Image

from atlas.config import DEMO_CLASSES
from atlas.data import BundledPool, FolderPool, open_pool
from atlas.data.spectrum import estimate_spectrum, load_or_estimate_spectrum, spectrum_path
from atlas.errors import AtlasError
from atlas.models.classes import imagenet_classes

WNIDS = imagenet_classes()[1]


def test_bundled_pool_covers_the_demo_classes():
    pool = BundledPool()
    assert sorted(pool.class_ids()) == sorted(DEMO_CLASSES)
    assert [r.id for r in pool.items(665)] == ["motorcycle_left", "motorcycle_right"]
    img = pool.load(pool.items(872)[0])  # the greyscale camera photo becomes RGB
    assert img.mode == "RGB"


def test_scikit_learn_photos_are_read_without_importing_scikit_learn():
    """The flower and china photos are scikit-learn's own (``load_sample_image``'s arrays), read from its
    folder; a process that opens the bundled pool, reads a photo and its fingerprint imports neither
    scikit-learn nor SciPy's statistics (~1 s of every worker's and resumed build's start)."""
    import subprocess
    import sys

    from sklearn.datasets import load_sample_image

    pool = BundledPool()
    flower = pool.load(pool.items(985)[0])
    assert np.array_equal(np.asarray(flower), load_sample_image("flower.jpg"))
    code = ("import sys\nfrom atlas.app import install\ninstall()\nfrom atlas.data import BundledPool\n"
            "p = BundledPool()\np.load(p.items(985)[0])\nprint(p.fingerprint())\n"
            "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fingerprint, imported = out.stdout.split("\n")[:2]
    assert fingerprint == pool.fingerprint() and imported == "[]"


def test_reference_sets_are_deterministic_per_seed():
    pool = BundledPool()
    a = pool.reference_images(285, 4, 64, seed=0)
    b = pool.reference_images(285, 4, 64, seed=0)
    c = pool.reference_images(285, 4, 64, seed=1)
    assert a.shape == (4, 3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # different crops, not copies


def test_bundled_pool_unknown_class():
    with pytest.raises(AtlasError, match="no bundled photo shows class 1"):
        BundledPool().reference_images(1, 2, 32)


def _folder(tmp_path):
    root = tmp_path / "imagenet" / "train"
    cat, cup = root / WNIDS[285], root / WNIDS[967]
    cat.mkdir(parents=True)
    cup.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(cat / f"cat_{i}.JPEG")
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(cup / "grey.png")  # greyscale
    Image.fromarray(rng.integers(0, 255, (40, 50, 4), dtype=np.uint8), "CMYK").save(cup / "cmyk.jpg")
    (cup / "broken.JPEG").write_bytes(b"not an image")
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(cup / "tiny.png")
    (root / "not_a_wnid").mkdir()
    return tmp_path / "imagenet"


def test_folder_pool_reads_imagenet_layout(tmp_path):
    pool = open_pool(str(_folder(tmp_path)))
    assert isinstance(pool, FolderPool) and pool.class_ids() == [285, 967]
    refs = pool.reference_images(285, 3, 32, seed=0)
    assert refs.shape == (3, 3, 32, 32)
    # greyscale, CMYK and 1x1 images are converted; the broken file is skipped and counted
    cup = pool.reference_images(967, 4, 32, seed=0, allow_fewer=True)
    assert cup.shape == (3, 3, 32, 32)
    assert any("broken" in s for s in pool.skipped)
    with pytest.raises(AtlasError, match="fewer than the 5 references"):
        pool.reference_images(285, 5, 32)
    assert pool.reference_images(285, 5, 32, allow_fewer=True).shape[0] == 3


def test_folder_pool_errors(tmp_path):
    with pytest.raises(AtlasError, match="does not exist"):
        open_pool(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="holds no images"):
        open_pool(str(tmp_path / "empty"))


def test_spectrum_falls_with_frequency_and_is_cached(tmp_path):
    pool = BundledPool()
    spec = load_or_estimate_spectrum(pool, 64, 8, tmp_path)
    assert spec.shape == (3, 64, 33) and np.isfinite(spec).all()
    fy = np.fft.fftfreq(64)[:, None]
    fx = np.fft.rfftfreq(64)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    low = spec[:, (f > 0.02) & (f < 0.08)].mean()
    high = spec[:, f > 0.35].mean()
    assert low > 5 * high  # natural images: energy falls with frequency
    path = spectrum_path(tmp_path, pool, 64, 8)
    assert path.is_file()
    path.write_bytes(b"corrupt")  # a corrupt cache entry is a miss, not a crash
    again = load_or_estimate_spectrum(pool, 64, 8, tmp_path)
    np.testing.assert_allclose(again, spec, rtol=1e-5)
    assert np.load(path).shape == (3, 64, 33)


def test_spectrum_depends_on_the_pool(tmp_path):
    a = estimate_spectrum(BundledPool(), 32, 4)
    b = estimate_spectrum(open_pool(str(_folder(tmp_path))), 32, 4)  # noise images: flat spectrum
    assert not np.allclose(a / a.sum(), b / b.sum(), rtol=0.05)


class _TwoPhotoPool(BundledPool):
    """A colour photo and a greyscale one (scikit-image's chelsea and camera)."""

    def spectrum_items(self):
        return [r for r in self.all_items() if r.id in ("chelsea", "camera")]


def test_spectrum_keeps_the_dc_term_and_reads_every_natural_photo():
    """MACO's r = E|F(x)|: the DC coefficient (the sum of the pixels) is kept, every natural photo of the
    bundled pool enters (not only the demo classes'), greyscale photos add to the luminance channel only."""
    from atlas.data.pools import SPECTRUM_PHOTOS
    from atlas.data.spectrum import image_spectrum
    from atlas.data.pools import center_crop_tensor

    pool = BundledPool()
    ids = [r.id for r in pool.spectrum_items()]
    assert set(ids) >= {r.id for r in pool.all_items()} | set(SPECTRUM_PHOTOS) and len(ids) >= 16
    two = _TwoPhotoPool()
    spec = estimate_spectrum(two, 32, 2)
    cat, camera = (center_crop_tensor(two.load(r), 32, resize_ratio=1.0) for r in two.spectrum_items())
    s_cat, s_camera = image_spectrum(cat).float().numpy(), image_spectrum(camera).float().numpy()
    # DC = sum of the decorrelated pixels, well above every other coefficient (natural images are bright)
    from atlas.optim.color import decorrelate
    np.testing.assert_allclose(s_cat[:, 0, 0], decorrelate(cat[None])[0].sum((1, 2)).abs().numpy(), rtol=1e-4)
    np.testing.assert_allclose(spec[0], (s_cat[0] + s_camera[0]) / 2, rtol=1e-4)  # luminance: both photos
    np.testing.assert_allclose(spec[1:], s_cat[1:], rtol=1e-4)  # colour: the colour photo only
    assert spec[0, 0, 0] > 5 * spec[0].reshape(-1)[1:].max()
    grey = estimate_spectrum(two, 32, 2, channels=1)
    assert grey.shape == (1, 32, 17) and grey[0, 0, 0] > 0.3 * 32 * 32  # mean luminance > 0.3
