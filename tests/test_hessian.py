"""genlens.lenses.hessian against a dense Hessian (torch.autograd.functional.hessian + eigh), a quadratic
with a known spectrum, plain autograd, numpy, and PyHessian on the same model."""
import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses import hessian as H


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tiny(seed=0, n=40):
    torch.manual_seed(seed)
    g = _gen(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, x, y


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _dense(model, x, y, w=None):
    """Oracle: the dense Hessian of the mean cross-entropy at flat parameters w (default the model's)."""
    names, shapes = zip(*[(n, p.shape) for n, p in model.named_parameters()])
    sizes = [math.prod(s) for s in shapes]

    def loss(v):
        params = {n: t.view(s) for n, t, s in zip(names, v.split(sizes), shapes)}
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, _flat(model) if w is None else w)


class _Quadratic(nn.Module):
    """Output w itself; with loss 0.5 w^T A w the Hessian is A whatever the data."""

    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), -1)


def _quadratic(eigenvalues, seed=0):
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed), dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T
    loss = lambda out, y: 0.5 * (out[0] @ A @ out[0])  # noqa: E731
    data = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4))
    return _Quadratic(n), loss, data, A, Q


@pytest.mark.parametrize("method", ["forward_over_reverse", "double_backward"])
def test_hvp_matches_dense_hessian_and_does_not_depend_on_batching(method):
    model, x, y = _tiny()
    Hd = _dense(model, x, y)
    v = torch.randn(Hd.shape[0], dtype=torch.float64, generator=_gen(1))
    for batch_size in (None, 7):
        hv = H.hvp(model, (x, y), v, batch_size=batch_size, method=method)
        assert torch.allclose(hv, Hd @ v, atol=1e-12)
    V = torch.randn(3, Hd.shape[0], dtype=torch.float64)
    assert torch.allclose(H.hvp(model, (x, y), V, method=method), V @ Hd, atol=1e-12)
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]
    assert torch.allclose(H.hvp(model, batches, v, method=method), Hd @ v, atol=1e-12)
    cached = H.HessianOperator(model, batches, cache_graph=True)
    assert torch.allclose(cached.matmat(V), V @ Hd, atol=1e-12) and torch.allclose(cached(v), Hd @ v, atol=1e-12)


@pytest.mark.parametrize("method", ["forward_over_reverse", "double_backward"])
def test_products_at_other_points_match_the_dense_hessian_there(method):
    model, x, y = _tiny(2)
    g = _gen(3)
    P = _flat(model).numel()
    W = _flat(model) + 0.5 * torch.randn(3, P, generator=g, dtype=torch.float64)  # (3, P) other points
    V = torch.randn(3, P, generator=g, dtype=torch.float64)
    op = H.HessianOperator(model, (x, y), batch_size=16, method=method)
    out = op.matmat(V, points=W)
    for i in range(3):
        assert torch.allclose(out[i], _dense(model, x, y, W[i]) @ V[i], atol=1e-12)
    at = H.HessianOperator(model, (x, y), w0=W[1], method=method)
    assert torch.allclose(at(V[0]), _dense(model, x, y, W[1]) @ V[0], atol=1e-12)
    assert op.hvp_count == 3


