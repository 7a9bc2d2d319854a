import pytest
import torch

from genlens.lenses.expressivity import fit_interpolant


def test_interpolant_fits_random_labels_exactly_with_2n_plus_d_weights():
    g = torch.Generator().manual_seed(0)
    n, d = 300, 50
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, 10, (n,), generator=g).double()
    net = fit_interpolant(x, y, generator=g)
    assert sum(p.numel() for p in net.parameters()) == 2 * n + d
    out = net(x)[:, 0]
    assert torch.allclose(out, y, atol=1e-6)
    assert torch.equal(out.round(), y)


def test_interpolant_vector_targets_and_images():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 5, 5, generator=g)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (64,), generator=g), 3).double()
    net = fit_interpolant(x, y, generator=g)
    assert torch.allclose(net(x), y, atol=1e-6)


def test_interpolant_rejects_duplicate_points():
    x = torch.ones(4, 3)
    with pytest.raises(ValueError, match="duplicate"):
        fit_interpolant(x, torch.arange(4.0), generator=torch.Generator().manual_seed(0))


def test_interpolant_is_seeded_and_checks_its_inputs():
    x = torch.rand(20, 3, generator=torch.Generator().manual_seed(2))
    y = torch.arange(20.0)
    a = fit_interpolant(x, y, generator=torch.Generator().manual_seed(3))
    b = fit_interpolant(x, y, generator=torch.Generator().manual_seed(3))
    c = fit_interpolant(x, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.a, b.a) and not torch.equal(a.a, c.a)
    with pytest.raises(ValueError, match="y: 19 targets for 20 points"):
        fit_interpolant(x, y[:19])
    with pytest.raises(ValueError, match=r"y must have 1 or 2 dimensions, got shape \(20, 1, 1\)"):
        fit_interpolant(x, y.view(20, 1, 1))
