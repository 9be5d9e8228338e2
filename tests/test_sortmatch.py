"""VITAL's sort-matching loss (Alg. 1) against a brute-force reference, and as an objective."""
import numpy as np
import torch

from atlas.optim import OptimizerSpec, TargetRNG, optimize
from atlas.optim.param import PixelParam
from atlas.optim.sortmatch import MatchedBlock, reference_quantiles, sort_matching, sort_matching_objective


def brute_force(syn, ref, weights=None):
    """Alg. 1 written out with Python loops: for every channel, the i-th smallest synthetic value is
    compared with the mean over references of their i-th smallest values."""
    b, c, n = syn.shape
    out = []
    for k in range(b):
        total = 0.0
        for ch in range(c):
            ranks = sorted(range(n), key=lambda i: float(syn.detach()[k, ch, i]))
            mean_sorted = [sum(sorted(ref[r, ch].tolist())[j] for r in range(ref.shape[0])) / ref.shape[0]
                           for j in range(n)]
            w = 1.0 if weights is None else float(weights[ch])
            for j, i in enumerate(ranks):
                total = total + w * (syn[k, ch, i] - mean_sorted[j]) ** 2
        out.append(total / (c * n))
    return torch.stack(out)


def test_values_and_gradient_match_brute_force():
    g = torch.Generator().manual_seed(0)
    syn = torch.randn(2, 3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(4, 3, 7, generator=g, dtype=torch.float64) * 2 + 1
    w = torch.rand(3, generator=g, dtype=torch.float64)
    for weights in (None, w):
        fast = sort_matching(syn, reference_quantiles(ref), weights)
        slow = brute_force(syn, ref, weights)
        torch.testing.assert_close(fast, slow)
        g_fast, = torch.autograd.grad(fast.sum(), syn)
        g_slow, = torch.autograd.grad(slow.sum(), syn)
        torch.testing.assert_close(g_fast, g_slow)


def test_zero_for_a_permutation_of_the_reference_quantiles():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(5, 4, 30, generator=g)
    q = reference_quantiles(ref)
    perm = torch.stack([q[c, torch.randperm(30, generator=g)] for c in range(4)])[None]
    assert float(sort_matching(perm, q)) < 1e-12
    assert float(sort_matching(perm + 0.1 * torch.randn(perm.shape, generator=g), q)) > 1e-4
    # gradient only through the synthetic values: the references are constants
    syn = perm.clone().requires_grad_(True)
    loss = sort_matching(syn + 1.0, q)
    loss.backward()
    torch.testing.assert_close(syn.grad, torch.full_like(syn, 2.0 / (4 * 30)))


def test_objective_loss_falls_on_a_tiny_model(tiny):
    refs = torch.rand(6, 3, 32, 32) * 0.5 + 0.4
    blocks = [MatchedBlock("relu1", 1.0), MatchedBlock("relu2", 2.0)]
    with torch.no_grad():
        acts = tiny.activations(refs, ["relu1", "relu2"])
    q = {b.key: reference_quantiles(acts[b.key].flatten(2))[None] for b in blocks}
    objective = sort_matching_objective(blocks, q)
    rng = TargetRNG([3])
    res = optimize(tiny, PixelParam(rng, 32, 0.5, mean=tiny.mean, std=tiny.std), objective, 40, rng,
                   OptimizerSpec("adam", lr=0.1, betas=(0.5, 0.9), schedule="cosine", warmup=4))
    assert res.history[-1, 0] > 0.3 * res.history[0, 0]  # scores are -loss: loss fell by > 70 %
    assert res.alpha.shape == (1, 32, 32)


def test_cpu_argsort_in_numpy_threads_orders_like_torch():
    """The CPU sort (NumPy, in threads over the rows) gives an ascending order of every row, and the loss of
    the order it gives equals the loss of torch's order."""
    from atlas.optim.sortmatch import argsort_rows

    torch.manual_seed(0)
    x = torch.randn(2, 24, 900)
    x[0, 0, :10] = 0.5  # ties
    order = argsort_rows(x)
    assert order.dtype == torch.int64 and order.shape == x.shape
    torch.testing.assert_close(x.gather(-1, order), x.sort(-1).values, rtol=0, atol=0)
    q = torch.randn(24, 900).sort(-1).values
    torch.testing.assert_close(sort_matching(x, q), sort_matching(x.double(), q.double()).float(), rtol=1e-6, atol=1e-7)


def test_cpu_argsort_of_long_rows_by_radix_is_the_stable_order():
    """Rows past RADIX_MIN_LENGTH are ordered by two 16-bit radix passes: exactly the stable argsort
    (ties in index order) of floats of both signs, with ties, values that share their high or low 16 bits,
    and a value of every exponent range; short rows by the 64-bit key sort, the same order."""
    from atlas.optim.sortmatch import RADIX_MIN_LENGTH, _order_rows, argsort_rows

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, RADIX_MIN_LENGTH + 500, generator=g) * torch.logspace(-20, 20, 3)[None, :, None]
    x[0, 0, :50] = 0.5  # ties
    x[0, 1, :300] = 0.0  # ReLU-like zeros
    x[1, 2, 100:200] = x[1, 2, 100] + torch.arange(100) * 1e-7 * x[1, 2, 100]  # equal high halves
    order = argsort_rows(x)
    want = np.argsort(x.numpy(), axis=-1, kind="stable")
    assert np.array_equal(order.numpy(), want)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a local worker's thread: all rows in one range
    try:
        assert np.array_equal(argsort_rows(x).numpy(), want)
    finally:
        torch.set_num_threads(threads)
    short = x[..., :RADIX_MIN_LENGTH // 2].reshape(-1, RADIX_MIN_LENGTH // 2).contiguous().numpy()
    assert np.array_equal(_order_rows(short), np.argsort(short, axis=-1, kind="stable"))


def test_sort_rows_gives_torch_sorts_values():
    """The reference quantiles' sort in NumPy threads: the same values as ``torch.sort``, ties included."""
    from atlas.optim.sortmatch import sort_rows

    x = torch.randn(3, 16, 4096, generator=torch.Generator().manual_seed(0))
    x[0, 0, :64] = 0.5  # ties
    assert torch.equal(sort_rows(x), x.sort(dim=-1).values)
    assert torch.equal(sort_rows(x[..., :8]), x[..., :8].sort(dim=-1).values)  # small: torch's own
