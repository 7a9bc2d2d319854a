"""genlens.lenses.corrections against a brute-force oracle (every activation region of a one-hidden-layer
network enumerated, one LP each, written here independently), a dense grid for a deeper network,
sampling, and closed forms."""
import dataclasses
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from genlens.core import data
from genlens.core.cache import Cache
from genlens.core.train import TrainConfig
from genlens.lenses import corrections as C


def _net(sizes, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers).eval()


def _target(net, x, box=3.0, mutable=None):
    """A label other than x's that some point of the box [-box, box] over the mutable features (the
    others kept at x) gets with a clear margin."""
    keep = torch.ones(len(x), dtype=torch.bool) if mutable is None else torch.as_tensor(mutable)
    pts = (torch.rand(500, len(x), generator=torch.Generator().manual_seed(9)) * 2 - 1) * box
    pts = torch.where(keep, pts, x)
    with torch.no_grad():
        logits = net(pts)
    top2 = logits.topk(2, dim=1).values
    gap = top2[:, 0] - top2[:, 1]
    other = logits.argmax(1) != net(x[None]).argmax()
    return int(logits.argmax(1)[other][gap[other].argmax()])


def _brute_force(net, x, t, mutable, weights, lo, hi, eps, margin):
    """min sum w|y - x| over every one of the 2^H activation patterns of a 1-hidden-layer net, with
    y = x + p - q (p, q >= 0) on the mutable features and the e-box kept inside the pattern's region
    and on the target's side with the margin."""
    W1, b1 = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    W2, b2 = net[2].weight.detach().double().numpy(), net[2].bias.detach().double().numpy()
    x, mut = x.double().numpy(), np.flatnonzero(mutable)
    m, best = len(mut), np.inf
    for bits in itertools.product([0.0, 1.0], repeat=W1.shape[0]):
        D = np.array(bits)
        sign = 2 * D - 1
        rows, rhs = [], []
        for j in range(W1.shape[0]):  # sign_j (W1_j y + b1_j) >= eps ||W1_j,mut||_1
            a = sign[j] * W1[j]
            rows.append(-a[mut])
            rhs.append(a @ x + sign[j] * b1[j] - eps * np.abs(a[mut]).sum())
        L = W2 * D  # logits = L (W1 y + b1) + b2
        for k in range(W2.shape[0]):
            if k != t:
                a = (L[t] - L[k]) @ W1
                const = (L[t] - L[k]) @ b1 + b2[t] - b2[k]
                rows.append(-a[mut])
                rhs.append(a @ x + const - margin - eps * np.abs(a[mut]).sum())
        R = np.array(rows)
        A_ub = np.concatenate([R, -R], axis=1)  # variables [p, q], delta = p - q
        bounds_rows = np.concatenate([np.eye(m), -np.eye(m)], axis=1)
        A_ub = np.concatenate([A_ub, bounds_rows, -bounds_rows])
        b_ub = np.concatenate([rhs, hi[mut] - x[mut], x[mut] - lo[mut]])
        res = linprog(np.concatenate([weights[mut], weights[mut]]), A_ub=A_ub, b_ub=b_ub, bounds=(0, None),
                      method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return best


@pytest.mark.parametrize("seed,eps,partial", [(0, 0.0, False), (1, 0.0, True), (2, 0.1, False), (4, 0.05, True)])
def test_minimum_equals_brute_force_over_all_regions(seed, eps, partial):
    d, H, K = 3, 6, 3
    net = _net([d, H, K], seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, generator=g)
    mutable = np.array([True, True, not partial])
    t = _target(net, x, mutable=mutable)
    weights = np.array([1.0, 2.0, 0.5])
    lo, hi = np.full(d, -6.0), np.full(d, 6.0)
    oracle = _brute_force(net, x, t, mutable, weights, lo, hi, eps, 0.05)
    got = C.correct(net, x, t, mutable=mutable, weights=weights, lower=lo, upper=hi, eps=eps, margin=0.05,
                    max_regions=200)
    assert np.isfinite(oracle) and got.exact and got.found
    assert got.cost == pytest.approx(oracle, rel=1e-6, abs=1e-8)
    assert got.regions < 2 ** H  # the best-first search stops before enumerating every pattern
    assert np.all(got.delta[~mutable] == 0)
    assert C.check_region(net, got)
    assert int(net(torch.tensor(got.corrected, dtype=torch.float32)[None]).argmax()) == t


def test_deeper_network_is_at_least_as_good_as_a_dense_grid():
    net = _net([2, 8, 8, 2], 6)
    x = torch.tensor([0.3, -0.4])
    t = _target(net, x)
    got = C.correct(net, x, t, lower=[-3, -3], upper=[3, 3], margin=0.05, max_regions=500)
    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 601), torch.linspace(-3, 3, 601), indexing="ij"), -1)
    pts = grid.reshape(-1, 2)
    with torch.no_grad():
        logits = net(pts)
    ok = logits[:, t] - logits[:, 1 - t] >= 0.05
    grid_min = (pts[ok] - x).abs().sum(1).min().item()
    axis = torch.linspace(-3, 3, 601)
    assert C.grid_correction(net, x, t, [axis, axis], margin=0.05)[0] == pytest.approx(grid_min, abs=1e-5)
    assert got.exact
    assert got.cost <= grid_min + 1e-6
    assert got.cost >= grid_min - 0.02  # the grid's spacing is 0.01 per feature


