import pytest
import torch

from genlens.lenses.expressivity import fit_interpolant


def test_interpolant_fits_random_labels_exactly_with_2n_plus_d_weights():
    g = torch.Generator().manual_seed(0)
    n, d = 300, 50
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, 10, (n,), generator=g).double()
    net = fit_interpolant(x, y, g)
    assert sum(p.numel() for p in net.parameters()) == 2 * n + d
    out = net(x)[:, 0]
    assert torch.allclose(out, y, atol=1e-6)
    assert torch.equal(out.round(), y)


def test_interpolant_vector_targets_and_images():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 5, 5, generator=g)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (64,), generator=g), 3).double()
    net = fit_interpolant(x, y, g)
    assert torch.allclose(net(x), y, atol=1e-6)


def test_interpolant_rejects_duplicate_points():
    x = torch.ones(4, 3)
    with pytest.raises(ValueError, match="duplicate"):
        fit_interpolant(x, torch.arange(4.0), torch.Generator().manual_seed(0))
