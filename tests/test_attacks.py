import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses.attacks import (accuracy_under, amplify, distortion, fgsm, fooled_if_correct, input_gradient, pgd,
                                    random_perturbation, random_perturbation_in_box)


def _model_and_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    x = torch.rand(64, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return model, x, y


def test_fgsm_matches_its_definition_and_stays_in_the_box():
    model, x, y = _model_and_data()
    eps = 0.1
    x_adv = fgsm(model, x, y, eps)
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y, reduction="sum").backward()
    expected = (x + eps * xr.grad.sign()).clamp(0, 1)
    assert torch.allclose(x_adv, expected)
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() <= eps + 1e-7


def test_fgsm_raises_the_loss_and_targeted_lowers_it():
    model, x, y = _model_and_data()
    base = F.cross_entropy(model(x), y)
    assert F.cross_entropy(model(fgsm(model, x, y, 0.05)), y) > base
    target = (y + 1) % 3
    assert F.cross_entropy(model(fgsm(model, x, target, 0.05, targeted=True)), target) < F.cross_entropy(model(x), target)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_box_and_beats_fgsm(norm):
    model, x, y = _model_and_data()
    eps = 0.1 if norm == "linf" else 0.5
    x_adv = pgd(model, x, y, eps, steps=20, norm=norm, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    dist = (x_adv - x).flatten(1).abs().amax(1) if norm == "linf" else (x_adv - x).flatten(1).norm(dim=1)
    assert (dist <= eps + 1e-6).all()
    if norm == "linf":
        assert F.cross_entropy(model(x_adv), y) >= F.cross_entropy(model(fgsm(model, x, y, eps)), y) - 1e-6


def test_pgd_eps_zero_is_identity_and_seeded():
    model, x, y = _model_and_data()
    assert torch.equal(pgd(model, x, y, 0.0), x)
    a = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(1))
    b = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_attacks_leave_mode_and_parameter_grads_alone():
    model, x, y = _model_and_data()
    model.train()
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, 0.1, steps=2)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_attack_errors():
    model, x, y = _model_and_data()
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm(model, x * 3, y, 0.1)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, 0.1, norm="l1")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        fgsm(lambda t: t, x, y, 0.1)
    with pytest.raises(ValueError, match=r"y must have shape \(64,\), got \(3,\)"):
        pgd(model, x, y[:3], 0.1)
    with pytest.raises(TypeError, match="x must be floating point"):
        fgsm(model, (x > 0.5).long(), y, 0.1)
    with pytest.raises(ValueError, match="model is on cpu but x is on meta"):
        accuracy_under(model, lambda a, b: a, x.to("meta"), y)
    with pytest.raises(ValueError, match="size must be >= 0"):
        amplify(x, x, -1.0)


def test_gradient_is_per_example_and_accuracy_under_attack():
    model, x, y = _model_and_data()
    full = input_gradient(model, x, y)
    assert torch.allclose(full[:5], input_gradient(model, x[:5], y[:5]), atol=1e-6)
    clean = accuracy_under(model, lambda a, b: a, x, y, batch_size=10)
    assert clean == (model(x).argmax(1) == y).float().mean().item()
    seen = []
    accuracy_under(model, lambda a, b: (seen.append(len(a)), a)[1], x, y, batch_size=30)
    assert seen == [30, 30, 4]
    assert accuracy_under(model, lambda a, b: pgd(model, a, b, 0.3, steps=10), x, y) <= clean


def test_accuracy_under_classifies_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.Dropout(0.9), nn.Linear(64, 3)).train()
    _, x, y = _model_and_data()
    with torch.no_grad():
        expected = (model.eval()(x).argmax(1) == y).float().mean().item()
    model.train()
    assert accuracy_under(model, lambda a, b: a, x, y) == expected  # train-mode dropout would scramble it
    assert model.training


def test_amplify_scales_each_perturbation_to_the_distortion():
    g = torch.Generator().manual_seed(3)
    x = 0.25 + 0.5 * torch.rand(5, 1, 4, 4, generator=g)  # in [0.25, 0.75]: no clipping at distortion 0.1
    x_adv = (x + 0.01 * torch.randn(5, 1, 4, 4, generator=g)).clamp(0, 1)
    out = amplify(x, x_adv, 0.1)
    torch.testing.assert_close(distortion(x, out), torch.full((5,), 0.1), atol=1e-6, rtol=0)
    direction = torch.nn.functional.cosine_similarity((out - x).flatten(1), (x_adv - x).flatten(1))
    torch.testing.assert_close(direction, torch.ones(5), atol=1e-6, rtol=0)
    assert amplify(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 5.0).min() == 0  # clipped to the box