def test_activation_patterns_and_local_affine_reproduce_the_network():
    net = _net([5, 7, 6, 4], 0)
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    pat = C.activation_patterns(net, x)
    assert pat.shape == (20, 13) and pat.dtype == torch.bool
    A, c, G, g = C.local_affine(net, pat)
    logits = torch.einsum("pkd,pd->pk", A, x.double()) + c
    torch.testing.assert_close(logits, net(x).double(), atol=1e-5, rtol=1e-5)
    z = torch.einsum("phd,pd->ph", G, x.double()) + g
    assert torch.equal(z > 0, pat)


def test_stability_is_enforced_and_its_checks_can_fail():
    net = _net([2, 10, 2], 3)
    x = torch.tensor([0.5, 0.5])
    t = 1 - int(net(x[None]).argmax())
    stable = C.correct(net, x, t, eps=0.2, margin=0.01, lower=[-4, -4], upper=[4, 4])
    frac = C.stable_fraction(net, [stable], samples=2000, generator=torch.Generator().manual_seed(0))
    assert C.check_region(net, stable) and frac.item() == 1.0
    plain = C.correct(net, x, t, eps=0.0, margin=0.01, lower=[-4, -4], upper=[4, 4])
    assert plain.cost <= stable.cost + 1e-9  # stability can only cost more
    assert not C.check_region(net, dataclasses.replace(plain, eps=0.2))  # the minimal point sits on a boundary
    both = C.stable_fraction(net, [stable, dataclasses.replace(plain, eps=0.5), stable], samples=2000,
                             generator=torch.Generator().manual_seed(0))
    assert both.shape == (3,) and both[0].item() == 1.0 and both[2].item() == 1.0 and both[1].item() < 1.0
    # the oracle: the same boxes sampled point by point in float64
    g = torch.Generator().manual_seed(1)
    box = dataclasses.replace(plain, eps=0.5)
    pts = [box.corrected + 0.5 * (torch.rand(2, generator=g, dtype=torch.float64).numpy() * 2 - 1) for _ in range(2000)]
    hits = np.mean([int(net(torch.tensor(p, dtype=torch.float32)[None]).argmax()) == t for p in pts])
    assert abs(hits - both[1].item()) < 0.05
    assert C.stable_fraction(net, []).shape == (0,)


