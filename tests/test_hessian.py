"""genlens.lenses.hessian against a dense Hessian (torch.autograd.functional.hessian + eigh), a quadratic
with a known spectrum, and PyHessian on the same model."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses import hessian as H


def _tiny(seed=0, n=40):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, x, y


def _dense(model, x, y):
    op = H.HessianOperator(model, F.cross_entropy, (x, y))
    return torch.autograd.functional.hessian(lambda w: op._loss(w, x, y), op.w0)


class _Quadratic(nn.Module):
    """Output w itself; with loss 0.5 w^T A w the Hessian is A whatever the data."""

    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), -1)


def _quadratic(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T
    model = _Quadratic(n)
    loss = lambda out, y: 0.5 * (out[0] @ A @ out[0])  # noqa: E731
    data = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4))
    return model, loss, data, A, Q


@pytest.mark.parametrize("method", ["forward_over_reverse", "double_backward"])
def test_hvp_matches_dense_hessian_and_does_not_depend_on_batching(method):
    model, x, y = _tiny()
    Hd = _dense(model, x, y)
    v = torch.randn(Hd.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for batch_size in (None, 7):
        hv = H.hvp(model, F.cross_entropy, (x, y), v, batch_size=batch_size, method=method)
        assert torch.allclose(hv, Hd @ v, atol=1e-12)
    V = torch.randn(3, Hd.shape[0], dtype=torch.float64)
    assert torch.allclose(H.hvp(model, F.cross_entropy, (x, y), V, method=method), V @ Hd, atol=1e-12)
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]
    assert torch.allclose(H.hvp(model, F.cross_entropy, batches, v, method=method), Hd @ v, atol=1e-12)
    cached = H.HessianOperator(model, F.cross_entropy, batches, cache_graph=True)
    assert torch.allclose(cached.matmat(V), V @ Hd, atol=1e-12) and torch.allclose(cached(v), Hd @ v, atol=1e-12)


def test_hvp_accepts_a_pytree_and_leaves_the_model_alone():
    model, x, y = _tiny()
    model.train()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    tree = {k: torch.ones_like(p) for k, p in model.named_parameters()}
    out = H.hvp(model, F.cross_entropy, (x, y), tree)
    assert set(out) == set(tree) and all(out[k].shape == tree[k].shape for k in tree)
    Hd = _dense(model, x, y)
    assert torch.allclose(torch.cat([t.reshape(-1) for t in out.values()]), Hd.sum(1), atol=1e-12)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], p) for k, p in model.named_parameters())


def test_hvp_is_symmetric():
    model, x, y = _tiny(3)
    g = torch.Generator().manual_seed(0)
    op = H.HessianOperator(model, F.cross_entropy, (x, y), batch_size=16)
    u, v = torch.randn(2, op.size, generator=g, dtype=torch.float64)
    assert abs(u @ op(v) - v @ op(u)) < 1e-12 * (u.norm() * v.norm())


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenpairs_match_eigh(method):
    model, x, y = _tiny()
    evals, evecs = torch.linalg.eigh(_dense(model, x, y))
    est = H.eigenpairs(model, F.cross_entropy, (x, y), k=3, tol=1e-9, method=method, max_iter=3000)
    assert est.converged and est.num_samples == len(x) and est.hvp_count > 0
    assert torch.allclose(est.eigenvalues, evals.flip(0)[:3], rtol=1e-6)
    overlap = (est.eigenvectors @ evecs[:, -3:].flip(1)).diagonal().abs()
    assert torch.allclose(overlap, torch.ones(3, dtype=torch.float64), atol=1e-4)
    values, vectors = H.top_eigenvalues(model, F.cross_entropy, (x, y), k=2, tol=1e-8, method=method,
                                        max_iter=3000)
    assert values.shape == (2,) and vectors.shape == (2, evals.numel())


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_most_negative_eigenvalue(method):
    model, x, y = _tiny()
    evals = torch.linalg.eigvalsh(_dense(model, x, y))
    assert evals[0] < 0
    values, _ = H.top_eigenvalues(model, F.cross_entropy, (x, y), k=1, tol=1e-9, which="SA", method=method,
                                  max_iter=2000)
    assert values[0].item() == pytest.approx(evals[0].item(), rel=1e-5)


def test_quadratic_with_known_spectrum():
    spectrum = [10.0, 5.0, 2.0] + [0.5] * 10 + [-1.0, -3.0]
    model, loss, data, A, Q = _quadratic(spectrum)
    est = H.eigenpairs(model, loss, data, k=3, tol=1e-10)
    assert torch.allclose(est.eigenvalues, torch.tensor([10.0, 5.0, 2.0], dtype=torch.float64), rtol=1e-8)
    assert (est.eigenvectors[0] @ Q[:, 0]).abs() == pytest.approx(1.0, abs=1e-8)
    low = H.eigenpairs(model, loss, data, k=2, tol=1e-10, which="SA")
    assert torch.allclose(low.eigenvalues, torch.tensor([-3.0, -1.0], dtype=torch.float64), rtol=1e-8)
    tr = H.trace(model, loss, data, max_probes=400, block=50, tol=1e-4, seed=1)
    assert abs(tr.value - sum(spectrum)) < 4 * tr.std_error
    dens = H.density(model, loss, data, steps=15, runs=3)  # 15 steps on 15 dims: exact quadrature
    assert dens.nodes.min().item() == pytest.approx(-3.0) and dens.nodes.max().item() == pytest.approx(10.0)
    assert torch.allclose(dens.weights.sum(1), torch.ones(3, dtype=torch.float64))
    grid, curve = dens.curve(num=2000)
    assert (curve * (grid[1] - grid[0])).sum().item() == pytest.approx(1.0, abs=1e-2)


def test_trace_and_per_layer_match_dense():
    model, x, y = _tiny()
    Hd = _dense(model, x, y)
    tr = H.trace(model, F.cross_entropy, (x, y), max_probes=400, block=50, tol=1e-4, seed=0)
    assert abs(tr.value - Hd.trace().item()) < 4 * tr.std_error and len(tr.samples) == tr.hvp_count
    layers = H.per_layer(model, F.cross_entropy, (x, y), tol=1e-8, trace_tol=1e-9, max_probes=20)
    start = 0
    for name, info in layers.items():
        block = Hd[start : start + info["params"], start : start + info["params"]]
        assert info["top_eigenvalue"] == pytest.approx(torch.linalg.eigvalsh(block)[-1].item(), rel=1e-6)
        start += info["params"]
    assert start == Hd.shape[0] and set(layers) == {"1", "3"}


def test_gradient_loss_along_and_spread():
    model, x, y = _tiny()
    op = H.HessianOperator(model, F.cross_entropy, (x, y))
    w = op.w0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(op._loss(w, x, y), w)
    assert torch.allclose(H.gradient(model, F.cross_entropy, (x, y), batch_size=9), g, atol=1e-12)
    (val,), (vec,) = H.top_eigenvalues(model, F.cross_entropy, (x, y), tol=1e-10)
    t = 1e-3
    losses = H.loss_along(model, F.cross_entropy, (x, y), vec, [-t, 0.0, t])
    assert (losses[0] - 2 * losses[1] + losses[2]) / t**2 == pytest.approx(val.item(), rel=1e-3)
    spread = H.spread_over_subsets(lambda d, s: H.trace(model, F.cross_entropy, d, seed=s, max_probes=20).value,
                                   x, y, sample_size=10, repeats=4)
    assert len(spread.values) == 4 and spread.min <= spread.mean <= spread.max and spread.sample_size == 10


def test_bad_arguments():
    model, x, y = _tiny()
    with pytest.raises(ValueError, match="which"):
        H.top_eigenvalues(model, F.cross_entropy, (x, y), which="LM")
    with pytest.raises(ValueError, match="params"):
        H.HessianOperator(model, F.cross_entropy, (x, y), params=["nope"])
    with pytest.raises(ValueError, match="rows"):
        H.HessianOperator(model, F.cross_entropy, (x, y[:3]))
    with pytest.raises(ValueError, match="k must"):
        H.top_eigenvalues(model, F.cross_entropy, (x, y), k=0)


def test_agrees_with_pyhessian():
    pyhessian = pytest.importorskip("pyhessian")
    model, x, y = _tiny(n=64)
    model = model.float()
    xf = x.float()
    torch.manual_seed(0)
    peer = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(xf, y), cuda=False)
    peer_top, _ = peer.eigenvalues(maxIter=500, tol=1e-6)
    ours, _ = H.top_eigenvalues(model, F.cross_entropy, (xf, y), tol=1e-5)
    assert ours[0].item() == pytest.approx(peer_top[0], rel=1e-3)
    assert math.isfinite(ours[0].item())


def test_tracker_records_curvature_and_gradient_norm():
    from genlens.core.train import History

    model, x, y = _tiny()
    history = History()
    callback = H.tracker(F.cross_entropy, (x, y), tol=1e-8)
    callback(0, model, history)
    callback(1, model, history)
    top = torch.linalg.eigvalsh(_dense(model, x, y))[-1].item()
    assert history.extra["top_eigenvalue"] == pytest.approx([top, top], rel=1e-6)
    assert history.extra["grad_norm"][0] == pytest.approx(H.gradient(model, F.cross_entropy, (x, y)).norm().item())
