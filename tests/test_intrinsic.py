import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from genlens.core.models import build_for
from genlens.core.nn import activations
from genlens.lenses import intrinsic as I


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _dense_twonn(x: np.ndarray, fraction: float = 0.9):
    """Oracle: the paper's rule written from its description, on a full float64 scipy distance matrix."""
    from scipy.spatial.distance import pdist, squareform

    dist = squareform(pdist(x.astype(np.float64)))
    np.fill_diagonal(dist, np.inf)
    two = np.sort(dist, axis=1)[:, :2]
    r1, r2 = two[:, 0], two[:, 1]
    drop = (r1 == 0) | (r1 == r2)
    mu = np.sort(r2[~drop] / r1[~drop])
    n = len(mu)
    xs = np.log(mu)[: n - 2][: int(np.floor(n * fraction))]
    ys = -np.log(1 - np.arange(1, n - 1) / n)[: len(xs)]
    return float(xs @ ys / (xs @ xs)), int((r1 == 0).sum()), int(((r1 == r2) & (r1 > 0)).sum())


def _rotate(points: torch.Tensor, dim: int, gen) -> torch.Tensor:
    """Embed (N, d) points isometrically in `dim` dimensions with a random rotation."""
    q, _ = torch.linalg.qr(torch.randn(dim, points.shape[1], generator=gen, dtype=torch.float64))  # (dim, d)
    return (points.double() @ q.T).float()


# Known manifolds. Tolerance: 10% of the true dimension, at N = 2000 points.
@pytest.mark.parametrize("d", [3, 8])
def test_linear_subspace_in_512d(d):
    g = _gen(d)
    x = _rotate(torch.randn(2000, d, generator=g), 512, g) + 5.0  # offset: distances are shift-invariant
    assert abs(I.twonn(x) - d) < 0.1 * d


def test_sphere():
    g = _gen(1)
    s = torch.randn(2000, 5, generator=g, dtype=torch.float64)
    s = s / s.norm(dim=1, keepdim=True)  # the 4-sphere in R^5
    assert abs(I.twonn(_rotate(s, 64, g)) - 4) < 0.4


def test_swiss_roll():
    g = _gen(2)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(2000, generator=g, dtype=torch.float64))
    h = 21 * torch.rand(2000, generator=g, dtype=torch.float64)
    roll = torch.stack([t * torch.cos(t), h, t * torch.sin(t)], 1)  # a 2-D sheet rolled up in R^3
    assert abs(I.twonn(_rotate(roll, 30, g)) - 2) < 0.2


def test_matches_scikit_dimension():
    skdim = pytest.importorskip("skdim")
    g = _gen(3)
    x = torch.randn(1500, 6, generator=g) @ torch.randn(6, 100, generator=g)
    ours = I.twonn(x)
    theirs = skdim.id.TwoNN(discard_fraction=0.1).fit(x.double().numpy()).dimension_
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_matches_dense_oracle_with_duplicates_and_ties():
    g = _gen(4)
    x = torch.randint(0, 6, (600, 4), generator=g).float()  # integer grid: many duplicates and ties
    x = torch.cat([x, torch.randn(600, 4, generator=g) * 3])
    ref, n_zero, n_tie = _dense_twonn(x.numpy())
    res = I.twonn_fit(x)
    assert (res.n_duplicates, res.n_ties) == (n_zero, n_tie)
    assert n_zero > 0 and n_tie > 0
    assert res.dimension == pytest.approx(ref, rel=1e-6)  # float32 vs float64 distances
    with pytest.warns(UserWarning, match=f"dropped {n_zero} duplicate points"):
        I.twonn(x)


def test_nearest_neighbors_against_dense_distances():
    g = _gen(5)
    x = torch.randn(1300, 40, generator=g) * 100 + 1000  # large offset: the matrix-product form cancels
    x[7] = x[11]  # one duplicate pair
    found = I.nearest_neighbors(x, 3)
    dist, idx = found.distances, found.indices
    dense = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    dense.fill_diagonal_(math.inf)
    ref = dense.topk(3, dim=1, largest=False)
    assert torch.allclose(dist.double(), ref.values, rtol=1e-5)
    assert dist[7, 0] == 0 and dist[11, 0] == 0 and idx[7, 0] == 11
    assert (idx != torch.arange(len(x))[:, None]).all()


def _brute_neighbors(x: torch.Tensor, k: int) -> torch.Tensor:
    """Oracle: every distance measured directly in float64, sorted; (N, k) nearest other-point distances."""
    dense = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    dense.fill_diagonal_(math.inf)
    return dense.sort(dim=1).values[:, :k]


