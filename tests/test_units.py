import math

import numpy as np
import pytest
import torch
from torch import nn

from genlens.lenses.units import (label_purity, lipschitz_bounds, natural_directions, random_directions, top_images,
                                  unit_analysis)


def _mlp(seed=0, activation=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), activation(), nn.Linear(12, 8), activation(),
                         nn.Linear(8, 3)).eval()


def test_top_images_of_a_unit_are_its_largest_activations():
    acts = torch.rand(200, 10, generator=torch.Generator().manual_seed(1))
    top = top_images(acts, natural_directions(10, [3, 7]), k=5)
    for row, unit in zip(top, [3, 7]):
        expected = np.argsort(-acts[:, unit].numpy())[:5]
        assert row.tolist() == expected.tolist()
    v = random_directions(10, 4, torch.Generator().manual_seed(2))
    brute = np.argsort(-(acts.numpy() @ v.numpy().T), axis=0)[:5].T
    assert top_images(acts, v, 5).tolist() == brute.tolist()


def test_random_directions_are_unit_and_seeded():
    a = random_directions(30, 6, torch.Generator().manual_seed(3))
    b = random_directions(30, 6, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.allclose(a.norm(dim=1), torch.ones(6))
    with pytest.raises(ValueError, match="units"):
        natural_directions(5, [5])


def test_label_purity_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 0, 2])
    rows = torch.tensor([[0, 1, 5], [2, 3, 4], [4, 6, 0], [2, 4, 0]])
    # row 0: labels 0, 0, 0 -> 3/3; row 1: 1, 1, 2 -> 2/3; row 2: 2, 2, 0 -> 2/3; row 3: 1, 2, 0 -> 1/3
    assert label_purity(rows, labels).tolist() == pytest.approx([1.0, 2 / 3, 2 / 3, 1 / 3])


def test_unit_analysis_finds_the_top_images_of_a_unit_and_their_purity():
    # the probed layer is an identity on 4 features, so unit u's top images are the largest x[:, u]
    model = nn.Sequential(nn.Identity(), nn.Linear(4, 2))
    model.train()
    x = torch.tensor([[9.0, 0, 0, 1], [8, 0, 5, 0], [7, 1, 0, 0], [0, 9, 0, 2], [0, 8, 6, 0], [1, 7, 1, 3]])
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    res = unit_analysis(model, model[0], x, y, units=[0, 1, 2], n_random=2, k=3,
                        generator=torch.Generator().manual_seed(0))
    assert res.natural_top.tolist() == [[0, 1, 2], [3, 4, 5], [4, 1, 5]]
    assert res.natural_purity.tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])  # labels 0,0,1 / 2,2,2 / 2,0,2
    scores = res.random @ x.T  # (2, 6): random directions of the same 4-D space
    assert res.random_top.tolist() == scores.topk(3, dim=1).indices.tolist()
    assert model.training  # read in eval mode, mode given back
    same = unit_analysis(model, "0", x, y, units=[0, 1, 2], n_random=2, k=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.random, res.random) and torch.equal(same.natural_top, res.natural_top)
    with pytest.raises(ValueError, match="submodule"):
        unit_analysis(model, nn.ReLU(), x, y, units=[0], n_random=1, k=2)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Sigmoid])
def test_lipschitz_bounds_are_operator_norms_and_bound_the_network(activation):
    model = _mlp(seed=7, activation=activation)
    bounds = lipschitz_bounds(model)
    for name in ("1", "3", "5"):
        w = dict(model.named_modules())[name].weight.detach().double().numpy()
        assert bounds[name] == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-9)
    assert bounds["2"] == (0.25 if activation is nn.Sigmoid else 1.0)
    g = torch.Generator().manual_seed(8)
    x, r = torch.rand(500, 1, 4, 4, generator=g), 0.01 * torch.randn(500, 1, 4, 4, generator=g)
    with torch.no_grad():
        ratio = (model(x + r) - model(x)).norm(dim=1) / r.flatten(1).norm(dim=1)
    assert ratio.max().item() <= math.prod(bounds.values()) * (1 + 1e-5)
    with pytest.raises(ValueError, match="Conv2d"):
        lipschitz_bounds(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match="Upsample"):  # parameter-free but 2-Lipschitz: no bound of 1
        lipschitz_bounds(nn.Sequential(nn.Upsample(scale_factor=2)))


def test_amplification_of_a_linear_map_is_bounded_by_its_operator_norm():
    import torch
    from torch import nn

    from genlens.lenses.units import amplification

    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.rand(20, 6)
    r = torch.randn(20, 6) * 0.1
    gains = amplification(layer, x, x + r)
    expected = (r @ layer.weight.T).norm(dim=1) / r.norm(dim=1)
    assert torch.allclose(gains, expected, atol=1e-5)
    assert (gains <= torch.linalg.matrix_norm(layer.weight, ord=2) + 1e-5).all()


def test_amplification_is_float32_where_bf16_would_break_the_bound(monkeypatch):
    import genlens.core.train as train
    from genlens.lenses.units import amplification

    # bf16 autocast as on a GPU, here on the CPU: rounding the inputs alone moves the gain by about a percent
    monkeypatch.setattr(train, "autocast", lambda device, enabled=True: torch.autocast("cpu", dtype=torch.bfloat16,
                                                                                        enabled=enabled))
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(784, 10).eval()
    x = torch.rand(16, 784, generator=g) * 0.9
    top = torch.linalg.svd(layer.weight.detach())[2][0]  # the top right singular vector: the gain is the norm
    x_p = x + 0.05 * top
    norm = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
    bf16 = (train.predict(layer, x_p) - train.predict(layer, x)).norm(dim=1) / (x_p - x).norm(dim=1)
    assert (bf16 / norm - 1).abs().max().item() > 1e-3  # the patch bites
    assert torch.allclose(amplification(layer, x, x_p), torch.full((16,), norm), rtol=1e-4)
