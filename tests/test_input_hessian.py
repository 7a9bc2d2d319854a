"""genlens.lenses.input_hessian against a dense input Hessian (torch.autograd.functional.hessian + eigh) and the
closed form J^T (diag(p) - p p^T) J of a ReLU network with softmax cross-entropy."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses.input_hessian import input_curvature, input_hvp


def _net(act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 4)).double()


def _data(n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 3, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


def _dense(model, x, y):
    """Oracle: the dense Hessian (d, d) of each example's loss in its input, one example at a time."""
    return torch.stack([torch.autograd.functional.hessian(
        lambda u: F.cross_entropy(model(u.view(1, *x.shape[1:])), y[i : i + 1]), x[i].reshape(-1)) for i in range(len(x))])


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_input_hvp_matches_the_dense_input_hessian(act):
    model, (x, y) = _net(act), _data()
    Hd = _dense(model, x, y)  # (n, d, d)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = input_hvp(model, x, y, v)
    assert torch.allclose(out.reshape(len(x), -1), torch.einsum("nij,nj->ni", Hd, v.reshape(len(x), -1)), atol=1e-10)


def test_relu_input_hessian_is_the_psd_gauss_newton_form():
    model, (x, y) = _net(), _data()
    Hd = _dense(model, x, y)
    J = torch.stack([torch.autograd.functional.jacobian(lambda u: model(u.view(1, 1, 3, 4))[0], x[i].reshape(-1))
                     for i in range(len(x))])  # (n, K, d)
    p = model(x).softmax(1)
    Hs = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    assert torch.allclose(Hd, J.transpose(1, 2) @ Hs @ J, atol=1e-10)
    assert (torch.linalg.eigvalsh(Hd)[:, 0] > -1e-10).all()


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_input_curvature_matches_dense_eigenvalues(act):
    model, (x, y) = _net(act), _data()
    evals = torch.linalg.eigvalsh(_dense(model, x, y))  # (n, d) ascending
    c = input_curvature(model, (x, y), steps=12, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(c.lambda_max, evals[:, -1], rtol=1e-6, atol=1e-10)
    assert torch.allclose(c.lambda_min, evals[:, 0], rtol=1e-6, atol=1e-9)
    assert c.steps == 12 and c.lambda_max.shape == (len(x),)
    if act is nn.ReLU:
        assert (c.lambda_min > -1e-9).all()
    else:  # a smooth activation adds curvature of its own: the input Hessian is indefinite
        assert (c.lambda_min < 0).any()


def test_input_curvature_same_generator_same_result_and_errors():
    model, (x, y) = _net(), _data()
    a, b = (input_curvature(model, (x, y), steps=3, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a.lambda_max, b.lambda_max)
    with pytest.raises(ValueError, match="steps and batch_size"):
        input_curvature(model, (x, y), steps=0)
    with pytest.raises(ValueError, match="v must have the shape"):
        input_hvp(model, x, y, torch.zeros(3))
