import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atlas.optim import NonFiniteLoss, OptimizerSpec, TargetRNG, optimize
from atlas.optim import objectives as obj
from atlas.optim import transforms as T
from atlas.optim.color import COLOR_CORRELATION, decorrelate, recorrelate
from atlas.optim.masks import gaussian_blur
from atlas.optim.param import FourierParam, MacoParam, PixelParam


def test_colour_matrix_round_trip_and_reference_values():
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(decorrelate(recorrelate(x)), x, atol=1e-5, rtol=1e-5)
    # the normalised lucid matrix is the transpose of the one horama/xplique hard-code (flat @ M)
    horama = torch.tensor([[0.56282854, 0.58447580, 0.58447580], [0.19482528, 0, -0.19482528],
                           [0.04329450, -0.10823626, 0.06494176]])
    torch.testing.assert_close(COLOR_CORRELATION, horama.T, atol=1e-6, rtol=1e-5)
    pixel = torch.tensor([0.3, -0.2, 0.5])
    torch.testing.assert_close(recorrelate(pixel.view(1, 3, 1, 1)).flatten(), pixel @ horama, atol=1e-6, rtol=1e-5)


def test_parameterisations_render_valid_images():
    rng = TargetRNG([1, 2])
    mag = torch.rand(3, 32, 17) + 0.1
    for p in (PixelParam(rng, 32), FourierParam(rng, 32), MacoParam(rng, mag, 32),
              PixelParam(rng, 32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))):
        img = p()
        assert img.shape == (2, 3, 32, 32)
        p.post_step()
        img = p().detach()
        assert float(img.min()) >= 0 and float(img.max()) <= 1


def test_maco_keeps_the_magnitude_fixed():
    """Whatever the phase, the spectrum before standardisation has exactly the given magnitude."""
    rng = TargetRNG([0])
    mag = torch.rand(3, 16, 9) + 0.5
    p = MacoParam(rng, mag, 16)
    with torch.no_grad():
        p.phase.add_(torch.randn_like(p.phase) * 3)
        phase = (p.phase - p.phase.mean()) / (p.phase.std() + 1e-4)
        x = torch.fft.irfft2(torch.polar(mag[None], phase), s=(16, 16))
        spec = torch.fft.rfft2(x).abs()
    # columns 0 and W/2 of an rfft are Hermitian-constrained; compare the free interior
    torch.testing.assert_close(spec[0, :, 1:-1, 1:-1], mag[:, 1:-1, 1:-1], atol=1e-3, rtol=1e-3)


def test_per_target_randomness_does_not_depend_on_the_batch():
    """Target k's initialisation and views are the same alone or in a batch with others."""
    crops = T.compose(T.random_crops(3, 16), T.uniform_noise(0.1), T.jitter(2), T.random_flip())
    alone = TargetRNG([7])
    batch = TargetRNG([5, 7, 9])
    a = MacoParam(alone, torch.ones(3, 32, 17), 32)
    b = MacoParam(batch, torch.ones(3, 32, 17), 32)
    torch.testing.assert_close(a.phase[0], b.phase[1])
    va = crops(a(), alone)
    vb = crops(b(), batch)
    assert va.shape == (3, 3, 16, 16) and vb.shape == (9, 3, 16, 16)
    torch.testing.assert_close(va, vb[3:6])


def test_crops_stay_inside_and_resize():
    x = torch.arange(64.0).view(1, 1, 8, 8).expand(2, 3, 8, 8).contiguous()
    rng = TargetRNG([0, 1])
    out = T.random_crops(4, 5, size_mean=0.5, size_std=0.3)(x, rng)
    assert out.shape == (8, 3, 5, 5)
    assert float(out.min()) >= 0 and float(out.max()) <= 63
    out = T.box_crops(2, 6)(x, rng)
    assert out.shape == (4, 3, 6, 6)


