"""Tests of genlens.lenses.complexity against independent oracles: hand computations, brute force over paths,
dense Jacobians, closed forms and a plain re-implementation of the bisection."""
from __future__ import annotations

import itertools
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch import nn

from genlens.core.models import SmallCNN, resnet20
from genlens.lenses import complexity as C


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g))
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- BatchNorm folding

@pytest.mark.parametrize("build, shape", [
    (lambda: SmallCNN(width=4), (1, 16, 16)),
    (lambda: resnet20(width=4, num_classes=10), (3, 16, 16)),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False), nn.ReLU(), nn.Linear(4, 2)), (3,)),
], ids=["cnn", "resnet20", "mlp-bn1d-no-affine"])
def test_folding_keeps_the_function_and_removes_batchnorm(build, shape):
    torch.manual_seed(0)
    model = _randomize_batchnorm(build())
    before = _state(model)
    x = torch.rand(6, *shape)
    folded = C._fold_batchnorm(model)
    with torch.no_grad():
        expected, got = model.eval()(x), folded.eval()(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_folding_refuses_a_batchnorm_without_a_layer_before_it():
    with pytest.raises(ValueError, match="cannot fold BatchNorm '0'"):
        C._fold_batchnorm(nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)))


# ----------------------------------------------------------------------------- distance from initialization

def test_distance_from_init_by_hand_counts_weights_not_biases():
    init = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        init[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [3.0, 5.0]]))  # differences 0, -2, 0, 1
        init[2].weight.copy_(torch.tensor([[0.5, 0.5]]))
        model[2].weight.copy_(torch.tensor([[0.5, -1.5]]))  # differences 0, -2
        for a, b in ((init[0], model[0]), (init[2], model[2])):
            a.bias.fill_(0.0)
            b.bias.fill_(7.0)  # biases are not weights
    assert C.distance_from_init(model, init) == pytest.approx(math.sqrt(4 + 1 + 4), rel=1e-12)
    assert C.distance_from_init(init, init) == 0.0


def test_distance_from_init_folds_batchnorm_by_hand():
    init, model = (nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2)) for _ in range(2))
    with torch.no_grad():
        for net in (init, model):
            net[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[1].running_var.copy_(torch.tensor([4.0, 1.0]) - model[1].eps)  # scale 1/2 on row 0, 1 on row 1
        model[1].weight.copy_(torch.tensor([1.0, 3.0]))  # row 1 scaled by 3
    s0 = 1 / math.sqrt(1 + init[1].eps)  # the init's BN: var 1
    expected = math.sqrt(sum((a - s0 * b) ** 2 for a, b in
                             [(0.5, 1.0), (1.0, 2.0), (9.0, 3.0), (12.0, 4.0)]))
    assert C.distance_from_init(model, init) == pytest.approx(expected, rel=1e-6)


def test_distance_from_init_rejects_different_architectures():
    with pytest.raises(ValueError, match="same Conv/Linear layers"):
        C.distance_from_init(nn.Linear(3, 2), nn.Linear(3, 4))


# ----------------------------------------------------------------------------- path norm

def test_path_norm_is_the_brute_force_sum_over_paths():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    W1, b1, W2, b2 = (p.detach().double() for p in (net[0].weight, net[0].bias, net[2].weight, net[2].bias))
    total = 0.0
    for i, j, k in itertools.product(range(3), range(4), range(2)):  # input i -> hidden j -> output k
        total += float(W1[j, i] ** 2 * W2[k, j] ** 2)
    for j, k in itertools.product(range(4), range(2)):  # paths that start at a hidden bias
        total += float(b1[j] ** 2 * W2[k, j] ** 2)
    total += float((b2 ** 2).sum())  # paths that start at an output bias
    assert C.path_norm(net, (3,)) == pytest.approx(total, rel=1e-12)


def test_path_norm_of_a_conv_net_is_the_sum_over_the_dense_jacobians_paths():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 3, bias=False))
    conv = lambda v: F.conv2d(v.view(1, 1, 4, 4), net[0].weight.detach().double(), padding=1).reshape(-1)
    J = torch.autograd.functional.jacobian(conv, torch.zeros(16, dtype=torch.float64))  # (32, 16): one weight per entry
    W2 = net[3].weight.detach().double()
    expected = (W2 ** 2 @ J ** 2).sum().item()  # sum over input -> hidden -> output paths of squared weights
    assert C.path_norm(net, (1, 4, 4)) == pytest.approx(expected, rel=1e-12)


def test_path_norm_leaves_the_model_alone_and_checks_the_shape():
    net = _randomize_batchnorm(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)))
    before = _state(net)
    assert C.path_norm(net, (3,)) > 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()) and net.training
    for bad in [(), (0,), (3.0,), 3]:
        with pytest.raises(ValueError, match="input_shape"):
            C.path_norm(net, bad)


# ----------------------------------------------------------------------------- margins and the spectral measure

