"""Adversarial attacks on classifiers whose inputs live in the box [0, 1].

A model's own preprocessing (normalization) is part of the model, so every attack works on raw
[0, 1] inputs and returns inputs in [0, 1]. Attacks never switch the model between train and eval
mode (the caller decides) and never touch parameter gradients: they differentiate with respect to
the input only. Radii are on the [0, 1] pixel scale: L-inf radius eps = 8/255 means every pixel
moves by at most 8 grey levels.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(x: torch.Tensor, eps: float) -> None:
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
    _check(x, eps)
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
    _check(x, eps)
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


@torch.no_grad()
def accuracy_under(model: nn.Module, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of `model` on attack(x, y), computed in batches; the model's mode is left as found."""
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        x_adv = attack(xb, yb)
        correct += (model(x_adv).argmax(1) == yb).sum().item()
    return correct / max(len(x), 1)