def test_hvp_accepts_a_pytree_and_leaves_the_model_alone():
    model, x, y = _tiny()
    model.train()
    model[2].eval()  # a submodule's own flag must come back too
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    tree = {k: torch.ones_like(p) for k, p in model.named_parameters()}
    out = H.hvp(model, (x, y), tree)
    assert set(out) == set(tree) and all(out[k].shape == tree[k].shape for k in tree)
    assert torch.allclose(torch.cat([t.reshape(-1) for t in out.values()]), _dense(model, x, y).sum(1), atol=1e-12)
    assert model.training and not model[2].training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], p) for k, p in model.named_parameters())


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenpairs_match_eigh(method):
    model, x, y = _tiny()
    evals, evecs = torch.linalg.eigh(_dense(model, x, y))
    est = H.eigenpairs(model, (x, y), k=3, tol=1e-9, method=method, max_iter=3000, generator=_gen())
    assert est.converged and est.num_samples == len(x) and est.hvp_count > 0
    assert torch.allclose(est.eigenvalues, evals.flip(0)[:3], rtol=1e-6)
    overlap = (est.eigenvectors @ evecs[:, -3:].flip(1)).diagonal().abs()
    assert torch.allclose(overlap, torch.ones(3, dtype=torch.float64), atol=1e-4)
    for lam, u, r in zip(est.eigenvalues, est.eigenvectors, est.residuals):  # the residual is ||H u - lam u||
        assert r.item() == pytest.approx((_dense(model, x, y) @ u - lam * u).norm().item(), rel=0.5, abs=1e-8)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_most_negative_eigenvalue(method):
    model, x, y = _tiny()
    evals = torch.linalg.eigvalsh(_dense(model, x, y))
    assert evals[0] < 0
    est = H.eigenpairs(model, (x, y), tol=1e-9, which="SA", method=method, max_iter=2000, generator=_gen())
    assert est.eigenvalues[0].item() == pytest.approx(evals[0].item(), rel=1e-5)


def test_same_generator_same_estimate():
    model, x, y = _tiny()
    a, b = (H.eigenpairs(model, (x, y), tol=1e-2, max_iter=5, generator=_gen(4)) for _ in range(2))
    assert torch.equal(a.eigenvalues, b.eigenvalues) and a.iterations == b.iterations
    c = H.eigenpairs(model, (x, y), tol=1e-2, max_iter=5, generator=_gen(5))
    assert not torch.equal(a.eigenvalues, c.eigenvalues)  # 5 steps are not converged: the start shows


def test_extremes_at_many_points_match_dense_eigenvalues():
    model, x, y = _tiny(1)
    P = _flat(model).numel()
    W = _flat(model) + 0.3 * torch.randn(5, P, generator=_gen(6), dtype=torch.float64)
    ext = H.extremes(model, (x, y), W, steps=P, points_per_pass=2, generator=_gen(7))
    dense = torch.stack([torch.linalg.eigvalsh(_dense(model, x, y, w))[[0, -1]] for w in W])  # (5, 2)
    assert torch.allclose(ext.lambda_min, dense[:, 0], rtol=1e-6, atol=1e-9)
    assert torch.allclose(ext.lambda_max, dense[:, 1], rtol=1e-6, atol=1e-9)
    assert torch.allclose(ext.ratio, (dense[:, 0] / dense[:, 1]).abs(), rtol=1e-5)
    assert (ext.residual_max < 1e-6).all() and 0 < ext.hvp_count <= 5 * P and ext.steps == P
    few = H.extremes(model, (x, y), W[:2], steps=4, generator=_gen(7))  # few steps: inside the spectrum
    assert (few.lambda_max <= dense[:2, 1] + 1e-9).all() and (few.lambda_min >= dense[:2, 0] - 1e-9).all()
    assert (few.residual_max > 0).all()


def test_quadratic_with_known_spectrum():
    spectrum = [10.0, 5.0, 2.0] + [0.5] * 10 + [-1.0, -3.0]
    model, loss, data, A, Q = _quadratic(spectrum)
    est = H.eigenpairs(model, data, k=3, tol=1e-10, loss_fn=loss, generator=_gen())
    assert torch.allclose(est.eigenvalues, torch.tensor([10.0, 5.0, 2.0], dtype=torch.float64), rtol=1e-8)
    assert (est.eigenvectors[0] @ Q[:, 0]).abs() == pytest.approx(1.0, abs=1e-8)
    low = H.eigenpairs(model, data, k=2, tol=1e-10, which="SA", loss_fn=loss)
    assert torch.allclose(low.eigenvalues, torch.tensor([-3.0, -1.0], dtype=torch.float64), rtol=1e-8)
    tr = H.trace(model, data, loss_fn=loss, max_probes=400, block=50, tol=1e-4, generator=_gen(1))
    assert abs(tr.value - sum(spectrum)) < 4 * tr.std_error
    dens = H.density(model, data, loss_fn=loss, steps=15, runs=3, generator=_gen())  # 15 steps on 15 dims: exact
    assert dens.nodes.min().item() == pytest.approx(-3.0) and dens.nodes.max().item() == pytest.approx(10.0)
    assert torch.allclose(dens.weights.sum(1), torch.ones(3, dtype=torch.float64))
    grid, curve = dens.curve(num=2000)
    assert (curve * (grid[1] - grid[0])).sum().item() == pytest.approx(1.0, abs=1e-2)
    ext = H.extremes(model, data, loss_fn=loss, steps=15)
    assert ext.lambda_min.item() == pytest.approx(-3.0) and ext.lambda_max.item() == pytest.approx(10.0)


