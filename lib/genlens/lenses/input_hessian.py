"""The Hessian of each example's loss with respect to its own input: the inner loop of robust training.

Yao, Gholami, Lei, Keutzer and Mahoney (NeurIPS 2018, Sec. 5) study the loss as a function of the
*input* as well as of the weights: an adversary maximises ``loss(model(x + delta), y)`` over delta,
so the curvature of the loss in x decides how hard that inner problem is. For a network that is
piecewise linear in its input (ReLU, max-pooling, eval-mode BatchNorm) followed by softmax
cross-entropy, the input Hessian is ``J^T H_s J`` almost everywhere (J: the Jacobian of the logits
with respect to x, ``H_s = diag(p) - p p^T`` the Hessian of cross-entropy in the logits), positive
semi-definite: the inner maximisation has no saddle points, the paper's "saddle-free" result.

`input_curvature` returns, for every example, the largest and smallest eigenvalue of its input
Hessian by Lanczos on batched input-Hessian-vector products (forward-over-reverse, one pass for a
whole batch of examples, each with its own Krylov space). Eigenvalues are in nats per squared input
unit (pixels on the [0, 1] scale). Shown in the chapter ``hessian``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nn import check_pair, eval_mode
from .krylov import lanczos, ritz

__all__ = ["InputCurvature", "input_hvp", "input_curvature"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def input_hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *,
              loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """Row i: H_i v_i, H_i the Hessian of example i's loss with respect to its input x_i.

    x, v: (B, ...) of one shape, y: (B,). The model must treat examples independently (it is
    evaluated in eval mode), so the Hessian of the summed loss is block-diagonal, one block per
    example, and one forward-over-reverse pass gives every block's product.
    """
    if v.shape != x.shape:
        raise ValueError(f"v must have the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")

    def total(inputs: torch.Tensor) -> torch.Tensor:
        return loss_fn(model(inputs), y) * len(inputs)  # the sum of the per-example losses (a mean loss_fn)

    with eval_mode(model):
        return torch.func.jvp(torch.func.grad(total), (x.detach(),), (v.to(x),))[1]


@dataclass(frozen=True)
class InputCurvature:
    """Per example: the extreme eigenvalues of its input Hessian and their residuals ||H u - theta u||.

    lambda_max, lambda_min, residual_max, residual_min: (N,) float64; steps: Lanczos steps per
    example (fewer where an example's Krylov space was exhausted: then the values are exact).
    """

    lambda_max: torch.Tensor
    lambda_min: torch.Tensor
    residual_max: torch.Tensor
    residual_min: torch.Tensor
    steps: int


def input_curvature(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], *, steps: int = 20,
                    loss_fn: LossFn = F.cross_entropy, batch_size: int = 250,
                    generator: torch.Generator | None = None) -> InputCurvature:
    """Largest and smallest eigenvalue of every example's input Hessian (`steps` Lanczos steps each).

    data: (x (N, ...), y (N,)); examples go `batch_size` at a time through one batched Lanczos (full
    reorthogonalization), each from its own random start drawn from `generator`.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 0])
    >>> c = input_curvature(net, (x, y), steps=3, generator=torch.Generator().manual_seed(0))
    >>> bool((c.lambda_min > -1e-6).all())  # ReLU + softmax cross-entropy: positive semi-definite
    True
    """
    x, y = check_pair(model, data)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        shape = xb.shape
        V0 = torch.randn(len(xb), xb[0].numel(), generator=generator, dtype=torch.float64).to(xb)
        V0 = V0 / V0.norm(dim=1, keepdim=True)

        def matvec(V: torch.Tensor) -> torch.Tensor:
            return input_hvp(model, xb, yb, V.view(shape), loss_fn=loss_fn).reshape(len(xb), -1)

        alpha, beta, _, lengths = lanczos(matvec, V0, steps)
        for a, b, n in zip(alpha, beta, lengths):
            theta, S = ritz(a[:n], b[:n])
            last = b[n - 1] * S[-1]
            out.append([theta[-1].item(), theta[0].item(), abs(last[-1]).item(), abs(last[0]).item()])
    hi, lo, r_hi, r_lo = torch.tensor(out, dtype=torch.float64).T
    return InputCurvature(hi, lo, r_hi, r_lo, min(steps, x[0].numel()))