def _identity_classifier(k: int) -> nn.Linear:
    net = nn.Linear(k, k, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(k))
    return net


def test_margin_by_hand():
    net = _identity_classifier(3)  # logits = x
    x = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0], [2.0, 2.0, 2.0]])
    y = torch.tensor([0, 2, 1])
    torch.testing.assert_close(C.margin(net, x, y, batch_size=2), torch.tensor([1.0, -4.0, 0.0]))


def test_spectral_norm_of_a_conv_is_that_of_its_map_on_one_patch():
    """The reshaped kernel's norm is the operator norm of the conv on a single kernel-sized input (a dense
    Jacobian), which the measure uses as nitarshan does."""
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, bias=False)
    patch_map = lambda v: F.conv2d(v.view(1, 3, 3, 3), conv.weight.detach().double()).reshape(-1)
    J = torch.autograd.functional.jacobian(patch_map, torch.zeros(27, dtype=torch.float64))  # (5, 27)
    net = nn.Sequential(conv, nn.Flatten(), _identity_classifier(5))  # input 3x3 -> 5 logits
    x = torch.randn(20, 3, 3, 3)
    y = torch.randint(0, 5, (20,))
    gamma = C.margin(net, x, y).double().sort().values[1].abs()  # floor(0.1 * 20) = 2nd smallest
    expected = 2 * torch.linalg.matrix_norm(J, ord=2).log() - 2 * gamma.log()  # identity layer: norm 1
    assert C.spectral_product_over_margin(net, x, y) == pytest.approx(expected.item(), rel=1e-5)


def test_spectral_product_over_margin_of_linear_layers_against_dense_norms():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    x, y = torch.randn(50, 6), torch.randint(0, 4, (50,))
    spec = sum(2 * math.log(torch.linalg.matrix_norm(net[i].weight.detach().double(), ord=2).item()) for i in (0, 2))
    margins = C.margin(net, x, y).double().sort().values
    for q, k in [(0.1, 5), (0.5, 25), (0.01, 1)]:
        expected = spec - 2 * math.log(abs(margins[k - 1].item()))
        assert C.spectral_product_over_margin(net, x, y, quantile=q) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- PAC-Bayes magnitude-aware flatness

def _plain_pacbayes(model, x, y, *, target, n_samples, steps, seed):
    """nitarshan's bisection with the documented noise (variance sigma^2 w^2 + eps^2, standard normals drawn once
    in parameter order), evaluating every image at every step; for a model without BatchNorm."""
    g = torch.Generator().manual_seed(seed)
    base = {k: p.detach() for k, p in model.named_parameters()}
    z = [{k: torch.randn(p.shape, generator=g) for k, p in base.items()} for _ in range(n_samples)]
    accuracy = lambda params: (torch.func.functional_call(model, params, (x,)).argmax(1) == y).double().mean().item()
    with torch.no_grad():
        reference = accuracy(base)
        lower, upper, sigma = 0.0, 2.0, 1.0
        for _ in range(steps):
            sigma = (lower + upper) / 2
            accs = [accuracy({k: w + zs[k] * (sigma ** 2 * w ** 2 + 1e-6).sqrt() for k, w in base.items()}) for zs in z]
            deviation = abs(sum(accs) / n_samples - reference)
            if abs(deviation - target) < 1e-2:
                break
            upper, lower = (sigma, lower) if deviation > target else (upper, sigma)
    return 1 / sigma ** 2


def _fitted_mlp(seed: int = 0):
    """A random MLP and inputs labelled by its own predictions with some labels changed (accuracy 0.9)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = torch.randn(700, 10)
    with torch.no_grad():
        y = net(x).argmax(1)
    y[::10] = (y[::10] + 1) % 4
    return net, x, y


def test_pacbayes_matches_the_plain_bisection_and_is_deterministic():
    net, x, y = _fitted_mlp()
    for target in (0.05, 0.2):
        got = C.pacbayes_mag_flatness(net, x, y, target_deviation=target, generator=torch.Generator().manual_seed(7))
        again = C.pacbayes_mag_flatness(net, x, y, target_deviation=target, generator=torch.Generator().manual_seed(7))
        assert got == again == _plain_pacbayes(net, x, y, target=target, n_samples=5, steps=12, seed=7)


def test_pacbayes_closed_form_for_one_weight():
    """logit_0 = w x with w = 3, logit_1 = 0: a draw keeps every image right iff w + sigma |w| z > 0 (up to eps),
    so the mean accuracy is Phi(1 / sigma) whatever w; a deviation of 0.1 +- (tolerance + Monte Carlo error)
    brackets sigma. (Noise of standard deviation sigma^2 w^2 would give 1/sigma^2 near w Phi^-1(0.9) = 3.8.)"""
    net = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0], [0.0]]))
    x, y = torch.ones(4, 1), torch.zeros(4, dtype=torch.long)
    got = C.pacbayes_mag_flatness(net, x, y, n_samples=1500, generator=torch.Generator().manual_seed(0))
    low, high = norm.ppf(1 - 0.13) ** 2, norm.ppf(1 - 0.07) ** 2  # 1/sigma^2 = Phi^-1(1 - deviation)^2
    assert low < got < high


def test_pacbayes_extremes_in_closed_form():
    """Insensitive to every sigma: the bisection climbs to 2 - 2^-11; destroyed by the eps noise alone (weights
    of 1e-6): it descends to 2^-11."""
    x, y = torch.randn(40, 2), torch.zeros(40, dtype=torch.long)
    assert C.pacbayes_mag_flatness(_ConstantLogits(), x, y) == pytest.approx(1 / (2 - 2 ** -11) ** 2, rel=1e-12)
    tiny = nn.Linear(2, 2)
    with torch.no_grad():
        tiny.weight.copy_(torch.tensor([[1e-6, 0.0], [0.0, 0.0]]))
        tiny.bias.copy_(torch.tensor([1e-6, 0.0]))
    xs = torch.rand(40, 2) + 0.5
    assert C.pacbayes_mag_flatness(tiny, xs, y, generator=torch.Generator().manual_seed(0)) == 4.0 ** 11


class _ConstantLogits(nn.Module):
    """Logits that ignore the parameter: predicts class 0 whatever the noise."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return torch.tensor([1.0, 0.0]).expand(len(x), 2) + 0 * self.unused.sum()