def test_symbolic_region_points_all_get_the_target_and_immutable_features_stay():
    net = _net([3, 12, 3], 7)
    x = torch.tensor([0.2, -0.1, 0.4])
    mutable = np.array([True, False, True])
    t = _target(net, x, mutable=mutable)
    corr = C.correct(net, x, t, mutable=mutable, lower=[-3] * 3, upper=[3] * 3, margin=0.05)
    region = C.symbolic_region(corr, ["a", "c"])
    pts = region.sample(3000, torch.Generator().manual_seed(1))
    full = np.repeat(corr.x[None], len(pts), 0)
    full[:, mutable] = pts
    with torch.no_grad():
        pred = net(torch.tensor(full, dtype=torch.float32)).argmax(1)
    assert (pred == t).all()
    assert region.contains(corr.corrected[mutable][None], tol=1e-6).all()
    box = np.stack(np.meshgrid(*[np.linspace(lo, hi, 7) for lo, hi in zip(region.box_lo, region.box_hi)]), -1).reshape(-1, 2)
    assert region.contains(box, tol=1e-7).all()
    assert "a" in region.box_text()
    assert np.all(corr.delta[~mutable] == 0)


def test_same_input_same_result_and_budget():
    net = _net([4, 16, 16, 3], 1)
    x = torch.randn(4, generator=torch.Generator().manual_seed(2))
    t = (int(net(x[None]).argmax()) + 1) % 3
    a, b = C.correct(net, x, t, max_regions=3), C.correct(net, x, t, max_regions=3)
    assert a.cost == b.cost and a.regions == b.regions <= 3
    assert np.array_equal(a.delta, b.delta) if a.found else not b.found


def test_salient_features_pick_the_largest_gradients():
    net = _net([6, 8, 3], 0)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    src, tgt = torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    mask = C.salient_features(net, x, src, tgt, 2)
    assert mask.shape == (4, 6) and (mask.sum(1) == 2).all()
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x[i])  # (K, d)
        gap = (jac[2] - jac[0]).abs()
        assert set(torch.topk(gap, 2).indices.tolist()) == set(torch.nonzero(mask[i]).flatten().tolist())


def test_fold_standardization():
    x = data.loan(500, seed=3).x_train
    net = _net([2, 5, 2], 0)
    mean, std = x.mean(0), x.std(0)
    folded = C.fold_standardization(net, mean, std)
    torch.testing.assert_close(folded(x), net((x - mean) / std), atol=1e-4, rtol=1e-4)


def test_fit_tabular_trains_on_standardized_features_and_is_cached(tmp_path):
    loans = data.loan(300, 100, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, seed=1)
    net, hist = C.fit_tabular(loans, (8,), cfg, cache=Cache(tmp_path))
    assert len(hist.test_acc) == 3 and isinstance(net, nn.Sequential)
    # the folded network on raw features is the trained one on standardized features
    from genlens.core.models import MLP
    from genlens.core.train import build_seeded, train

    mean, std = loans.x_train.mean(0), loans.x_train.std(0)
    ref = build_seeded(lambda: MLP(in_features=2, hidden=(8,), num_classes=2), 1)
    train(ref, loans.standardized(mean, std), cfg, progress=False)
    torch.testing.assert_close(net(loans.x_test), ref((loans.x_test - mean) / std), atol=1e-4, rtol=1e-4)
    again, hist2 = C.fit_tabular(loans, (8,), cfg, cache=Cache(tmp_path))
    assert hist2.seconds == hist.seconds  # loaded, not retrained
    assert len(list(tmp_path.glob("models/*.pt"))) == 1


def test_rejected_and_verified():
    net = _net([2, 6, 2], 0)
    xs = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    labels = net(xs).argmax(1).tolist()
    expected = [i for i, k in enumerate(labels) if k != 1][:5]
    assert torch.equal(C.rejected(net, xs, 1, 5), xs[expected])
    kw = dict(lower=[-5, -5], upper=[5, 5], margin=0.05)
    corrs = C.correct_many(net, C.rejected(net, xs, 1, 3), 1, **kw)
    assert all(c.found for c in corrs) and C.verified(net, corrs)
    # move one corrected point back to its input: the forward pass no longer gives the target
    assert not C.verified(net, [corrs[0], dataclasses.replace(corrs[1], delta=np.zeros(2))])


