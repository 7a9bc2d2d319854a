"""Tests of genlens.lenses.landscape against closed forms and exact invariances."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses import landscape as L
from genlens.core.cache import Cache
from genlens.core.models import SmallCNN


class Quadratic(nn.Module):
    """out = x @ w (a 2-D weight of shape (D, 1)): with a squared loss the landscape is a quadratic."""

    def __init__(self, D: int, seed: int = 0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(D, 1, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        return x @ self.w


def half_mse(out, y):
    return 0.5 * ((out[:, 0] - y) ** 2).mean()


def _quad_problem(D=5, N=40):
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(N, D, generator=g), torch.randn(N, generator=g)
    return Quadratic(D), X, y


def test_filter_normalized_direction_has_the_weights_filter_norms():
    torch.manual_seed(0)
    net = SmallCNN(width=4).eval()
    d = L.random_direction(net, norm="filter", ignore="biasbn", seed=3)
    for name, w in net.named_parameters():
        if w.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name  # biases and BN entries are zeroed
        else:
            torch.testing.assert_close(d[name].flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1))
    kept = L.random_direction(net, ignore="none", seed=3)
    torch.testing.assert_close(kept["fc.bias"], net.fc.bias.detach())  # ignore="none": 1-D entries copy w
    assert L.random_direction(net, seed=3)["fc.weight"].equal(d["fc.weight"])  # same seed, same direction


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
            d = L.random_direction(m, norm=norm, seed=5)
            surf[norm, tag] = L.surface(m, F.cross_entropy, (x, y), [d], coords).loss
    torch.testing.assert_close(surf["filter", "orig"], surf["filter", "scaled"], rtol=1e-5, atol=1e-5)
    assert (surf["none", "orig"] - surf["none", "scaled"]).abs().max() > 0.1


@pytest.mark.parametrize("engine", ["vmap", "loop"])
def test_quadratic_gives_the_analytic_surface(engine):
    model, X, y = _quad_problem()
    d1 = L.random_direction(model, norm="none", seed=1)
    d2 = L.random_direction(model, norm="none", seed=2)
    xs, ys = torch.linspace(-1, 1, 5), torch.linspace(-0.5, 1.5, 4)
    surf = L.surface(model, half_mse, (X, y), [d1, d2], [xs, ys], points_per_pass=3, batch_size=16, engine=engine)
    w, u, v = model.w.detach()[:, 0], d1["w"][:, 0], d2["w"][:, 0]
    A, B = xs[:, None, None], ys[None, :, None]
    r = (w + A * u + B * v) @ X.T - y  # (5, 4, N) residuals
    torch.testing.assert_close(surf.loss, 0.5 * (r**2).mean(-1), rtol=1e-5, atol=1e-6)
    assert surf.loss.shape == (5, 4)
    lo, hi = L.plane_curvature(surf)  # exact for a quadratic: eigenvalues of [[u'Hu, u'Hv], [v'Hu, v'Hv]]
    H = X.T @ X / len(X)
    P = torch.stack([u, v], 1)
    ev = torch.linalg.eigvalsh(P.T @ H @ P)
    torch.testing.assert_close(lo, torch.full_like(lo, ev[0].item()), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(hi, torch.full_like(hi, ev[1].item()), rtol=1e-3, atol=1e-3)


def test_hessian_extremes_match_dense_eigenvalues():
    model, X, y = _quad_problem(D=6)
    d = L.random_direction(model, norm="none", seed=1)
    lo, hi = L.hessian_extremes(model, half_mse, (X, y), [d], torch.tensor([[0.0], [1.0]]), steps=10)
    ev = torch.linalg.eigvalsh(X.T @ X / len(X))  # the Hessian of a quadratic is the same everywhere
    torch.testing.assert_close(lo, ev[0].expand(2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(hi, ev[-1].expand(2), rtol=1e-4, atol=1e-5)


def test_hessian_extremes_on_a_relu_net_match_the_dense_hessian():
    net = _mlp()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    params = L.weights(net)
    flat = torch.cat([p.flatten() for p in params.values()])

    def loss_of(theta):
        chunks = theta.split([p.numel() for p in params.values()])
        p = {n: c.view(t.shape) for (n, t), c in zip(params.items(), chunks)}
        return F.cross_entropy(torch.func.functional_call(net, p, (x,)), y)

    ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    lo, hi = L.hessian_extremes(net, F.cross_entropy, (x, y), [L.random_direction(net)], [[0.0]], steps=len(flat))
    torch.testing.assert_close(hi, ev[-1:], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(lo, ev[:1], rtol=1e-3, atol=1e-4)


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
    surf = L.interpolate(nets[0], nets[1], F.cross_entropy, (x, y), [0.0, 0.5, 1.0])
    assert nets[0].training is True
    for i, net in zip((0, 2), nets):
        with torch.no_grad():
            torch.testing.assert_close(surf.loss[i], F.cross_entropy(net.eval()(x), y), rtol=1e-5, atol=1e-5)


def test_a_killed_grid_resumes_from_its_cached_points(tmp_path):
    model, X, y = _quad_problem()
    d1, d2 = (L.random_direction(model, norm="none", seed=s) for s in (1, 2))
    coords = [torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 3)]
    full = L.surface(model, half_mse, (X, y), [d1, d2], coords)
    calls = {"n": 0}

    def dying(out, target):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("killed")
        return half_mse(out, target)

    dying.__qualname__ = "half_mse"  # the cache key names the loss; make the resumed run find it
    cache = Cache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        L.surface(model, dying, (X, y), [d1, d2], coords, points_per_pass=2, engine="loop", cache=cache)
    calls["n"] = -100
    resumed = L.surface(model, dying, (X, y), [d1, d2], coords, points_per_pass=2, engine="loop", cache=cache)
    assert calls["n"] == -100 + 12 - 4  # two passes of two points were finished before the kill
    torch.testing.assert_close(resumed.loss, full.loss)
    calls["n"] = 10**6  # a finished grid comes from the cache without evaluating anything
    torch.testing.assert_close(L.surface(model, dying, (X, y), [d1, d2], coords, cache=cache).loss, full.loss)


def test_pca_of_a_planar_trajectory_recovers_the_plane():
    g = torch.Generator().manual_seed(0)
    final = {"w": torch.randn(4, 5, generator=g), "b": torch.randn(4, generator=g)}
    e1, e2 = torch.linalg.qr(torch.randn(20, 2, generator=g))[0].T
    path = [{"w": final["w"] + (3 * torch.cos(t) * e1 + torch.sin(t) * e2).view(4, 5), "b": torch.randn(4, generator=g)}
            for t in torch.linspace(0, 3, 12)]
    pca = L.pca_directions(path, final)
    assert pca.residual.max() < 1e-5
    assert abs(pca.explained_variance_ratio.sum().item() - 1) < 1e-5
    assert pca.explained_variance_ratio[0] > pca.explained_variance_ratio[1]
    for k in range(2):
        assert pca.directions[k]["b"].abs().max() == 0  # biases ignored
        norm = torch.cat([t.flatten() for t in pca.directions[k].values()]).norm()
        assert abs(norm.item() - 1) < 1e-5


def test_bad_arguments_raise_one_line_errors():
    net = _mlp()
    with pytest.raises(ValueError, match="norm must be one of"):
        L.random_direction(net, norm="global")
    with pytest.raises(ValueError, match="ignore must be"):
        L.random_direction(net, ignore="bias")
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    d = L.random_direction(net)
    with pytest.raises(ValueError, match="one coordinate sequence per direction"):
        L.surface(net, F.cross_entropy, (x, y), [d], [[0.0], [0.0]])
    with pytest.raises(ValueError, match=r"points must have shape \(P, 1\)"):
        L.evaluate_points(net, F.cross_entropy, (x, y), [d], torch.zeros(3, 2))
    with pytest.raises(TypeError, match="data must be an"):
        L.evaluate_points(net, F.cross_entropy, x, [d], [0.0])


@pytest.mark.parametrize("batchnorm", [True, False])
def test_loop_engine_input_layer_shortcut_matches_vmap_and_plain_forward(batchnorm, monkeypatch):
    """The loop engine evaluates the input conv by linearity; it must agree with vmap and with net(x)."""
    layer_calls = []
    real_layer_out = L._layer_out
    monkeypatch.setattr(L, "_layer_out", lambda *a: layer_calls.append(1) or real_layer_out(*a))
    torch.manual_seed(0)
    net = SmallCNN(width=4, batchnorm=batchnorm).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 12, 12, generator=g), torch.randint(0, 10, (24,), generator=g)
    ignore = "biasbn" if batchnorm else "none"  # without BN the conv biases move too
    d1, d2 = (L.random_direction(net, seed=s, ignore=ignore) for s in (1, 2))
    pts = torch.tensor([[0.0, 0.0], [0.5, -0.25], [-1.0, 0.75]])
    loop = L.evaluate_points(net, F.cross_entropy, (x, y), [d1, d2], pts, engine="loop", batch_size=10)
    assert layer_calls, "the loop engine did not take the input-layer shortcut"
    vm = L.evaluate_points(net, F.cross_entropy, (x, y), [d1, d2], pts, engine="vmap")
    torch.testing.assert_close(loop[0], vm[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loop[1], vm[1])
    for (a, b), loss in zip(pts.tolist(), loop[0]):  # oracle: move a copy's weights and call it
        moved = SmallCNN(width=4, batchnorm=batchnorm).eval()
        moved.load_state_dict(net.state_dict())
        with torch.no_grad():
            for name, p in moved.named_parameters():
                p.add_(a * d1[name] + b * d2[name])
            torch.testing.assert_close(loss, F.cross_entropy(moved(x), y), rtol=1e-5, atol=1e-5)
    assert "forward" not in vars(net.features[0])  # the temporary patch of the input layer is gone