def test_random_perturbation_keeps_each_norm_and_is_seeded():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 1, 5, 5, generator=g)
    x_adv = x + 0.1 * torch.randn(6, 1, 5, 5, generator=g)
    a = random_perturbation(x, x_adv, generator=torch.Generator().manual_seed(0))
    b = random_perturbation(x, x_adv, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close((a - x).flatten(1).norm(dim=1), (x_adv - x).flatten(1).norm(dim=1), atol=1e-6, rtol=0)
    assert torch.equal(a, b)
    cosine = torch.nn.functional.cosine_similarity((a - x).flatten(1), (x_adv - x).flatten(1))
    assert cosine.abs().max() < 0.9  # a random direction in 25 dimensions, not the adversarial one


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA"))])
def test_attacks_follow_the_data_device(device):
    model, x, y = _model_and_data()
    model, x, y = model.to(device), x.to(device), y.to(device)
    for x_adv in (fgsm(model, x, y, 0.1), pgd(model, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(0))):
        assert x_adv.device.type == device and (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert 0.0 <= accuracy_under(model, lambda a, b: fgsm(model, a, b, 0.1), x, y) <= 1.0


def test_correct_under_is_per_image_and_averages_to_accuracy_under():
    from genlens.lenses.attacks import correct_under
    model, x, y = _model_and_data()
    attack = lambda a, b: pgd(model, a, b, 0.2, steps=5, random_start=False)  # noqa: E731
    each = correct_under(model, attack, x, y, batch_size=20)
    assert each.shape == (64,) and each.dtype == torch.bool
    with torch.no_grad():
        want = model(torch.cat([attack(x[i:i + 20], y[i:i + 20]) for i in range(0, 64, 20)])).argmax(1) == y
    assert torch.equal(each, want)
    assert each.float().mean().item() == accuracy_under(model, attack, x, y, batch_size=20)


def test_fooled_if_correct_against_an_image_by_image_loop():
    model, x, y = _model_and_data(1)
    x_p = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    correct, fooled = fooled_if_correct(model, x, x_p, y)
    with torch.no_grad():
        for i in range(len(x)):  # the oracle: one image at a time, by hand
            assert bool(correct[i]) == (int(model(x[i : i + 1]).argmax()) == int(y[i]))
            assert bool(fooled[i]) == (int(model(x_p[i : i + 1]).argmax()) != int(y[i]))
    assert correct.dtype == fooled.dtype == torch.bool


def test_random_perturbation_in_box_matches_each_distortion_and_stays_in_the_box():
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(8, 1, 6, 6, generator=g) > 0.7).float()  # mostly black digits-like images: clipping bites
    sizes = torch.linspace(0.02, 0.3, 8)
    x_adv = x + sizes.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g)
    target = ((x_adv - x).flatten(1).pow(2).mean(1)).sqrt()  # the oracle: the paper's formula written out
    a = random_perturbation_in_box(x, x_adv, generator=torch.Generator().manual_seed(0))
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(((a - x).flatten(1).pow(2).mean(1)).sqrt(), target, atol=1e-4, rtol=0)
    b = random_perturbation_in_box(x, x_adv, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # the same draw: same signs
    moved = (a - x) != 0
    assert torch.equal(torch.sign(a - x)[moved], torch.sign(noise)[moved])


def test_fooled_if_correct_decides_in_float32_where_bf16_would_flip_the_label(monkeypatch):
    import genlens.core.train as train

    # bf16 autocast as on a GPU, here on the CPU: the chapter's default predictions would round 0.501 to 0.5
    monkeypatch.setattr(train, "autocast", lambda device, enabled=True: torch.autocast("cpu", dtype=torch.bfloat16,
                                                                                        enabled=enabled))
    model = nn.Linear(2, 2, bias=False).eval()
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[0.0, 1.0]])
    x_edge = torch.tensor([[0.5, 0.501]])  # class 1 by 0.001 in float32, a tie (class 0) in bfloat16
    y = torch.tensor([1])
    assert int(train.predict(model, x_edge).argmax()) == 0  # the patch bites: bf16 moves it across the boundary
    correct, fooled = fooled_if_correct(model, x, x_edge, y)
    assert bool(correct[0]) and not bool(fooled[0])
