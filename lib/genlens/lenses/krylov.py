"""Lanczos with full reorthogonalization, batched over independent rows: the Krylov core of the Hessian lenses.

`lanczos` builds one Krylov space per row of a (B, P) block of start vectors (one Hessian at many
points, many probe vectors, or one input Hessian per image); `ritz` turns a row's tridiagonal
coefficients into Ritz values and vectors. Used by :mod:`genlens.lenses.hessian` (weight space) and
:mod:`genlens.lenses.input_hessian` (input space).
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["random_unit", "lanczos", "ritz"]


def random_unit(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A random unit vector (n,) with the dtype and device of `like`, drawn (float64, on the CPU) from `generator`."""
    v = torch.randn(n, generator=generator, dtype=torch.float64).to(device=like.device, dtype=like.dtype)
    return v / v.norm()


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], V0: torch.Tensor, steps: int,
            stop: Callable[[torch.Tensor, torch.Tensor], bool] | None = None):
    """Lanczos with full reorthogonalization, one Krylov space per row of the unit rows V0 (B, P).

    matvec maps (B, P) -> (B, P) row by row. A row whose next vector vanishes (its Krylov space is
    exhausted) stops there; stop(alpha, beta) is asked after each step. Returns alpha, beta (B, j)
    float64 on the CPU (T_b = tridiag(beta_b[:-1], alpha_b, beta_b[:-1]) over the row's first
    lengths[b] steps), Q (B, j, P) and lengths (list of B ints); a finished row's Q is zero after its length.
    The basis is not zero-filled up front (a (B, steps, P) fill costs as much as a few HVPs of a small
    network when Lanczos stops early); every column that is read or returned has been written.
    """
    B, n = V0.shape
    steps = min(steps, n)
    Q = torch.empty(B, steps, n, dtype=V0.dtype, device=V0.device)  # column j is written before it is read
    alpha = torch.zeros(B, steps, dtype=torch.float64)
    beta = torch.zeros(B, steps, dtype=torch.float64)
    lengths = [steps] * B
    active = torch.ones(B, dtype=torch.bool)
    q = V0
    for j in range(steps):
        Q[:, j] = q
        w = matvec(q)
        alpha[:, j] = (w * q).sum(1).double().cpu()
        for _ in range(2):  # classical Gram-Schmidt, twice: keeps Q orthonormal to working precision
            w = w - torch.einsum("bj,bjp->bp", torch.einsum("bjp,bp->bj", Q[:, : j + 1], w), Q[:, : j + 1])
        beta[:, j] = w.norm(dim=1).double().cpu()
        for b in torch.nonzero(active).flatten().tolist():
            if beta[b, j] <= 1e-10 * max(alpha[b, : j + 1].abs().max().item(), 1e-30):
                active[b], lengths[b] = False, j + 1
        done = stop is not None and stop(alpha[:, : j + 1], beta[:, : j + 1])
        if done or not active.any():
            return alpha[:, : j + 1], beta[:, : j + 1], Q[:, : j + 1], [min(m, j + 1) for m in lengths]
        scale = torch.where(active, beta[:, j], torch.inf).to(w)  # a finished row continues with zeros
        q = w / scale[:, None]
    return alpha, beta, Q, lengths


def ritz(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values (j,) ascending and vectors S (j, j) of one row's tridiagonal matrix; alpha, beta (j,)."""
    T = torch.diag(alpha) + torch.diag(beta[:-1], 1) + torch.diag(beta[:-1], -1)
    return torch.linalg.eigh(T)