def test_lucid_standard_robustness_pads_crops_blurs_and_flips_per_target():
    """Xplique's sequence: the black pad shows in views near the border, every view is a crop of about a
    third of the image's side (the padded side of 24 units loses 16 to the jitters, then the scale and two
    more units), blurred, and some are mirrored; a target's views do not depend on its batch-mates."""
    size, out = 64, 32
    ramp = torch.linspace(0.2, 1.0, size).view(1, 1, 1, size).expand(1, 3, size, size).contiguous()
    t = T.standard_robustness(out)
    alone = t(ramp, TargetRNG([3]))
    batch = t(ramp.expand(3, 3, size, size).contiguous(), TargetRNG([1, 3, 4]))
    assert alone.shape == (1, 3, out, out) and batch.shape == (3, 3, out, out)
    torch.testing.assert_close(alone, batch[1:2])
    views = torch.cat([t(ramp, TargetRNG([s])) for s in range(40)])
    dark = (views[:, 0] < 0.1).flatten(1).any(1)  # the pad (0) reached the view, the image is >= 0.2
    assert 0 < int(dark.sum()) < len(views)
    # the ramp rises left to right: a mirrored view falls; both directions occur
    slope = views[:, 0, out // 2, out - 4] - views[:, 0, out // 2, 3]
    assert bool((slope > 0).any()) and bool((slope < 0).any())
    # a crop of ~0.34 of the image's side, upsampled: a view spans a short stretch of the ramp
    interior = (~dark) & (slope > 0)
    span = slope[interior] / 0.8
    assert float(span.max()) < 0.6 and float(span.min()) > 0.2
    # blurred: an edge is spread over several pixels of the view
    edge = torch.zeros(1, 3, size, size)
    edge[..., size // 2:] = 1.0
    spread = [int(((v > 0.05) & (v < 0.95)).sum()) for v in
              (t(edge, TargetRNG([s]))[0, 0, out // 2] for s in range(5))]
    assert sum(spread) >= 20, spread  # 26 with the blur; 10 with the resizes alone


def _lucid_views_in_turn(x, rng, out):
    """Xplique's sequence applied op by op: the reference for the matrix form of ``standard_robustness``."""
    u = x.shape[-1] // 16
    views = []
    for i, d in enumerate(rng.host.rand(x.shape[0] // len(rng), 17).tolist()):
        img, offsets = F.pad(x[i : i + 1], (4 * u,) * 4), iter(d[:14])
        for shrink in (2, 2, 4, 4, 4, None, 1, 1):
            if shrink is None:
                side = [max(2, round(n * (0.92 + 0.04 * d[14]))) for n in img.shape[-2:]]
                img = F.interpolate(img, size=side, mode="bilinear", align_corners=False, antialias=True)
                img = gaussian_blur(img[0], 1.0 + 0.1 * d[15])[None]
                continue
            cut = shrink * u
            oy, ox = (min(int(next(offsets) * (cut + 1)), cut) for _ in range(2))
            img = img[..., oy : oy + img.shape[-2] - cut, ox : ox + img.shape[-1] - cut]
        img = img.flip(-1) if d[16] < 0.5 else img
        views.append(F.interpolate(img, size=(out, out), mode="bilinear", align_corners=False,
                                   antialias=img.shape[-1] > out))
    return torch.cat(views)


def test_lucid_views_as_matrix_products_equal_the_ops_in_turn():
    x = torch.rand(3, 3, 96, 96, requires_grad=True)
    weights = torch.rand(3, 3, 64, 64)
    fast = T.standard_robustness(64)(x, TargetRNG([1, 2, 3]))
    slow = _lucid_views_in_turn(x, TargetRNG([1, 2, 3]), 64)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    g_fast, = torch.autograd.grad((fast * weights).sum(), x)
    g_slow, = torch.autograd.grad((slow * weights).sum(), x)
    torch.testing.assert_close(g_fast, g_slow, atol=1e-5, rtol=1e-4)


def test_objectives_compose():
    ev = obj.Evaluation(image=torch.zeros(2, 3, 4, 4), views=torch.zeros(4, 3, 4, 4),
                        logits=torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]), acts={}, k=2)
    o = obj.class_logit([1, 0])
    torch.testing.assert_close(o(ev), torch.tensor([3.0, 6.0]))
    combo = o - 2 * obj.class_logit([0, 0])
    torch.testing.assert_close(combo(ev), torch.tensor([3.0 - 4.0, 6.0 - 12.0]))
    assert "logit" in combo.description
    x = torch.rand(1, 3, 8, 8)
    tv = obj.total_variation(1.0)(obj.Evaluation(x, x, torch.zeros(1, 2), {}, 1))
    assert float(tv) < 0 and float(obj.total_variation(1.0)(obj.Evaluation(torch.ones(1, 3, 8, 8), x, x, {}, 1))) == 0


def test_total_variation_variants_match_their_formulas():
    """One TV prior for three uses: per image on [0, 1] images, per image on normalised images with a pixel
    norm (VITAL), one value over the whole batch of normalised views with an l1 term (DeepInversion)."""
    from conftest import tiny_handle

    model = tiny_handle()
    g = torch.Generator().manual_seed(0)
    image, views = torch.rand(2, 3, 8, 8, generator=g), torch.rand(4, 3, 8, 8, generator=g)
    ev = obj.Evaluation(image, views, torch.zeros(4, 10), {}, 2)

    def diffs(x):
        return [x[..., :, :-1] - x[..., :, 1:], x[..., :-1, :] - x[..., 1:, :],
                x[..., 1:, :-1] - x[..., :-1, 1:], x[..., :-1, :-1] - x[..., 1:, 1:]]

    per_image = sum(torch.stack([d[i].norm() for i in range(2)]) for d in diffs(image))
    torch.testing.assert_close(obj.total_variation(0.5)(ev), -0.5 * per_image)
    x = model.normalize(image)
    vital = 3.0 * sum(torch.stack([d[i].norm() for i in range(2)]) for d in diffs(x)) + 2.0 * x.flatten(1).norm(dim=1)
    torch.testing.assert_close(obj.total_variation(3.0, pixel_l2=2.0, model=model)(ev), -vital)
    v = model.normalize(views)
    batch = 1e-4 * sum(d.norm() for d in diffs(v)) + 0.1 * sum(d.abs().mean() for d in diffs(v))
    got = obj.total_variation(1e-4, 0.1, model=model, on_views=True, whole_batch=True)(ev)
    torch.testing.assert_close(got, (-batch).expand(2))


@pytest.mark.parametrize("make_param", [
    lambda rng: PixelParam(rng, 32),
    lambda rng: FourierParam(rng, 32),
    lambda rng: MacoParam(rng, torch.rand(3, 32, 17) + 0.1, 32),
])
def test_loop_raises_the_target_score(tiny, make_param):
    """The lucid check for every parameterisation: the objective rises within a few steps."""
    rng = TargetRNG([0, 1])
    param = make_param(rng)
    res = optimize(tiny, param, obj.class_logit([3, 7]), 12, rng, OptimizerSpec("adam", lr=0.1),
                   transforms=T.compose(T.random_crops(2, 32, 0.6, 0.1), T.uniform_noise(0.02)))
    h = res.history
    assert h.shape == (12, 2)
    assert (h[-3:].mean(0) > h[:3].mean(0)).all()
    assert res.images.shape == (2, 3, 32, 32) and res.alpha.shape == (2, 32, 32)
    assert float(res.alpha.min()) >= 0 and float(res.alpha.max()) <= 1 and float(res.alpha.max()) > 0
    assert not torch.equal(res.images, res.initial)


def test_channel_objective_and_hooks_removed(tiny):
    rng = TargetRNG([3])
    before = len(tiny.module.relu2._forward_hooks)
    res = optimize(tiny, PixelParam(rng, 32), obj.channel("relu2", [5]), 10, rng, OptimizerSpec("adam", lr=0.05))
    assert res.history[-1, 0] > res.history[0, 0]
    assert len(tiny.module.relu2._forward_hooks) == before


def test_keep_best_returns_the_images_of_the_best_step_not_the_last(tiny):
    """DeepInversion keeps its best image: an objective that turns against the image after step 5 makes the
    last images worse than step 5's; ``keep_best`` returns step 5's (scored again: the same logit)."""
    rng = TargetRNG([0, 1])
    turn = obj.Objective(lambda ev: ev.logits[:, 3] * (1.0 if ev.step <= 5 else -1.0))
    res = optimize(tiny, PixelParam(rng, 32), turn, 12, rng, OptimizerSpec("adam", lr=0.1), keep_best=True)
    total = res.history.sum(1)
    assert res.best_step == int(total.argmax()) == 5 and float(total[-1]) < float(total[5])
    with torch.no_grad():
        torch.testing.assert_close(tiny(res.images)[:, 3], res.history[5], rtol=1e-4, atol=1e-4)
    last = optimize(tiny, PixelParam(TargetRNG([0, 1]), 32), turn, 12, TargetRNG([0, 1]),
                    OptimizerSpec("adam", lr=0.1))
    assert last.best_step is None and not torch.allclose(last.images, res.images)


def test_nan_stops_the_job_with_its_step(tiny):
    rng = TargetRNG([0])
    bad = obj.Objective(lambda ev: ev.logits[:, 0] * (float("nan") if ev.step >= 5 else 1.0))
    with pytest.raises(NonFiniteLoss) as err:
        optimize(tiny, PixelParam(rng, 32), bad, 40, rng, check_every=8)
    assert err.value.step == 5


def test_schedules():
    spec = OptimizerSpec("adam", lr=1.0, schedule="cosine", warmup=10)
    assert spec.factor(0, 100) == pytest.approx(0.1)
    assert spec.factor(10, 100) == pytest.approx(1.0)
    assert spec.factor(99, 100) < 0.01
    exp = OptimizerSpec("adam", schedule="exponential", gamma=0.8, decay_every=10)
    assert exp.factor(20, 100) == pytest.approx(0.64)
    assert np.isclose(OptimizerSpec().factor(50, 100), 1.0)


def test_maco_rendering_has_no_corner_spike_with_the_random_phase_offset():
    """Issue 17: with the reference code's standardised phases (near 0, std 1) every frequency of the natural
    spectrum adds up in phase at pixel (0, 0) - the bright corner spots of the demo's MACO images. The
    random phase offset (MACO's default) spreads them; the real rendering (spectrum of the bundled photos,
    DC term kept, sigmoid, colour recorrelation) is checked, and the magnitude stays fixed."""
    from atlas.data import BundledPool
    from atlas.data.spectrum import estimate_spectrum

    mag = estimate_spectrum(BundledPool(), 64, 16)
    assert mag[0, 0, 0] > 5 * mag[0].reshape(-1)[1:].max()  # the DC term is kept

    def corner_excess(offset: str) -> float:
        spikes = []
        for seed in range(4):
            with torch.no_grad():
                img = MacoParam(TargetRNG([seed]), mag, 64, phase_offset=offset)()[0]  # (3, 64, 64) in [0, 1]
            lum = img.mean(0)
            corner = torch.stack([lum[0, 0], lum[0, -1], lum[-1, 0], lum[-1, -1]]).max()
            spikes.append(float((corner - lum.mean()) / lum.std()))
        return max(spikes)

    assert corner_excess("zero") > 3.0  # the reference rendering: a corner pixel far above the rest
    assert corner_excess("random") < 3.0
    p = MacoParam(TargetRNG([0]), mag, 64, phase_offset="random")
    with torch.no_grad():
        phase = (p.phase - p.phase.mean()) / (p.phase.std() + 1e-4) + p.offset
        spec = torch.fft.rfft2(torch.fft.irfft2(torch.polar(torch.as_tensor(mag)[None], phase), s=(64, 64))).abs()
    torch.testing.assert_close(spec[0, :, 1:-1, 1:-1], torch.as_tensor(mag)[:, 1:-1, 1:-1], atol=1e-2, rtol=1e-3)
    with pytest.raises(ValueError, match="phase_offset"):
        MacoParam(TargetRNG([0]), mag, 64, phase_offset="uniform")