def test_trace_and_per_layer_match_dense():
    model, x, y = _tiny()
    Hd = _dense(model, x, y)
    tr = H.trace(model, (x, y), max_probes=400, block=50, tol=1e-4, generator=_gen())
    assert abs(tr.value - Hd.trace().item()) < 4 * tr.std_error
    layers = H.per_layer(model, (x, y), tol=1e-8, trace_tol=1e-9, max_probes=20, generator=_gen())
    start = 0
    for info in layers:
        block = Hd[start : start + info.params, start : start + info.params]
        assert info.top_eigenvalue == pytest.approx(torch.linalg.eigvalsh(block)[-1].item(), rel=1e-6)
        assert abs(info.trace - block.trace().item()) < 5 * info.trace_std_error + 1e-9
        start += info.params
    assert start == Hd.shape[0] and [info.name for info in layers] == ["1", "3"]


def test_gradient_and_loss_along_against_plain_autograd():
    model, x, y = _tiny()
    F.cross_entropy(model(x), y).backward()  # oracle: the ordinary backward pass
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    assert torch.allclose(H.gradient(model, (x, y), batch_size=9), expected, atol=1e-12)
    u = torch.randn(expected.numel(), generator=_gen(2), dtype=torch.float64)
    steps = [-0.5, 0.0, 0.25]
    losses = H.loss_along(model, (x, y), u, steps, batch_size=7)
    for t, value in zip(steps, losses):
        moved = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
        torch.nn.utils.vector_to_parameters(_flat(model) + t * u, moved.parameters())
        with torch.no_grad():
            assert value.item() == pytest.approx(F.cross_entropy(moved(x), y).item(), rel=1e-12)


def test_spread_over_subsets_against_numpy():
    x = torch.arange(30.0)[:, None]  # row i holds i, so an estimate can say which rows it saw
    y = torch.zeros(30, dtype=torch.long)
    seen = []

    def estimate(data, generator=None):
        rows = data[0][:, 0].long()
        seen.append(rows)
        return float(rows.float().mean())

    spread = H.spread_over_subsets(estimate, (x, y), sample_size=10, repeats=4, generator=_gen(0))
    assert all(len(set(r.tolist())) == 10 for r in seen)  # each subset: 10 distinct rows
    values = np.array([r.float().mean().item() for r in seen])
    assert spread.values == pytest.approx(tuple(values))
    assert spread.mean == pytest.approx(values.mean()) and spread.std == pytest.approx(values.std(ddof=1))
    assert (spread.min, spread.max) == (values.min(), values.max())
    whole = H.spread_over_subsets(estimate, (x, y), sample_size=30, repeats=3)
    assert whole.values == (14.5, 14.5, 14.5) and whole.std == 0
    model, x, y = _tiny()  # the whole data set every time: the dense top eigenvalue every time
    top = torch.linalg.eigvalsh(_dense(model, x, y))[-1].item()
    spread = H.spread_over_subsets(partial(H.eigenpairs, model, tol=1e-9, max_iter=500), (x, y), sample_size=len(x),
                                   repeats=2, generator=_gen(1))
    assert spread.values == pytest.approx((top, top), rel=1e-6)


