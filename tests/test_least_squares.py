import pytest
import torch

from genlens.lenses.least_squares import max_step, min_norm_solution, random_fourier_features, row_space_residual, sgd_least_squares


def _problem(n=30, d=120, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, k, generator=g, dtype=torch.float64), g


def test_min_norm_solution_interpolates_and_is_minimal():
    X, Y, g = _problem()
    w = min_norm_solution(X, Y)
    assert torch.allclose(X @ w, Y, atol=1e-8)
    null = torch.linalg.svd(X).Vh[X.shape[0]:].T  # (d, d - n) null space of X
    other = w + null @ torch.randn(null.shape[1], Y.shape[1], generator=g, dtype=torch.float64)
    assert torch.allclose(X @ other, Y, atol=1e-8)
    assert other.norm() > w.norm()


def test_sgd_from_zero_reaches_the_min_norm_solution():
    X, Y, g = _problem()
    w, losses = sgd_least_squares(X, Y, epochs=400, batch_size=5, lr=0.5 / max_step(X), generator=g)
    assert losses[-1] < 1e-10 and losses[-1] < losses[0]
    assert row_space_residual(X, w) < 1e-10  # never leaves the row space of X
    assert torch.allclose(w, min_norm_solution(X, Y), atol=1e-6)


def test_row_space_residual_detects_components_outside():
    X, _, g = _problem()
    assert row_space_residual(X, X.T @ torch.randn(30, 1, generator=g, dtype=torch.float64)) < 1e-12
    assert row_space_residual(X, torch.randn(120, 1, generator=g, dtype=torch.float64)) > 0.5


def test_random_fourier_features_shape_and_seed():
    x = torch.rand(10, 1, 4, 4)
    a = random_fourier_features(x, 32, 1.0, generator=torch.Generator().manual_seed(0))
    b = random_fourier_features(x, 32, 1.0, generator=torch.Generator().manual_seed(0))
    assert a.shape == (10, 32) and torch.equal(a, b)


def test_random_fourier_features_approximate_the_gaussian_kernel():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    phi = random_fourier_features(x, 200_000, 2.0, generator=g)
    kernel = torch.exp(-torch.cdist(x, x) ** 2 / (2 * 2.0**2))
    assert torch.allclose(phi @ phi.T, kernel, atol=0.02)


def test_errors_name_the_argument():
    X, Y, _ = _problem()
    with pytest.raises(ValueError, match="X has 30 rows but Y has 29"):
        min_norm_solution(X, Y[:29])
    with pytest.raises(ValueError, match=r"Y \(N, K\) must have 2 dimensions, got shape \(30,\)"):
        sgd_least_squares(X, Y[:, 0], epochs=1, batch_size=5, lr=0.1)
    with pytest.raises(TypeError, match="x must be floating point"):
        random_fourier_features(torch.zeros(3, 4, dtype=torch.long), 8, 1.0)


def test_median_distance_matches_scipy():
    from scipy.spatial.distance import pdist
    import numpy as np

    from genlens.lenses.least_squares import median_distance

    x = torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert median_distance(x) == pytest.approx(float(np.median(pdist(x.reshape(40, -1).numpy()))), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 rows"):
        median_distance(x[:1])


def test_gabor_features_match_scipy_correlation():
    import numpy as np
    from scipy.signal import correlate2d

    from genlens.lenses.least_squares import gabor_bank, gabor_features

    bank = gabor_bank(5, (4.0,), 2)
    assert bank.shape == (4, 1, 5, 5)
    # an entry of the filter, typed from the formula: lam 4, theta pi/2 (u' = v), odd filter, row +1, column -2
    sigma = 0.5 * 4.0
    assert bank[3, 0, 3, 0].item() == pytest.approx(np.exp(-(4 + 1) / (2 * sigma**2)) * np.sin(2 * np.pi * 1 / 4.0))
    assert abs(bank[0].sum().item()) < 1e-12  # even filters have zero mean
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = gabor_features(x, bank, pool=2)
    assert out.shape == (3, 2 * 4 * 4)
    for n in range(3):
        img = x[n, 0].numpy()
        for p in range(2):
            even = correlate2d(img, bank[p, 0].numpy(), mode="same")
            odd = correlate2d(img, bank[p + 2, 0].numpy(), mode="same")
            energy = np.sqrt(even**2 + odd**2).reshape(4, 2, 4, 2).mean(axis=(1, 3))
            np.testing.assert_allclose(out[n].reshape(2, 4, 4)[p].numpy(), energy, rtol=1e-10, atol=1e-12)


def test_gabor_energy_prefers_the_matching_orientation():
    from genlens.lenses.least_squares import gabor_bank, gabor_features

    bank = gabor_bank(9, (4.0,), 4)
    r = torch.arange(16, dtype=torch.float64)
    v, u = torch.meshgrid(r, r, indexing="ij")
    vertical_stripes = torch.cos(2 * torch.pi * u / 4.0)[None, None]  # varies along u: theta = 0
    energy = gabor_features(vertical_stripes, bank, pool=16)[0]
    assert energy.argmax().item() == 0
    with pytest.raises(ValueError, match="positive odd"):
        gabor_bank(4, (4.0,), 2)
    with pytest.raises(ValueError, match="1 channel"):
        gabor_features(torch.zeros(1, 3, 8, 8), bank, pool=2)
