"""Tests of genlens.lenses.landscape against closed forms and exact invariances."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses import landscape as L
from genlens.core.cache import Cache
from genlens.core.models import SmallCNN, build_for


class Quadratic(nn.Module):
    """out = x @ w (a 2-D weight of shape (D, 1)): with a squared loss the landscape is a quadratic."""

    def __init__(self, D: int, seed: int = 0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(D, 1, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        return x @ self.w


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def half_mse(out, y):
    return 0.5 * ((out[:, 0] - y) ** 2).mean()


def _quad_problem(D=5, N=40):
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(N, D, generator=g), torch.randn(N, generator=g)
    return Quadratic(D), X, y


def test_filter_normalized_direction_has_the_weights_filter_norms():
    torch.manual_seed(0)
    net = SmallCNN(width=4).eval()
    d = L.random_direction(net, norm="filter", ignore="biasbn", generator=_gen(3))
    for name, w in net.named_parameters():
        if w.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name  # biases and BN entries are zeroed
        else:
            torch.testing.assert_close(d[name].flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1))
    kept = L.random_direction(net, ignore="none", generator=_gen(3))
    torch.testing.assert_close(kept["fc.bias"], net.fc.bias.detach())  # ignore="none": 1-D entries copy w
    assert L.random_direction(net, generator=_gen(3))["fc.weight"].equal(d["fc.weight"])  # same seed, same direction


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_filter_normalization_is_invariant_to_relu_rescaling():
    a = 7.0
    net = _mlp()
    scaled = _mlp()
    with torch.no_grad():  # layer 1 times a, layer 2 divided by a: the same function
        scaled[0].weight.mul_(a), scaled[0].bias.mul_(a), scaled[2].weight.div_(a)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    coords = [torch.linspace(-1, 1, 9)]
    surf = {}
    for norm in ("filter", "none"):
        for tag, m in (("orig", net), ("scaled", scaled)):
            d = L.random_direction(m, norm=norm, generator=_gen(5))
            surf[norm, tag] = L.surface(m, (x, y), [d], coords).loss
    torch.testing.assert_close(surf["filter", "orig"], surf["filter", "scaled"], rtol=1e-5, atol=1e-5)
    assert (surf["none", "orig"] - surf["none", "scaled"]).abs().max() > 0.1


@pytest.mark.parametrize("engine", ["vmap", "loop"])
def test_quadratic_gives_the_analytic_surface(engine):
    model, X, y = _quad_problem()
    d1 = L.random_direction(model, norm="none", generator=_gen(1))
    d2 = L.random_direction(model, norm="none", generator=_gen(2))
    xs, ys = torch.linspace(-1, 1, 5), torch.linspace(-0.5, 1.5, 4)
    surf = L.surface(model, (X, y), [d1, d2], [xs, ys], loss_fn=half_mse, points_per_pass=3, batch_size=16,
                     engine=engine)
    w, u, v = model.w.detach()[:, 0], d1["w"][:, 0], d2["w"][:, 0]
    A, B = xs[:, None, None], ys[None, :, None]
    r = (w + A * u + B * v) @ X.T - y  # (5, 4, N) residuals
    torch.testing.assert_close(surf.loss, 0.5 * (r**2).mean(-1), rtol=1e-5, atol=1e-6)
    assert surf.loss.shape == (5, 4)
    curv = L.plane_curvature(surf)  # exact for a quadratic: eigenvalues of [[u'Hu, u'Hv], [v'Hu, v'Hv]]
    H = X.T @ X / len(X)
    P = torch.stack([u, v], 1)
    ev = torch.linalg.eigvalsh(P.T @ H @ P)
    torch.testing.assert_close(curv.lo, torch.full_like(curv.lo, ev[0].item()), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(curv.hi, torch.full_like(curv.hi, ev[1].item()), rtol=1e-3, atol=1e-3)


def test_hessian_extremes_match_dense_eigenvalues():
    model, X, y = _quad_problem(D=6)
    d = L.random_direction(model, norm="none", generator=_gen(1))
    ext = L.hessian_extremes(model, (X, y), [d], torch.tensor([[0.0], [1.0]]), loss_fn=half_mse, steps=10)
    ev = torch.linalg.eigvalsh(X.T @ X / len(X))  # the Hessian of a quadratic is the same everywhere
    torch.testing.assert_close(ext.lambda_min, ev[0].expand(2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ext.lambda_max, ev[-1].expand(2), rtol=1e-4, atol=1e-5)
    assert ext.steps == 6  # no more Lanczos steps than parameters


def test_hessian_extremes_on_a_relu_net_match_the_dense_hessian_off_the_minimum():
    net = _mlp()
    g = _gen(0)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    params = L.weights(net)
    flat = torch.cat([p.flatten() for p in params.values()])
    d1, d2 = (L.random_direction(net, generator=_gen(s)) for s in (1, 2))
    pts = torch.tensor([[0.0, 0.0], [0.5, -1.0]])

    def loss_of(theta):
        chunks = theta.split([p.numel() for p in params.values()])
        p = {n: c.view(t.shape) for (n, t), c in zip(params.items(), chunks)}
        return F.cross_entropy(torch.func.functional_call(net, p, (x,)), y)

    ext = L.hessian_extremes(net, (x, y), [d1, d2], pts, steps=len(flat), generator=_gen(3))
    for i, (a, b) in enumerate(pts.tolist()):
        theta = flat + torch.cat([(a * d1[n] + b * d2[n]).flatten() for n in params])
        ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, theta))
        torch.testing.assert_close(ext.lambda_max[i], ev[-1], rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(ext.lambda_min[i], ev[0], rtol=1e-3, atol=1e-4)


def test_interpolation_ends_are_the_two_models_with_their_batchnorm_statistics():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, 1, 12, 12, generator=g), torch.randint(0, 10, (20,), generator=g)
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = SmallCNN(width=4)
        net.train()
        with torch.no_grad():
            net(x * (1 + seed))  # different running statistics
        nets.append(net.eval())
    nets[0].train()  # interpolate must evaluate in eval mode and give the caller's mode back
    surf = L.interpolate(nets[0], nets[1], (x, y), [0.0, 0.5, 1.0])
    assert nets[0].training is True
    for i, net in zip((0, 2), nets):
        with torch.no_grad():
            torch.testing.assert_close(surf.loss[i], F.cross_entropy(net.eval()(x), y), rtol=1e-5, atol=1e-5)


def test_a_killed_grid_resumes_from_its_cached_points(tmp_path):
    model, X, y = _quad_problem()
    d1, d2 = (L.random_direction(model, norm="none", generator=_gen(s)) for s in (1, 2))
    coords = [torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 3)]
    full = L.surface(model, (X, y), [d1, d2], coords, loss_fn=half_mse)
    calls = {"n": 0}

    def dying(out, target):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("killed")
        return half_mse(out, target)

    dying.__qualname__ = "half_mse"  # the cache key names the loss; make the resumed run find it
    cache = Cache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        L.surface(model, (X, y), [d1, d2], coords, loss_fn=dying, points_per_pass=2, engine="loop", cache=cache)
    calls["n"] = -100
    resumed = L.surface(model, (X, y), [d1, d2], coords, loss_fn=dying, points_per_pass=2, engine="loop",
                        cache=cache)
    assert calls["n"] == -100 + 12 - 4  # two passes of two points were finished before the kill
    torch.testing.assert_close(resumed.loss, full.loss)
    calls["n"] = 10**6  # a finished grid comes from the cache without evaluating anything
    torch.testing.assert_close(L.surface(model, (X, y), [d1, d2], coords, loss_fn=dying, cache=cache).loss, full.loss)


class _WB(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 5, generator=_gen(0)))
        self.b = nn.Parameter(torch.randn(4, generator=_gen(0)))


def test_pca_of_a_planar_trajectory_recovers_the_plane():
    g = _gen(1)
    model = _WB()
    e1, e2 = torch.linalg.qr(torch.randn(20, 2, generator=g))[0].T
    final = torch.cat([model.w.detach().flatten(), model.b.detach()])
    path = torch.stack([final + torch.cat([3 * torch.cos(t) * e1 + torch.sin(t) * e2, torch.randn(4, generator=g)])
                        for t in torch.linspace(0, 3, 12)])  # (12, 24): a curve in a plane; biases wander
    pca = L.pca_directions(model, path)
    assert pca.residual.max() < 1e-5
    assert abs(pca.explained_variance_ratio.sum().item() - 1) < 1e-5
    assert pca.explained_variance_ratio[0] > pca.explained_variance_ratio[1]
    basis = torch.stack([e1, e2])  # (2, 20)
    for k in range(2):
        assert pca.directions[k]["b"].abs().max() == 0  # biases ignored
        w = pca.directions[k]["w"].flatten()
        assert abs(w.norm().item() - 1) < 1e-5 and abs((basis @ w).norm().item() - 1) < 1e-5  # in the plane
    with pytest.raises(ValueError, match="trajectory must be"):
        L.pca_directions(model, path[:, :5])


def test_pca_of_the_training_loops_snapshots(tmp_path):
    """The trajectory of `train_cached(..., snapshots=True)` (named parameters at initialisation and
    after each epoch) gives the same PCA as its flat (T, P) form, and its first row is the seeded init."""
    from genlens.core.data import ImageData
    from genlens.core.nn import flat_parameters
    from genlens.core.train import TrainConfig, build_seeded
    from genlens.lenses.randomization import train_randomized

    g = _gen(0)
    images = ImageData("toy", torch.rand(64, 1, 4, 4, generator=g), torch.randint(0, 3, (64,), generator=g),
                       torch.rand(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g), ("a", "b", "c"))
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.1, seed=0)
    net, history, _ = train_randomized(images, "true", cfg, model="mlp", model_kwargs={"hidden": [8]},
                                       cache=Cache(tmp_path), snapshots=True)
    names = [n for n, _ in net.named_parameters()]
    flat = torch.stack([torch.cat([s[n].flatten() for n in names]) for s in history.snapshots])  # (4, P)
    assert flat.shape == (4, flat_parameters(net).numel())
    torch.testing.assert_close(flat[-1], flat_parameters(net))
    init = build_seeded(lambda: build_for("mlp", (1, 4, 4), 3, hidden=[8]), 0)
    torch.testing.assert_close(flat[0], flat_parameters(init))
    assert (flat[1:] - flat[:-1]).norm(dim=1).min() > 0  # every epoch moved
    from_snapshots, from_flat = L.pca_directions(net, history.snapshots), L.pca_directions(net, flat)
    torch.testing.assert_close(from_snapshots.coords, from_flat.coords)
    torch.testing.assert_close(from_snapshots.explained_variance_ratio, from_flat.explained_variance_ratio)
    with pytest.raises(ValueError, match="snapshots lack"):
        L.pca_directions(net, [{"other": torch.zeros(1)}] * 4)


def test_plane_nonconvexity_of_a_saddle_and_a_bowl():
    axes = (torch.linspace(-1, 1, 11), torch.linspace(-1, 1, 11))
    A, B = axes[0][:, None], axes[1][None, :]
    bowl = L.Surface(axes, A**2 + 3 * B**2, torch.zeros(11, 11))
    saddle = L.Surface(axes, A**2 - 0.25 * B**2, torch.zeros(11, 11))  # mu = 2 and -0.5: score 0.25
    assert L.plane_nonconvexity(bowl) == pytest.approx(0.0, abs=1e-6)
    assert L.plane_nonconvexity(saddle) == pytest.approx(0.25, rel=1e-4)
    with pytest.raises(ValueError, match="radius"):  # a grid away from the origin
        L.plane_nonconvexity(L.Surface((axes[0] + 5, axes[1]), saddle.loss, saddle.acc))


def test_bad_arguments_raise_one_line_errors():
    net = _mlp()
    with pytest.raises(ValueError, match="norm must be one of"):
        L.random_direction(net, norm="global")
    with pytest.raises(ValueError, match="ignore must be"):
        L.random_direction(net, ignore="bias")
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    d = L.random_direction(net)
    with pytest.raises(ValueError, match="one coordinate sequence per direction"):
        L.surface(net, (x, y), [d], [[0.0], [0.0]])
    with pytest.raises(ValueError, match=r"points must have shape \(P, 1\)"):
        L.evaluate_points(net, (x, y), [d], torch.zeros(3, 2))
    with pytest.raises(TypeError, match="data must be an"):
        L.evaluate_points(net, x, [d], [0.0])


@pytest.mark.parametrize("batchnorm", [True, False])
def test_loop_and_vmap_engines_match_a_plain_forward_pass(batchnorm):
    torch.manual_seed(0)
    net = SmallCNN(width=4, batchnorm=batchnorm).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 12, 12, generator=g), torch.randint(0, 10, (24,), generator=g)
    ignore = "biasbn" if batchnorm else "none"  # without BN the conv biases move too
    d1, d2 = (L.random_direction(net, generator=_gen(s), ignore=ignore) for s in (1, 2))
    pts = torch.tensor([[0.0, 0.0], [0.5, -0.25], [-1.0, 0.75]])
    loop = L.evaluate_points(net, (x, y), [d1, d2], pts, engine="loop", batch_size=10)
    vm = L.evaluate_points(net, (x, y), [d1, d2], pts, engine="vmap")
    torch.testing.assert_close(loop.loss, vm.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loop.acc, vm.acc)
    for (a, b), loss in zip(pts.tolist(), loop.loss):  # oracle: move a copy's weights and call it
        moved = SmallCNN(width=4, batchnorm=batchnorm).eval()
        moved.load_state_dict(net.state_dict())
        with torch.no_grad():
            for name, p in moved.named_parameters():
                p.add_(a * d1[name] + b * d2[name])
            torch.testing.assert_close(loss, F.cross_entropy(moved(x), y), rtol=1e-5, atol=1e-5)


def test_interpolation_is_undefined_exactly_where_a_running_variance_turns_negative():
    torch.manual_seed(0)
    a, b = SmallCNN(width=4).eval(), SmallCNN(width=4).eval()
    var_a, var_b = a.state_dict(), b.state_dict()
    name = next(k for k in var_a if k.endswith("running_var"))
    with torch.no_grad():
        dict(a.named_buffers())[name].fill_(4.0)
        dict(b.named_buffers())[name].fill_(1.0)  # (1 - t) 4 + t = 4 - 3t > 0  <=>  t < 4/3
    alphas = torch.tensor([-0.5, 0.0, 1.0, 1.3, 1.34, 1.5])
    ok = L.interpolation_defined(a, b, alphas)
    assert ok.tolist() == [True, True, True, True, False, False]
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 1, 12, 12, generator=g), torch.randint(0, 10, (8,), generator=g)
    loss = L.interpolate(a, b, (x, y), alphas).loss
    assert torch.isfinite(loss[ok]).all() and torch.isnan(loss[~ok]).all()  # the cause of the lost points


def test_loss_rise_and_end_rise_of_known_curves():
    ts = torch.linspace(-1, 1, 9)
    curves = torch.stack([ts**2, 3 * ts**2 + 1, ts.abs()])  # rises at 0.5: 0.25, 0.75, 0.5
    torch.testing.assert_close(L.loss_rise(curves, ts), torch.tensor([0.25, 0.75, 0.5], dtype=torch.float64))
    alphas = torch.linspace(-0.5, 1.5, 21)
    f = 2 * alphas**2 + 5 * (alphas - 1) ** 2  # f(0.2) - f(0) = 0.08 + 3.2 - 5; f(0.8) - f(1) = 1.28 + 0.2 - 2
    lo, hi = L.end_rise(f, alphas, step=0.2)
    assert abs(lo + 1.72) < 1e-5 and abs(hi + 0.52) < 1e-5
    with pytest.raises(ValueError, match="not a grid point"):
        L.loss_rise(curves, torch.linspace(-1, 1, 10))


def test_plane_nonconvexities_read_only_the_patch_of_the_full_grid():
    model, X, y = _quad_problem(D=6)
    grid = torch.linspace(-1, 1, 11)
    full = []
    for s in (3, 4):
        g = torch.Generator().manual_seed(s)
        plane = [L.random_direction(model, generator=g), L.random_direction(model, generator=g)]
        full.append(L.plane_nonconvexity(L.surface(model, (X, y), plane, [grid, grid], loss_fn=half_mse)))
    patch = L.plane_nonconvexities(model, (X, y), [3, 4], loss_fn=half_mse)
    assert patch == pytest.approx(full, abs=1e-6)


def test_random_plane_hessian_of_a_quadratic_is_its_constant_hessian():
    model, X, y = _quad_problem(D=6)
    ext, ab = L.random_plane_hessian(model, (X, y), 5, generator=_gen(2), steps=10, loss_fn=half_mse)
    ev = torch.linalg.eigvalsh(X.T @ X / len(X))
    torch.testing.assert_close(ext.lambda_max, ev[-1].expand(5), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ext.lambda_min, ev[0].expand(5), rtol=1e-4, atol=1e-5)
    assert ab.shape == (5, 2) and ab.abs().max() <= 1 and len(set(ab[:, 0].tolist())) == 5


def test_random_walk_explained_variance_against_numpy():
    import numpy as np

    assert L.random_walk_explained_variance(3, 50, n_walks=20, generator=_gen(0)) == pytest.approx(1.0)
    value = L.random_walk_explained_variance(9, 400, n_walks=300, generator=_gen(1))
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(300):
        path = np.vstack([np.zeros(400), np.cumsum(rng.standard_normal((8, 400)), 0)])
        c = path - path.mean(0)
        s2 = np.linalg.svd(c, compute_uv=False) ** 2
        shares.append(s2[:2].sum() / s2.sum())
    assert abs(value - np.mean(shares)) < 0.02 and 0.6 < value < 0.95


def test_pca_off_plane_share_is_zero_in_the_plane_and_the_rest_otherwise():
    model = _WB()
    g = _gen(3)
    final = torch.cat([model.w.detach().flatten(), model.b.detach()])
    e = torch.eye(24)
    path = torch.stack([final + t * e[0] + t**2 * e[1] + (0.1 * t**3) * e[2] for t in torch.linspace(1, 3, 6)])
    pca = L.pca_directions(model, path)
    M = (path - final)[:, :20].double()
    U, S, Vh = torch.linalg.svd(M - M.mean(0), full_matrices=False)
    P = Vh[:2]
    expected = ((M - M @ P.T @ P).pow(2).sum() / M.pow(2).sum()).item()
    assert pca.off_plane == pytest.approx(expected, rel=1e-6)
    assert 0 < pca.off_plane < 1