def test_bad_arguments():
    model, x, y = _tiny()
    with pytest.raises(ValueError, match="which"):
        H.eigenpairs(model, (x, y), which="LM")
    with pytest.raises(ValueError, match="params"):
        H.HessianOperator(model, (x, y), params=["nope"])
    with pytest.raises(ValueError, match="40 inputs but 3 targets"):
        H.HessianOperator(model, (x, y[:3]))
    with pytest.raises(ValueError, match="k must"):
        H.eigenpairs(model, (x, y), k=0)
    with pytest.raises(TypeError, match="data must be"):
        H.HessianOperator(model, 3)
    with pytest.raises(ValueError, match="points must have 53 entries per row"):
        H.extremes(model, (x, y), torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="w0 must have 1 dimensions"):
        H.HessianOperator(model, (x, y), w0=torch.zeros(2, 53, dtype=torch.float64))


def test_agrees_with_pyhessian():
    pyhessian = pytest.importorskip("pyhessian")
    model, x, y = _tiny(n=64)
    model = model.float()
    xf = x.float()
    torch.manual_seed(0)
    peer = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(xf, y), cuda=False)
    peer_top, _ = peer.eigenvalues(maxIter=500, tol=1e-6)
    ours = H.eigenpairs(model, (xf, y), tol=1e-5, generator=_gen())
    assert ours.eigenvalues[0].item() == pytest.approx(peer_top[0], rel=1e-3)


def test_tracker_records_curvature_and_gradient_norm():
    from genlens.core.train import History

    model, x, y = _tiny()
    history = History()
    callback = H.tracker((x[:20], y[:20]), (x, y), tol=1e-8, batch_size=7, generator=_gen())
    callback(0, model, history)
    callback(1, model, history)
    top = torch.linalg.eigvalsh(_dense(model, x[:20], y[:20]))[-1].item()
    assert history.extra["top_eigenvalue"] == pytest.approx([top, top], rel=1e-6)
    F.cross_entropy(model(x), y).backward()
    grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
    assert history.extra["grad_norm"] == pytest.approx([grad_norm, grad_norm], rel=1e-10)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA"))])
def test_results_follow_the_data_device(device):
    model, x, y = _tiny()
    model, x, y = model.to(device), x.to(device), y.to(device)
    est = H.eigenpairs(model, (x, y), tol=1e-3, generator=_gen())
    assert est.eigenvectors.device.type == device and H.gradient(model, (x, y)).device.type == device
    with pytest.raises(ValueError, match="model is on"):
        H.eigenpairs(model, (x.cpu().to("meta"), y))


def test_train_tracked_records_one_value_per_epoch_and_caches(tmp_path):
    from genlens.core.cache import Cache
    from genlens.core.data import ImageData
    from genlens.core.train import TrainConfig

    g = _gen(0)
    images = ImageData("toy", torch.rand(48, 1, 4, 4, generator=g), torch.randint(0, 3, (48,), generator=g),
                       torch.rand(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g), ("a", "b", "c"))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, seed=0)
    kw = dict(model="mlp", model_kwargs={"hidden": [6]}, hessian_data=(images.x_train[:20], images.y_train[:20]),
              batch_size=8, cache=Cache(tmp_path))
    net, history = H.train_tracked(images, cfg, **kw)
    assert len(history.extra["top_eigenvalue"]) == len(history.extra["grad_norm"]) == 2
    top = H.eigenpairs(net, kw["hessian_data"], tol=1e-6, max_iter=200).eigenvalues[0].item()
    assert history.extra["top_eigenvalue"][-1] == pytest.approx(top, rel=2e-2)  # the tracker's tol is 1e-2
    grad = H.gradient(net, (images.x_train, images.y_train)).norm().item()
    assert history.extra["grad_norm"][-1] == pytest.approx(grad, rel=1e-5)
    _, again = H.train_tracked(images, cfg, **kw)
    assert again.extra == history.extra  # from the cache
    _, robust = H.train_tracked(images, cfg, fgsm_eps=0.1, **kw)
    assert robust.train_loss != history.train_loss  # FGSM training is another run


