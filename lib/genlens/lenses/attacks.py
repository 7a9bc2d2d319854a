"""Adversarial attacks on classifiers whose inputs live in the box [0, 1].

An attack has the signature of `core.train`'s `perturb` hook, ``(model, x, y, ...) -> x_adv``, so the
same function serves adversarial training and evaluation. A model's own preprocessing (normalization)
is part of the model, so every attack works on raw [0, 1] inputs and returns inputs in [0, 1]. Attacks never switch the model between train and eval
mode (the caller decides) and never touch parameter gradients: they differentiate with respect to
the input only. Radii are on the [0, 1] pixel scale: L-inf radius eps = 8/255 means every pixel
moves by at most 8 grey levels.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nn import check_model, check_tensor, model_device
from ..core.train import evaluate, predict

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, y_name: str = "y") -> None:
    """One-line errors for an attack's inputs: a model, x (N, ...) floating in [0, 1] on its device, y (N,)."""
    device = model_device(check_model(model))
    check_tensor(x, "x", floating=True, device=device)
    check_tensor(y, y_name, device=device)
    if y.shape != x.shape[:1]:
        raise ValueError(f"{y_name} must have shape {tuple(x.shape[:1])}, got {tuple(y.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"inputs must lie in [0, 1], got range [{x.min().item():.3g}, {x.max().item():.3g}]")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """d loss(model(x), y) / dx for a batch x (N, ...), with the loss summed over the batch."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(model(x), y) * len(x)  # per-example gradients, independent of batch size
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, targeted: bool = False,
         loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): clip(x + eps sign(grad_x loss), 0, 1).

    With targeted=True, y holds target labels and the step descends their loss. x: (N, ...) in [0, 1].
    """
    _check(model, x, y, eps)
    step = eps * input_gradient(model, x, y, loss_fn).sign()
    return (x - step if targeted else x + step).clamp(0, 1).detach()


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,)
    factor = (eps / flat).clamp(max=1.0)
    return delta * factor.view(-1, *[1] * (delta.dim() - 1))


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10, *,
        alpha: float | None = None, norm: Literal["linf", "l2"] = "linf", random_start: bool = True,
        targeted: bool = False, loss_fn: LossFn = F.cross_entropy,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) inside the `norm` ball of radius eps around x.

    Each of `steps` steps moves by `alpha` (default 2.5 eps / steps) along the gradient's sign
    (linf) or its normalized direction (l2), then projects back onto the ball and the box [0, 1].
    random_start draws the start uniformly in the linf ball (or on a random l2 direction) from
    `generator` (CPU). Returns x_adv (N, ...) with ||x_adv - x|| <= eps and 0 <= x_adv <= 1.
    """
    _check(model, x, y, eps)
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if eps == 0 or steps == 0:
        return x.detach().clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    delta = torch.zeros_like(x)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1  # U[-1, 1]
        delta = _project(noise * eps, eps, norm) if norm == "linf" else _project(noise, eps * 0.5, "l2")
        delta = (x + delta).clamp(0, 1) - x
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        grad = input_gradient(model, x + delta, y, loss_fn)
        if norm == "linf":
            step = grad.sign()
        else:
            step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        delta = _project(delta + sign * alpha * step, eps, norm)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def accuracy_under(model: nn.Module, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of `model` on attack(x, y), attacked in batches of `batch_size` and then classified as
    `core.train.evaluate` does (eval mode); the attack sees the model in its own mode, which is restored.
    An identity attack gives the clean accuracy."""
    _check(model, x, y, 0.0)
    attacked = torch.cat([attack(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return evaluate(model, attacked, y)[1]


def correct_under(model: nn.Module, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Per-image correctness (N,) bool of `model` (eval mode) on attack(x, y), attacked in batches as in
    `accuracy_under` (whose value is its mean): for intervals over the attacked images, and for paired
    comparisons of two models on the same images."""
    _check(model, x, y, 0.0)
    attacked = torch.cat([attack(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return predict(model, attacked).argmax(1) == y


def fooled_if_correct(model: nn.Module, x: torch.Tensor, x_perturbed: torch.Tensor, y: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, fooled), each (N,) bool: whether `model` (eval mode) classifies the clean x correctly, and
    whether it misclassifies x_perturbed (any label other than y). A transfer rate counts only clean-correct
    images: fooled[correct].float().mean(), so that the model's clean test error is not counted as transfer.
    Both are decided in float32 (no bf16 autocast on a GPU): a minimal adversarial example sits on the
    decision boundary, and bf16 rounding could move it back across."""
    from ..core.train import predict

    _check(model, x, y, 0.0)
    correct = predict(model, x, mixed_precision=False).argmax(1) == y
    return correct, predict(model, x_perturbed, mixed_precision=False).argmax(1) != y


def distortion(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Szegedy et al.'s distortion sqrt(sum (x_adv - x)^2 / n) per image, n = pixels per image. -> (N,)."""
    diff = (x_adv - x).flatten(1)
    return diff.pow(2).mean(1).sqrt()


def amplify(x: torch.Tensor, x_adv: torch.Tensor, size: float) -> torch.Tensor:
    """The paper's "amplified" examples (Table 4): each perturbation x_adv - x scaled to the `distortion`
    `size`, then clipped to the box [0, 1] (which can only lower it). x, x_adv: (N, ...) -> (N, ...)."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    scale = size / distortion(x, x_adv).clamp_min(1e-6)  # (N,)
    return (x + (x_adv - x) * scale.view(-1, *[1] * (x.dim() - 1))).clamp(0, 1)


def random_perturbation(x: torch.Tensor, x_adv: torch.Tensor, *, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
    """x moved as far as x_adv (the L2 norm of x_adv - x, per image) in a uniformly random direction drawn
    from `generator` (CPU); not clipped to the box. The control for an adversarial direction. (N, ...)."""
    norm = (x_adv - x).flatten(1).norm(dim=1)  # (N,)
    direction = F.normalize(torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device).flatten(1))
    return x + (norm[:, None] * direction).view_as(x)


def random_perturbation_in_box(x: torch.Tensor, x_adv: torch.Tensor, *, generator: torch.Generator | None = None,
                               iters: int = 40) -> torch.Tensor:
    """Gaussian noise (one draw per pixel from `generator`, CPU) scaled per image so that, clipped to the box
    [0, 1], it has the `distortion` of x_adv - x: the paper's Gaussian-noise control at the adversarial
    examples' own distortion. The scale is found by bisection (the clipped distortion grows with it); an
    image whose target cannot be reached gets the largest scale tried (100). (N, ...) -> (N, ...)."""
    target = distortion(x, x_adv)  # (N,)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    shape = (-1, *[1] * (x.dim() - 1))
    lo, hi = torch.zeros_like(target), torch.full_like(target, 100.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = distortion(x, (x + mid.view(shape) * noise).clamp(0, 1)) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (x + hi.view(shape) * noise).clamp(0, 1)


def _lbfgs_b(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: torch.Tensor, max_iter: int,
             loss_fn: LossFn) -> torch.Tensor:
    """One L-BFGS-B run of  min_z sum_i c_i |z_i - x_i|^2 + loss(model(z_i), t_i)  over 0 <= z <= 1.

    The images are concatenated into one vector; the objective is a sum of per-image terms, so the
    problem is separable and one batched forward/backward pass gives every image's gradient.
    """
    import numpy as np
    from scipy.optimize import Bounds, minimize

    shape, dtype, device, n = x.shape, x.dtype, x.device, len(x)
    x = x.detach()
    cview = c.to(device=device, dtype=dtype)

    def objective(z: "np.ndarray") -> tuple[float, "np.ndarray"]:
        xa = torch.from_numpy(z).to(device=device, dtype=dtype).view(shape).requires_grad_(True)
        with torch.enable_grad():
            penalty = (cview * (xa - x).flatten(1).pow(2).sum(1)).sum()
            value = penalty + loss_fn(model(xa), target) * n  # per-example losses, summed
            (grad,) = torch.autograd.grad(value, xa)
        return float(value.detach()), grad.detach().flatten().double().cpu().numpy()

    z0 = x.flatten().double().cpu().numpy()
    bounds = Bounds(np.zeros_like(z0), np.ones_like(z0))
    res = minimize(objective, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "maxcor": 10})
    return torch.from_numpy(res.x).to(device=device, dtype=dtype).view(shape).clamp(0, 1)


def _lbfgs_box(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: torch.Tensor, max_iter: int,
               loss_fn: LossFn, memory: int = 10, max_halvings: int = 20, pgtol: float = 1e-5,
               ftol: float = 1e-7) -> torch.Tensor:
    """Projected L-BFGS on the device for every image at once:  min_z c_i |z_i - x_i|^2 + loss(model(z_i), t_i).

    Each image keeps its own curvature pairs (s, y), its own step and its own active set (pixels at
    a bound whose gradient points out of the box are held there); the two-loop recursion, the
    projected backtracking (Armijo) line search and the model's forward/backward passes are batched
    over the images that still need them. An image stops when its projected gradient is below `pgtol`
    (max-norm), when a step lowers its objective by less than `ftol` relative (about float32
    precision), or when no step of the line search is acceptable. `loss_fn` must accept
    ``reduction="none"``.
    x: (N, ...); c: (N,). Returns z (N, ...) in [0, 1].
    """
    shape, n = x.shape, len(x)
    x0 = x.detach().flatten(1)
    cz = c.to(device=x.device, dtype=x.dtype)

    def value_and_grad(z: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            per = cz[rows] * (z - x0[rows]).pow(2).sum(1) + loss_fn(model(z.view(-1, *shape[1:])), target[rows],
                                                                       reduction="none")
            (grad,) = torch.autograd.grad(per.sum(), z)
        return per.detach(), grad

    all_rows = torch.arange(n, device=x.device)
    z = x0.clone()
    f, g = value_and_grad(z, all_rows)
    S = torch.zeros(memory, *z.shape, dtype=z.dtype, device=z.device)
    Y, rho = torch.zeros_like(S), torch.zeros(memory, n, dtype=z.dtype, device=z.device)
    valid = torch.zeros(memory, n, dtype=torch.bool, device=z.device)
    gamma = torch.zeros(n, dtype=z.dtype, device=z.device)  # H0 = gamma I from the newest pair; 0: none yet
    done = torch.zeros(n, dtype=torch.bool, device=z.device)
    for it in range(max_iter):
        free = ~(((z <= 0) & (g > 0)) | ((z >= 1) & (g < 0)))
        q = g * free
        done |= q.abs().amax(1) <= pgtol  # projected gradient small: converged (scipy's pgtol)
        if done.all():
            break
        slots = [(it - 1 - k) % memory for k in range(min(it, memory))]  # newest first
        alphas = []
        for j in slots:
            a = torch.where(valid[j], rho[j] * (S[j] * q).sum(1), 0)
            q = q - a[:, None] * Y[j]
            alphas.append(a)
        first = 1 / q.norm(dim=1).clamp_min(1e-12)  # no pair yet: a unit-length first step
        r = q * torch.where(gamma > 0, gamma, first)[:, None]
        for j, a in zip(reversed(slots), reversed(alphas)):
            b = torch.where(valid[j], rho[j] * (Y[j] * r).sum(1), 0)
            r = r + (a - b)[:, None] * S[j]
        d = -r * free
        uphill = (d * g).sum(1) >= 0  # not a descent direction: fall back to the projected gradient
        d = torch.where(uphill[:, None], -g * free, d)
        # projected backtracking line search, batched over the images not yet accepted
        step = torch.ones(n, dtype=z.dtype, device=z.device)
        z_new, f_new, g_new = z.clone(), f.clone(), g.clone()
        pending = ~done
        for _ in range(max_halvings):
            rows = pending.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            trial = (z[rows] + step[rows, None] * d[rows]).clamp(0, 1)
            f_t, g_t = value_and_grad(trial, rows)
            ok = f_t <= f[rows] + 1e-4 * (g[rows] * (trial - z[rows])).sum(1)
            took = rows[ok]
            z_new[took], f_new[took], g_new[took] = trial[ok], f_t[ok], g_t[ok]
            pending[took] = False
            step[rows[~ok]] *= 0.5
        s_k, y_k = z_new - z, g_new - g
        sy, yy = (s_k * y_k).sum(1), (y_k * y_k).sum(1)
        slot = it % memory
        keep = ~pending & (sy > 1e-10 * yy.clamp_min(1e-30))
        S[slot], Y[slot], valid[slot] = s_k, y_k, keep
        rho[slot] = torch.where(keep, 1 / sy.where(keep, torch.ones_like(sy)), 0)
        gamma = torch.where(keep, sy / yy.clamp_min(1e-30), gamma)
        stalled = (f - f_new) <= ftol * torch.maximum(f.abs(), f_new.abs()).clamp_min(1)  # scipy's factr test
        done |= pending | stalled  # no acceptable step, or no progress at this precision
        z, f, g = z_new, f_new, g_new
    return z.view(shape).clamp(0, 1).detach()


def lbfgs(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, c_init: float = 1.0, search_steps: int = 8,
          max_iter: int = 100, batched: bool = True, solver: Literal["torch", "scipy"] = "torch",
          loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """The box-constrained L-BFGS attack of Szegedy et al. (2014), Section 4.1, for target labels.

    For each image x_i and target t_i it minimizes  c_i |r|^2 + loss(model(x_i + r), t_i)  subject to
    x_i + r in [0, 1] with L-BFGS-B (scipy), and searches c_i per image: a larger c penalizes the
    distortion more, so the search keeps the largest c (geometric bisection, starting at c_init and
    moving by factors of 10 until bracketed) whose minimizer still reaches the target, i.e. the
    smallest-distortion adversarial example found. (The paper's phrase is "the minimum c > 0"; with
    the penalty written on |r| the useful bracket is the same one.) The squared L2 norm is used so
    that the objective is smooth at r = 0.

    solver="torch" (default) runs a projected L-BFGS on the device with separate curvature memory,
    step and active set for every image, batched over the images. solver="scipy" runs scipy's
    L-BFGS-B: with batched=True all images form one joint separable problem (one scipy call, one
    batched forward/backward pass per evaluation; its curvature memory and line search are shared,
    and its host-side cost grows with N x pixels); batched=False loops over the images in Python,
    one L-BFGS-B per image, the paper's procedure and the benchmark's reference. x: (N, ...) in [0, 1]; target: (N,) int64. Returns x_adv
    (N, ...) in [0, 1]; images for which no c reached the target return the attempt at the smallest c
    tried, so check success with model(x_adv).argmax(1) == target. The model's mode and parameter
    gradients are left alone.
    """
    _check(model, x, target, 0.0, "target")
    if c_init <= 0 or search_steps < 1 or max_iter < 1:
        raise ValueError(f"c_init must be > 0 and search_steps, max_iter >= 1, got {c_init}, {search_steps}, {max_iter}")
    if solver not in ("torch", "scipy"):
        raise ValueError(f"solver must be 'torch' or 'scipy', got {solver!r}")
    if not batched:
        return torch.cat([lbfgs(model, x[i : i + 1], target[i : i + 1], c_init=c_init, search_steps=search_steps,
                                max_iter=max_iter, solver=solver, loss_fn=loss_fn) for i in range(len(x))])
    solve = _lbfgs_box if solver == "torch" else _lbfgs_b
    n = len(x)
    c = torch.full((n,), float(c_init), dtype=torch.float64)
    lo = torch.zeros(n, dtype=torch.float64)
    hi = torch.full((n,), float("inf"), dtype=torch.float64)
    best = x.detach().clone()
    best_dist = torch.full((n,), float("inf"), dtype=torch.float64)
    for _ in range(search_steps):
        x_adv = solve(model, x, target, c, max_iter, loss_fn)
        with torch.no_grad():
            success = (model(x_adv).argmax(1) == target).cpu()
            dist = (x_adv - x).flatten(1).pow(2).sum(1).double().cpu()
        better = success & (dist < best_dist)
        never = torch.isinf(best_dist) & ~success  # keep the most aggressive failed attempt meanwhile
        take = (better | never).to(x.device)
        best[take] = x_adv[take]
        best_dist = torch.where(better, dist, best_dist)
        lo = torch.where(success, c, lo)
        hi = torch.where(success, hi, c)
        c = torch.where(torch.isinf(hi), c * 10, torch.where(lo == 0, c / 10, (lo * hi).sqrt()))
    return best.detach()