def test_bad_input_is_reported():
    net = _net([2, 4, 2], 0)
    x = torch.zeros(2)
    with pytest.raises(TypeError, match="only Flatten, Linear and ReLU"):
        C.relu_net(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="target must be an int"):
        C.correct(net, x, 2)
    with pytest.raises(ValueError, match="mutable must be a bool mask"):
        C.correct(net, x, 0, mutable=[False, False])
    with pytest.raises(ValueError, match="x must have 2 features"):
        C.correct(net, torch.zeros(3), 0)
    with pytest.raises(ValueError, match="eps and margin must be >= 0"):
        C.correct(net, x, 0, eps=-1.0)
    with pytest.raises(ValueError, match="weights must be a scalar or have shape"):
        C.correct(net, x, 0, weights=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        C.correct(net, [0.0, 0.0], 0)
    with pytest.raises(ValueError, match="corr holds no correction"):
        C.symbolic_region(dataclasses.replace(C.correct(net, x, 0), delta=None, halfspaces=None), ["a", "b"])
    with pytest.raises(ValueError, match="xs must have 2 dimensions"):
        C.correct_many(net, torch.zeros(3), 0)


def test_correct_many_matches_one_by_one_and_in_processes():
    net = _net([2, 6, 2], 0)
    xs = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    targets = 1 - net(xs).argmax(1)
    kw = dict(lower=[-5, -5], upper=[5, 5], margin=0.05)
    one = [C.correct(net, x, int(t), **kw) for x, t in zip(xs, targets)]
    with C.process_pool(2) as pool:  # one pool, reused by both calls
        many = C.correct_many(net, xs, targets, workers=pool, **kw)
        again = C.correct_many(net, xs[:2], targets[:2], workers=pool, **kw)
    assert [c.cost for c in many] == [c.cost for c in one]
    assert [c.cost for c in again] == [c.cost for c in one[:2]]


def test_chapter_settings_limit():
    from genlens.book.settings_corrections import PROFILES

    quick = PROFILES["quick"]
    assert quick.limited(0) is quick and quick.processes == 1
    small = quick.limited(2)
    assert (small.applicants, small.digits, small.loan_epochs, small.grid) == (2, 2, 2, (121, 101))
    assert small.widths == quick.widths and PROFILES["full"].processes >= 1


# ----------------------------------------------------------------------------- search options

def test_active_neighbours_give_a_valid_but_unproven_correction():
    net = _net([3, 8, 8, 3], 3)
    x = torch.tensor([0.3, -0.2, 0.1])
    t = _target(net, x)
    kw = dict(lower=[-3] * 3, upper=[3] * 3, margin=0.05, max_regions=3000)
    exact = C.correct(net, x, t, neighbours="facets", **kw)
    local = C.correct(net, x, t, neighbours="active", **kw)
    assert exact.found and local.found and not local.exact
    assert C.verified(net, [local]) and local.cost >= exact.cost - 1e-7


def test_start_points_seed_the_search_without_changing_a_proven_minimum():
    net, x, t = _two_labels([2, 16, 16, 2], 5)
    kw = dict(lower=[-3, -3], upper=[3, 3], margin=0.05, max_regions=2000)
    starts = (torch.rand(300, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1) * 3
    seeded, unseeded = C.correct(net, x, t, start=starts, **kw), C.correct(net, x, t, **kw)
    assert seeded.exact and unseeded.exact
    assert seeded.cost == pytest.approx(unseeded.cost, abs=1e-7)
    tiny = C.correct(net, x, t, start=starts, **{**kw, "max_regions": 1})  # the budget: one seed's region
    assert tiny.regions <= 1 and seeded.regions <= unseeded.regions + 3
    with pytest.raises(ValueError, match="start"):
        C.correct(net, x, t, start=starts[:, :1], **kw)


# ----------------------------------------------------------------------------- Polaris's construction

def _two_labels(sizes, seed):
    """A network with sizes[0] inputs, an input x and a target label that some point of [-2, 2]^d gets."""
    for s in range(seed, seed + 50):
        net = _net(sizes, s)
        pts = (torch.rand(2000, sizes[0], generator=torch.Generator().manual_seed(s)) * 2 - 1) * 2
        with torch.no_grad():
            labels = net(pts).argmax(1)
        x = pts[0]
        other = labels[labels != labels[0]]
        if len(other) > 100:
            return net, x, int(other.mode().values)
    raise AssertionError("no network with two labels in the box")


def _grid_oracle(net, t, margin, n=401, box=3.0):
    """A dense grid (n^2, 2) over [-box, box]^2 and which points the network gives t with the margin."""
    axis = torch.linspace(-box, box, n, dtype=torch.float64)
    pts = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        logits = net(pts.float()).double()
    others = torch.cat([logits[:, :t], logits[:, t + 1:]], 1).max(1).values
    return pts.numpy(), (logits[:, t] - others >= margin - 1e-4).numpy()


@pytest.mark.parametrize("seed,sizes", [(0, [2, 12, 12, 2]), (1, [2, 10, 10, 10, 3])])
def test_polaris_against_a_dense_grid_of_the_networks_decision(seed, sizes):
    from genlens.lenses import corrections_polaris as P

    net, x, t = _two_labels(sizes, seed)
    kw = dict(lower=[-3, -3], upper=[3, 3])
    corr = C.correct(net, x, t, margin=0.05, max_regions=500, **kw)
    assert corr.found
    pc = P.polaris(net, corr, ("a", "b"), 0.05, max_regions=100, **kw)
    pts, ok = _grid_oracle(net, t, 0.05)
    # every grid point of every piece, and of the triangle, gets the target (with the margin)
    for v in pc.pieces:
        inside = np.ones(len(pts), bool)
        for a, b in zip(v, np.roll(v, -1, axis=0)):  # counter-clockwise: left of every edge
            inside &= (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]) > 1e-9
        assert ok[inside].all()
    in_tri = pc.in_triangle(pts, tol=-1e-9)
    assert in_tri.sum() > 0 and ok[in_tri].all()
    # the pieces do not overlap: their areas add up to the grid's count of points in the union
    union = np.zeros(len(pts), bool)
    for v in pc.pieces:
        inside = np.ones(len(pts), bool)
        for a, b in zip(v, np.roll(v, -1, axis=0)):
            inside &= (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]) >= 0
        union |= inside
    cell = (6 / 400) ** 2
    assert pc.union_area == pytest.approx(union.sum() * cell, rel=0.05, abs=50 * cell)
    assert in_tri.sum() <= union[in_tri].sum()  # the triangle lies in the union
    assert 1 <= len(pc.pieces) <= 100 and pc.triangle_area >= P.polygon_area(pc.pieces[0]) * (1 - 1e-9)
    if pc.found:  # the box lies in the triangle, is approved, and no grid centre whose box fits is nearer
        corners = pc.centre + pc.radius * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])
        assert pc.in_triangle(corners, tol=1e-7).all()
        in_box = (np.abs(pts - pc.centre) <= pc.radius).all(1)
        assert ok[in_box].all()
        fits = np.ones(len(pts), bool)
        for s in np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]):
            fits &= pc.in_triangle(pts + s * pc.radius, tol=0)
        grid_best = np.abs(pts[fits] - corr.x).sum(1).min()
        assert pc.distance <= grid_best + 1e-9
        assert pc.distance >= corr.cost - 1e-7  # an approved point: never nearer than the minimal correction