def test_slq_trace_is_hutchinson_with_the_start_vectors_and_matches_dense():
    """SLQ's trace P * sum_j w_j theta_j of a run is v^T H v for its Rademacher start v (an identity), so SLQ with
    few runs is Hutchinson with few probes; over many runs both estimate the dense trace."""
    model, x, y = _tiny()
    Hd = _dense(model, x, y)
    P = Hd.shape[0]
    dens = H.density(model, (x, y), steps=12, runs=300, generator=_gen(3))
    V = torch.randint(0, 2, (300, P), generator=_gen(3)).double() * 2 - 1  # the same draws as density's
    assert torch.allclose(dens.trace_samples(), ((V @ Hd) * V).sum(1), rtol=1e-8, atol=1e-10)
    samples = dens.trace_samples()
    se = samples.std().item() / math.sqrt(len(samples))
    assert abs(dens.trace() - Hd.trace().item()) < 4 * se
    hutch = H.trace(model, (x, y), max_probes=300, min_probes=300, block=100, generator=_gen(4))
    assert abs(hutch.value - Hd.trace().item()) < 4 * hutch.std_error
    # Rademacher probes: the variance of v^T H v is 2 * sum_{i != j} H_ij^2
    off = Hd - torch.diag(Hd.diagonal())
    assert samples.var().item() == pytest.approx(2 * (off**2).sum().item(), rel=0.3)


def test_around_loss_and_at_loss_interpolate_at_the_target():
    from genlens.core.train import History

    h = History(epoch=list(range(5)), train_loss=[2.0, 1.0, 0.4, 0.25, 0.1])
    when = H.around_loss(0.2)
    picked = [e for e in range(5) if when(e, History(epoch=h.epoch[: e + 1], train_loss=h.train_loss[: e + 1]))]
    assert picked == [0, 2, 3, 4]  # 0.4^2 / 1 and 0.25^2 / 0.4 are <= 0.2: the next epoch is predicted to cross
    h.extra = {"tracked_epoch": [0, 2, 3, 4], "top_eigenvalue": [1.0, 5.0, 4.0, 1.0]}
    t = (math.log(0.25) - math.log(0.2)) / (math.log(0.25) - math.log(0.1))
    assert H.at_loss(h, 0.2) == pytest.approx(math.exp((1 - t) * math.log(4.0)))
    assert H.at_loss(h, 0.1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="never reached"):
        H.at_loss(h, 0.05)
    with pytest.raises(ValueError, match="> 0"):
        H.around_loss(0.0)


def test_train_tracked_to_a_loss_stops_there_and_measures_around_it(tmp_path):
    from genlens.core.cache import Cache
    from genlens.core.data import ImageData
    from genlens.core.train import TrainConfig

    g = _gen(0)
    images = ImageData("toy", torch.rand(48, 1, 4, 4, generator=g), torch.randint(0, 3, (48,), generator=g),
                       torch.rand(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g), ("a", "b", "c"))
    kw = dict(model="mlp", model_kwargs={"hidden": [16]}, hessian_data=(images.x_train[:20], images.y_train[:20]),
              batch_size=8, cache=Cache(tmp_path))
    full = TrainConfig(epochs=30, batch_size=16, lr=0.2, seed=0, exact_train_metrics=True)
    _, h_full = H.train_tracked(images, full, **kw)
    target = h_full.train_loss[10]
    net, h = H.train_tracked(images, TrainConfig(**{**full.__dict__, "stop_at_train_loss": target}), **kw)
    stop = next(e for e, loss in enumerate(h_full.train_loss) if loss <= target)
    assert h.epoch[-1] == stop and h.train_loss == h_full.train_loss[: stop + 1]
    assert h.extra["tracked_epoch"][0] == 0 and h.extra["tracked_epoch"][-1] == stop
    assert len(h.extra["tracked_epoch"]) < len(h.epoch)
    assert h.extra["top_eigenvalue"][-1] == pytest.approx(h_full.extra["top_eigenvalue"][stop], rel=1e-6)
    value = H.at_loss(h, target)
    assert min(h.extra["top_eigenvalue"][-2:]) - 1e-9 <= value <= max(h.extra["top_eigenvalue"][-2:]) + 1e-9
    with pytest.raises(ValueError, match="exact_train_metrics"):
        H.train_tracked(images, TrainConfig(epochs=2, stop_at_train_loss=0.1), **kw)
    _, h_ends = H.train_tracked(images, full, track="ends", **kw)
    assert h_ends.extra["tracked_epoch"] == [0, 29] and h_ends.train_loss == h_full.train_loss
    assert h_ends.extra["top_eigenvalue"] == pytest.approx([h_full.extra["top_eigenvalue"][i] for i in (0, 29)])
    with pytest.raises(ValueError, match="track must be"):
        H.train_tracked(images, full, track="some", **kw)
    plain, h_plain = H.train_tracked(images, full, track=False, **kw)
    assert "top_eigenvalue" not in h_plain.extra and h_plain.train_loss == h_full.train_loss