def test_pacbayes_is_larger_for_a_sharper_copy_and_monotone():
    """The same classifier with every weight scaled by c (logits scaled by c^2, the same argmax): the absolute
    eps noise weighs more on smaller weights, so the smaller c, the sharper, and 1/sigma'^2 falls as c grows."""
    net, x, y = _fitted_mlp(1)
    values = []
    for c in (0.15, 0.2, 0.3, 1.0, 3.0):
        scaled = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
        with torch.no_grad():
            for depth, (a, b) in enumerate(zip(scaled, net)):
                if isinstance(a, nn.Linear):  # ReLU is positively homogeneous: logits scaled by c^2
                    a.weight.copy_(b.weight * c)
                    a.bias.copy_(b.bias * c ** (1 + depth // 2))
            assert torch.equal(scaled(x).argmax(1), net(x).argmax(1))
        values.append(C.pacbayes_mag_flatness(scaled, x, y, generator=torch.Generator().manual_seed(3)))
    assert values == sorted(values, reverse=True) and values[0] > values[1] > values[2] > values[3]


def test_pacbayes_leaves_the_model_bitwise_unchanged():
    torch.manual_seed(5)
    model = _randomize_batchnorm(SmallCNN(width=4))
    model.train()
    before = _state(model)
    x, y = torch.rand(60, 1, 12, 12), torch.randint(0, 10, (60,))
    C.pacbayes_mag_flatness(model, x, y, search_steps=3, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_one_clear_value_error():
    net = _identity_classifier(3)
    x, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    cases = [
        (lambda: C.margin(net, x[:0], y[:0]), "x is empty"),
        (lambda: C.margin(net, x, y[:4]), "5 examples but y has 4 labels"),
        (lambda: C.margin(net, x, y.float()), "integer class labels"),
        (lambda: C.margin(net, x, y + 3), r"labels y must lie in \[0, 3\)"),
        (lambda: C.spectral_product_over_margin(net, x, y, quantile=0.0), "quantile must lie in"),
        (lambda: C.spectral_product_over_margin(net, x, y, quantile=1.5), "quantile must lie in"),
        (lambda: C.spectral_product_over_margin(net, x[:0], y[:0]), "x is empty"),
        (lambda: C.pacbayes_mag_flatness(net, x, y[:3]), "5 examples but y has 3 labels"),
        (lambda: C.pacbayes_mag_flatness(net, x, y, target_deviation=1.0), "target_deviation"),
        (lambda: C.pacbayes_mag_flatness(net, x, y, n_samples=0), "n_samples"),
        (lambda: C.pacbayes_mag_flatness(net, x, y, search_steps=0), "search_steps"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- weightwatcher

def test_weightwatcher_alpha_is_finite_and_quiet(capsys):
    pytest.importorskip("weightwatcher")
    torch.manual_seed(6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))  # the 10-class layer has too few eigenvalues and is left out
    alpha = C.weightwatcher_alpha(net)
    assert math.isfinite(alpha) and alpha > 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_weightwatcher_alpha_refuses_a_model_of_small_layers():
    pytest.importorskip("weightwatcher")
    with pytest.raises(ValueError, match=f"fewer than {C.WW_MIN_EVALS} eigenvalues") as info:
        C.weightwatcher_alpha(nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Conv2d(3, 4, 3)))
    assert "\n" not in str(info.value)


def test_weightwatcher_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "weightwatcher", None)  # import weightwatcher -> ImportError
    with pytest.raises(ImportError, match=r"pip install genlens\[zoo\]"):
        C.weightwatcher_alpha(nn.Linear(3, 2))
