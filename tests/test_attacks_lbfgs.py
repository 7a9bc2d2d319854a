"""The box-constrained L-BFGS attack, and fgsm/pgd against torchattacks (a test-only peer)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses.attacks import distortion, fgsm, lbfgs, pgd


def _trained_model_and_data(seed=0, n=96, k=4):
    """A small MLP fitted to k noisy prototype images (6x6 in [0, 1]); every class is reachable in the box."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    prototypes = torch.rand(k, 1, 6, 6, generator=g)
    y = torch.arange(n) % k
    x = (prototypes[y] + 0.15 * torch.randn(n, 1, 6, 6, generator=g)).clamp(0, 1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, k))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), x, y, k


def test_lbfgs_reaches_targets_inside_the_box():
    model, x, y, k = _trained_model_and_data()
    target = (y + 1) % k
    x_adv = lbfgs(model, x, target, search_steps=4, max_iter=30)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    success = (model(x_adv).argmax(1) == target).float().mean().item()
    assert success >= 0.95


def test_lbfgs_distortion_is_smaller_than_fgsm_at_equal_success():
    model, x, y, k = _trained_model_and_data(seed=1)
    target = (y + 2) % k
    x_lb = lbfgs(model, x, target, search_steps=6, max_iter=30)
    ok_lb = model(x_lb).argmax(1) == target
    # targeted FGSM at the smallest eps (on a fine grid) that reaches each image's target
    fg_dist = torch.full((len(x),), float("inf"))
    for eps in torch.linspace(0.005, 1.0, 200).tolist():
        x_fg = fgsm(model, x, target, eps, targeted=True)
        hit = (model(x_fg).argmax(1) == target) & torch.isinf(fg_dist)
        fg_dist[hit] = distortion(x, x_fg)[hit].detach()
    both = ok_lb & torch.isfinite(fg_dist)
    assert both.float().mean() >= 0.8
    lb_dist = distortion(x, x_lb).detach()
    assert lb_dist[both].mean() < 0.9 * fg_dist[both].mean()
    assert (lb_dist[both] <= fg_dist[both] + 1e-4).float().mean() >= 0.9


def test_lbfgs_batched_matches_one_at_a_time():
    model, x, y, k = _trained_model_and_data(seed=2, n=6)
    target = (y + 1) % k
    a = lbfgs(model, x, target, search_steps=5, max_iter=40)
    b = lbfgs(model, x, target, search_steps=5, max_iter=40, batched=False)
    assert torch.equal(model(a).argmax(1) == target, model(b).argmax(1) == target)
    # the joint problem shares L-BFGS's curvature memory, so the minimizers agree only approximately
    assert torch.allclose(distortion(x, a), distortion(x, b), rtol=0.25, atol=5e-3)


def test_lbfgs_distortion_falls_as_the_search_refines_c():
    model, x, y, k = _trained_model_and_data(seed=3)
    target = (y + 1) % k
    coarse = lbfgs(model, x, target, search_steps=1, max_iter=30)
    fine = lbfgs(model, x, target, search_steps=5, max_iter=30)
    ok = (model(coarse).argmax(1) == target) & (model(fine).argmax(1) == target)
    assert (distortion(x, fine)[ok] <= distortion(x, coarse)[ok] + 1e-6).all()


def test_lbfgs_leaves_mode_and_grads_alone_and_checks_inputs():
    model, x, y, k = _trained_model_and_data(seed=4, n=8)
    model.train()
    lbfgs(model, x, (y + 1) % k, search_steps=2, max_iter=5)
    assert model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="target"):
        lbfgs(model, x, y[:3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lbfgs(model, x * 3, y)
    with pytest.raises(ValueError, match="c_init"):
        lbfgs(model, x, y, c_init=0.0)


def test_distortion_is_the_papers_rms():
    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.4
    assert torch.allclose(distortion(x, x_adv), torch.tensor([0.2, 0.0]))


# --------------------------------------------------------------------------- torchattacks agreement

torchattacks = pytest.importorskip("torchattacks")


def test_fgsm_matches_torchattacks():
    model, x, y, _ = _trained_model_and_data(seed=5)
    ours = fgsm(model, x, y, 0.1)
    theirs = torchattacks.FGSM(model, eps=0.1)(x, y)
    assert (ours - theirs).abs().max() < 1e-6


def test_pgd_without_random_start_matches_torchattacks():
    model, x, y, _ = _trained_model_and_data(seed=6)
    ours = pgd(model, x, y, 0.1, steps=10, alpha=0.02, random_start=False)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_success_matches_torchattacks(norm):
    model, x, y, _ = _trained_model_and_data(seed=7, n=256)
    eps, alpha = (0.08, 0.02) if norm == "linf" else (0.5, 0.1)
    torch.manual_seed(0)
    peer = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    theirs = peer(model, eps=eps, alpha=alpha, steps=20, random_start=True)(x, y)
    ours = pgd(model, x, y, eps, steps=20, alpha=alpha, norm=norm, generator=torch.Generator().manual_seed(0))
    acc_ours = (model(ours).argmax(1) == y).float().mean().item()
    acc_theirs = (model(theirs).argmax(1) == y).float().mean().item()
    assert abs(acc_ours - acc_theirs) <= 0.05


def test_torch_solver_matches_scipy_per_image_on_a_convex_problem():
    """Softmax regression makes c|z - x|^2 + CE(Wz + b, t) strictly convex: one minimizer per image,
    which the batched projected L-BFGS on the device and scipy's L-BFGS-B (one image at a time) must share."""
    from genlens.lenses.attacks import _lbfgs_b, _lbfgs_box

    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4)).eval()
    with torch.no_grad():
        model[1].weight.mul_(8)
    x = torch.rand(12, 1, 6, 6, generator=g)
    target = torch.randint(0, 4, (12,), generator=g)
    c = torch.full((12,), 0.05, dtype=torch.float64)
    ours = _lbfgs_box(model, x, target, c, 200, F.cross_entropy)
    ref = torch.cat([_lbfgs_b(model, x[i : i + 1], target[i : i + 1], c[i : i + 1], 200, F.cross_entropy)
                     for i in range(len(x))])
    objective = lambda z: 0.05 * (z - x).flatten(1).pow(2).sum(1) + F.cross_entropy(model(z), target, reduction="none")  # noqa: E731
    assert ours.min() >= 0 and ours.max() <= 1
    assert ((ours > 0) & (ours < 1)).any() and ((ref == 0) | (ref == 1)).any()  # the box is active somewhere
    assert torch.allclose(objective(ours), objective(ref), rtol=1e-4, atol=1e-5)
    assert (ours - ref).abs().max() < 2e-2


def test_solvers_reach_the_same_targets_and_unknown_solver_is_refused():
    model, x, y, k = _trained_model_and_data(seed=6, n=24)
    target = (y + 1) % k
    a = lbfgs(model, x, target, search_steps=4, max_iter=40)  # torch, the default
    b = lbfgs(model, x, target, search_steps=4, max_iter=40, solver="scipy")
    assert torch.equal(model(a).argmax(1) == target, model(b).argmax(1) == target)
    assert torch.allclose(distortion(x, a), distortion(x, b), rtol=0.05, atol=2e-3)
    with pytest.raises(ValueError, match="solver"):
        lbfgs(model, x, target, solver="adam")