def test_full_precision_turns_tf32_off_inside_and_restores_it():
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with H.full_precision():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


@pytest.mark.parametrize("stop_early", [False, True])
def test_lanczos_basis_is_never_read_before_it_is_written(monkeypatch, stop_early):
    """krylov.lanczos allocates its basis uninitialised: with NaN garbage in it the results are bitwise those
    of a zero-filled basis (the old allocation), also for a row whose Krylov space is exhausted early."""
    from genlens.lenses import krylov

    A = torch.diag(torch.tensor([3.0, 2.0, 1.0] + [0.0] * 7, dtype=torch.float64))
    V0 = torch.stack([torch.tensor([1.0, 1.0] + [0.0] * 8, dtype=torch.float64),  # exhausted after 2 steps
                      torch.randn(10, generator=_gen(1), dtype=torch.float64)])
    V0 = V0 / V0.norm(dim=1, keepdim=True)
    stop = (lambda a, b: a.shape[1] >= 3) if stop_early else None
    runs = {}
    real_empty = torch.empty
    for fill in (0.0, math.nan):
        monkeypatch.setattr(krylov.torch, "empty", lambda *s, **kw: real_empty(*s, **kw).fill_(fill))
        runs[fill] = krylov.lanczos(lambda V: V @ A, V0, 6, stop)
    monkeypatch.setattr(krylov.torch, "empty", real_empty)
    (a0, b0, Q0, n0), (a1, b1, Q1, n1) = runs[0.0], runs[math.nan]
    assert n0 == n1 and n0[0] == 2
    assert torch.isfinite(Q1).all()
    assert torch.equal(a0, a1) and torch.equal(b0, b1) and torch.equal(Q0, Q1)
    assert (Q1[0, 2:] == 0).all()


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_stop_on_eigenvalue_reaches_the_tolerance_with_fewer_hvps(which):
    """stop_on="eigenvalue" (estimated error min(r, r^2/gap) <= tol |theta|) against the known spectrum of a
    200-dimensional quadratic: every wanted eigenvalue within tol, in fewer products than the residual rule."""
    spectrum = [10.0, 9.0, 8.5] + torch.linspace(-2.0, 7.0, 194).tolist() + [-4.0, -5.0, -6.0]
    model, loss, data, _, _ = _quadratic(spectrum)
    exact = torch.tensor(sorted(spectrum, reverse=which == "LA")[:3], dtype=torch.float64)
    tol = 1e-5
    runs = {stop_on: H.eigenpairs(model, data, k=3, tol=tol, which=which, loss_fn=loss, stop_on=stop_on,
                                  generator=_gen(2), max_iter=200) for stop_on in ("residual", "eigenvalue")}
    for est in runs.values():
        assert est.converged
        assert ((est.eigenvalues - exact).abs() <= tol * exact.abs()).all()
    assert runs["eigenvalue"].hvp_count < runs["residual"].hvp_count
    assert (runs["eigenvalue"].residuals > tol * exact.abs()).any()  # stopped before the residual rule could
    with pytest.raises(ValueError, match="stop_on"):
        H.eigenpairs(model, data, loss_fn=loss, stop_on="ritz")