def test_nearest_box_matches_brute_force_over_centres():
    from genlens.lenses import corrections_polaris as P

    tri = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 3.0]])
    A, b = P._tri_halfspaces(tri)
    x, w, r = np.array([3.5, 3.0]), np.array([1.0, 2.0]), np.array([0.3, 0.2])
    d, c = P.nearest_box(A, b, x, w, r, np.full(2, -9.0), np.full(2, 9.0))
    g = np.stack(np.meshgrid(np.linspace(0, 4, 801), np.linspace(0, 3, 601)), -1).reshape(-1, 2)
    fits = np.ones(len(g), bool)
    for s in np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]):
        fits &= ((g + s * r) @ A.T <= b + 1e-12).all(1)
    brute = (np.abs(g[fits] - x) @ w).min()
    assert d <= brute + 1e-9 and d >= brute - 0.01
    assert P.nearest_box(A, b, x, w, np.array([3.0, 3.0]), np.full(2, -9.0), np.full(2, 9.0)) is None


def test_best_pair_keeps_the_nearest_pair_and_polaris_rejects_bad_input():
    from genlens.lenses import corrections_polaris as P

    net, x, t = _two_labels([3, 10, 10, 2], 4)
    kw = dict(lower=[-3] * 3, upper=[3] * 3, margin=0.05)
    pair, pc, dists = P.best_pair(net, x, t, ["a", "b", "c"], 0.05, **kw)
    assert set(dists) == {(0, 1), (0, 2), (1, 2)}
    if pair is not None:
        assert pc.distance == min(dists.values()) and pc.features == tuple("abc"[i] for i in pair)
    corr = C.correct(net, x, t, **kw)
    with pytest.raises(ValueError, match="exactly 2"):
        P.polaris(net, corr, ("a", "b"), 0.1, lower=kw["lower"], upper=kw["upper"])
    two = C.correct(net, x, t, mutable=[True, True, False], **kw)
    if not two.found:
        return
    with pytest.raises(ValueError, match="finite"):
        P.polaris(net, two, ("a", "b"), 0.1)
    with pytest.raises(ValueError, match="radius"):
        P.polaris(net, two, ("a", "b"), -1.0, lower=kw["lower"], upper=kw["upper"])