@pytest.mark.parametrize("tile, diagonal_min, n, k", [
    (1024, 250, 3, 2),      # fewer points than a group: groups of one
    (1024, 250, 37, 1),     # one padded tile
    (64, 8, 300, 2),        # five blocks, the last padded; diagonal tiles split twice
    (64, 8, 257, 5),        # k + 1 = 6 groups of 16 entries
    (48, 8, 200, 9),        # k + 1 > groups per tile: groups of one
])
def test_tiled_search_matches_brute_force(monkeypatch, tile, diagonal_min, n, k):
    monkeypatch.setattr(I, "_TILE", tile)
    monkeypatch.setattr(I, "_DIAGONAL_MIN", diagonal_min)
    g = _gen(11)
    x = torch.randn(n, 7, generator=g) * 3 + 50  # offset: the matrix-product form cancels
    x[n // 2] = x[0]  # a duplicate pair, across blocks
    lattice = torch.randint(0, 3, (n // 3, 7), generator=g).float() + 50  # exact ties
    x[-len(lattice):] = lattice
    found = I.nearest_neighbors(x, k)
    ref = _brute_neighbors(x, k)
    assert torch.allclose(found.distances.double(), ref, rtol=1e-6, atol=0)
    direct = torch.linalg.vector_norm(x[:, None].double() - x[found.indices].double(), dim=2)  # (n, k)
    assert torch.allclose(direct, ref, rtol=1e-6, atol=0)  # the indices are neighbours at those distances
    assert (found.indices != torch.arange(n)[:, None]).all()
    assert found.distances[0, 0] == 0 and found.distances[n // 2, 0] == 0


def test_grouped_search_is_topk_rows_and_columns():
    g = _gen(12)
    tiles = torch.randint(0, 50, (3, 64, 64), generator=g).float()  # many equal entries
    vals, cols = I._rows_smallest(tiles, 4, 16)
    side = tiles.transpose(0, 1).reshape(64, 3 * 64)  # the tiles side by side
    assert torch.equal(vals, side.topk(4, dim=1, largest=False).values)
    assert torch.equal(side.gather(1, cols), vals)
    vals, rows = I._columns_smallest(tiles, 4, 16)
    assert torch.equal(vals, tiles.transpose(1, 2).topk(4, dim=2, largest=False).values)
    assert torch.equal(tiles.transpose(1, 2).gather(2, rows), vals)


def test_resampling_and_blocks():
    g = _gen(6)
    x = torch.randn(800, 4, generator=g) @ torch.randn(4, 20, generator=g)
    whole = I.twonn(x)
    res = I.twonn_resampled(x, n_resamples=5, subsample=1.0, generator=_gen(0))
    assert res.samples == pytest.approx([whole] * 5) and res.std == pytest.approx(0, abs=1e-12)
    a = I.twonn_resampled(x, n_resamples=4, generator=_gen(1))
    assert a == I.twonn_resampled(x, n_resamples=4, generator=_gen(1))  # same seed, same result
    assert abs(a.mean - 4) < 0.5 and a.std > 0
    blocks = I.block_analysis(x, [1, 2, 5], generator=_gen(2))
    assert blocks.n_points == (800, 400, 160)
    assert blocks.mean[0] == pytest.approx(whole) and blocks.std[0] == 0
    assert all(abs(m - 4) < 0.8 for m in blocks.mean)


def test_pca_against_sklearn():
    sk = pytest.importorskip("sklearn.decomposition")
    from sklearn.preprocessing import StandardScaler

    g = _gen(7)
    x = torch.randn(300, 3, generator=g) @ torch.randn(3, 50, generator=g) + 0.01 * torch.randn(300, 50, generator=g)
    x[:, 0] = 1.0  # a constant feature (a dead unit)
    for standardize in (True, False):
        z = x.double().numpy()
        z = StandardScaler().fit_transform(z) if standardize else z
        ref = sk.PCA().fit(z).explained_variance_ratio_
        ours = I.pca_spectrum(x, standardize=standardize).numpy()
        assert np.allclose(ours[: len(ref)], ref, atol=1e-6)
    assert I.pca_id(x, 0.9) == int(np.argmax(np.cumsum(ref) > 0.9)) + 1
    assert I.pca_id(x, 0.99) <= 3


def test_probe_layers_read_by_core_activations():
    torch.manual_seed(0)
    net = build_for("cnn", (1, 12, 12), 10, width=4)
    x = torch.rand(7, 1, 12, 12)
    reps = activations(net, x, I.probe_layers(net), batch_size=3)
    net.eval()
    with torch.no_grad():
        hidden = net.features(x)
        after_relu1 = net.features[:3](x)
        out = net(x)
    assert torch.allclose(reps["last hidden"], hidden) and torch.allclose(reps["output"], out)
    assert torch.allclose(reps["conv1"], after_relu1.flatten(1))  # not overwritten by in-place ops
    assert torch.equal(reps["input"], x.flatten(1))
    assert list(reps)[0] == "input" and list(reps)[-2] == "last hidden"


def test_probe_layers_mnist_cnn():
    torch.manual_seed(0)
    net = build_for("mnist_cnn", (1, 28, 28), 10).eval()
    x = torch.rand(5, 1, 28, 28)
    reps = activations(net, x, I.probe_layers(net))
    assert list(reps) == ["input", "conv1", "conv2", "last hidden", "output"]
    with torch.no_grad():
        h1 = torch.relu(torch.nn.functional.max_pool2d(net.features[0](x), 2))
        h3 = net.hidden(net.features(x))
    assert torch.allclose(reps["conv1"], h1.flatten(1)) and reps["conv2"].shape == (5, 1600)
    assert torch.allclose(reps["last hidden"], h3) and reps["last hidden"].shape == (5, 128)


def test_gaussian_like_has_the_spectrum_and_the_id_of_a_flat_cloud():
    # oracle: a 6-D Gaussian (variances 1..6) rotated into 40 dimensions is flat; its twin is the same law
    g = _gen(5)
    x = _rotate(torch.randn(2000, 6, generator=g, dtype=torch.float64) * torch.arange(1, 7).sqrt(), 40, g)
    twin = I.gaussian_like(x, standardize=False, generator=g)
    assert twin.shape == (2000, 40)
    assert torch.allclose(I.pca_spectrum(twin, standardize=False)[:6], I.pca_spectrum(x, standardize=False)[:6],
                          atol=0.02)
    assert abs(I.twonn(twin[:, :6].float()) - 6) < 0.6 and abs(I.twonn(twin.float()) - I.twonn(x)) < 0.6


def test_curvature_separates_a_curved_manifold_from_its_gaussian_twin():
    # a closed curve (1-D) winding through 20 dimensions: PCA needs many components, TwoNN sees 1,
    # and the Gaussian with the same spectrum has a far higher TwoNN ID
    g = _gen(6)
    t = 2 * math.pi * torch.rand(1000, generator=g, dtype=torch.float64)
    curve = torch.cat([torch.stack([torch.cos(k * t), torch.sin(k * t)], 1) for k in range(1, 11)], 1).float()
    c = I.curvature_resampled(curve, 5, generator=g)
    assert len(c.twonn) == len(c.pca_id) == len(c.gaussian) == 5
    assert all(abs(d - 1) < 0.2 for d in c.twonn)
    assert min(c.pca_id) >= 10 and min(c.gaussian) > 5 * max(c.twonn)


def test_percentile_interval_and_paired_ratios():
    m, (lo, hi) = I.percentile_interval(np.arange(1, 1002))
    assert m == 501 and lo == pytest.approx(26) and hi == pytest.approx(976)
    assert I.paired_ratios([4, 9], [2, 3]) == [2.0, 3.0]
    with pytest.raises(ValueError):
        I.paired_ratios([1.0], [0.0])


def test_pearson_bootstrap_matches_fisher_interval():
    # oracle: for bivariate normal data the Fisher z interval tanh(atanh(r) +- 1.96 / sqrt(n - 3))
    g = _gen(7)
    n = 400
    a = torch.randn(n, generator=g, dtype=torch.float64)
    b = 0.5 * a + math.sqrt(0.75) * torch.randn(n, generator=g, dtype=torch.float64)
    r, (lo, hi) = I.pearson_bootstrap(a, b, generator=_gen(0))
    assert r == pytest.approx(float(np.corrcoef(a, b)[0, 1]))
    z = math.atanh(r)
    assert lo == pytest.approx(math.tanh(z - 1.96 / math.sqrt(n - 3)), abs=0.03)
    assert hi == pytest.approx(math.tanh(z + 1.96 / math.sqrt(n - 3)), abs=0.03)
    r, (lo, hi) = I.pearson_bootstrap([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], generator=_gen(0))
    assert r == pytest.approx(1) and lo == pytest.approx(1) and hi == pytest.approx(1)


def test_probe_layers_mlp_and_resnet():
    mlp = build_for("mlp", (1, 8, 8), 10, hidden=[16, 8])
    assert I.probe_layers(mlp) == {"input": ":in", "fc1": "net.2", "fc2": "net.4", "output": "net.5"}
    res = I.probe_layers(build_for("resnet20", (3, 32, 32), 10))
    assert list(res)[-2:] == ["last hidden", "output"] and len(res) == 13
    with pytest.raises(ValueError, match="probe_layers"):
        I.probe_layers(nn.Linear(3, 3))


def test_errors():
    with pytest.raises(ValueError, match=r"x must have 2 dimensions, got shape \(10,\)"):
        I.twonn(torch.zeros(10))
    with pytest.raises(ValueError, match="discard_fraction"):
        I.twonn(torch.randn(50, 3), discard_fraction=1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        I.twonn(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="at least 4 points"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            I.twonn(torch.zeros(20, 3))
    with pytest.raises(ValueError, match="threshold"):
        I.pca_id(torch.randn(20, 3), 1.5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA"))])
def test_device_follows_input(device):
    g = _gen(8)
    x = (torch.randn(500, 3, generator=g) @ torch.randn(3, 30, generator=g)).to(device)
    found = I.nearest_neighbors(x)
    dist, idx = found.distances, found.indices
    assert dist.device.type == device and idx.device.type == device
    assert abs(I.twonn(x) - 3) < 0.4