# ----------------------------------------------------------------------------- categorical features (milp)

def test_categorical_correction_matches_a_grid_and_subset_enumeration():
    from genlens.lenses import corrections_categorical as K

    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    cats, num, lo, hi, margin = [0, 1, 2, 3], 4, -3.0, 3.0, 0.05
    x = torch.tensor([0.0, 1.0, 0.0, 0.0, -2.5])
    ts = torch.linspace(lo, hi, 6001, dtype=torch.float64)
    for t in (0, 1):
        res = K.categorical_correction(net, x, t, cats, num, radius=0.2, min_categories=2, w_cat=1.0, w_num=0.5,
                                       lower=lo, upper=hi, margin=margin)
        for k, iv in enumerate(res.intervals):  # the interval is approved, and its ends are the grid's
            pts = x.double().repeat(len(ts), 1)
            pts[:, cats] = 0.0
            pts[:, cats[k]] = 1.0
            pts[:, num] = ts
            with torch.no_grad():
                logit = net(pts.float()).double()
            ok = (logit[:, t] - logit[:, 1 - t] >= margin).numpy()
            if iv is None:
                continue
            inside = (ts.numpy() >= iv[0] + 1e-6) & (ts.numpy() <= iv[1] - 1e-6)
            assert ok[inside].all()
            step = (hi - lo) / 6000
            for end, out in ((iv[0], iv[0] - 2 * step), (iv[1], iv[1] + 2 * step)):
                if lo + 2 * step < end < hi - 2 * step:
                    assert not ok[np.argmin(np.abs(ts.numpy() - out))]
        # brute force over every set of categories
        best = np.inf
        for size in range(2, 5):
            for S in itertools.combinations(range(4), size):
                ivs = [res.intervals[k] for k in S]
                if any(iv is None for iv in ivs):
                    continue
                a, b = max(iv[0] + 0.2 for iv in ivs), min(iv[1] - 0.2 for iv in ivs)
                if a > b:
                    continue
                y = min(max(-2.5, a), b)
                best = min(best, 1.0 * (1 not in S) + 0.5 * abs(y + 2.5))
        assert res.distance == pytest.approx(best, abs=1e-6)
        if res.found:
            assert res.chosen.sum() >= 2
            for k in np.flatnonzero(res.chosen):
                assert res.intervals[k][0] + 0.2 - 1e-6 <= res.centre <= res.intervals[k][1] - 0.2 + 1e-6
    with pytest.raises(ValueError, match="categories"):
        K.categorical_correction(net, x, 1, [0, 4], 4, radius=0.1, lower=lo, upper=hi)
