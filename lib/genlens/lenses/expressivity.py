"""Finite-sample expressivity (Zhang et al. 2017, Theorem 1 and its proof in Section 4/Appendix C).

There is a two-layer ReLU network with 2n + d weights that represents any labels y on any n points
of R^d with distinct projections: c(x) = sum_j w_j relu(<a, x> - b_j). Project the points on a
random direction a, sort the projections z_1 < ... < z_n, put one bias b_j between z_{j-1} and z_j;
then A_ij = relu(z_i - b_j) is lower triangular with a positive diagonal, and w = A^-1 y.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.nn import check_tensor


class TwoLayerInterpolant(nn.Module):
    """c(x) = relu(x @ a - b) @ w, with a: (d,), b: (n,), w: (n, K) -- exactly (2 + K - 1) n + d weights."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b, self.w = nn.Parameter(a), nn.Parameter(b), nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, d) or (N, C, H, W) -> (N, K)."""
        z = x.reshape(len(x), -1).to(self.a.dtype) @ self.a  # (N,)
        return torch.relu(z[:, None] - self.b[None, :]) @ self.w  # (N, K)


def fit_interpolant(x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
                    ) -> TwoLayerInterpolant:
    """Build the network of Theorem 1 that reproduces targets y (N,) or (N, K) on points x (N, ...).

    The direction a is drawn from `generator` (CPU). Solved in float64 by one triangular solve; raises
    ValueError if two points share a projection.

    >>> net = fit_interpolant(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([2.0, -1.0, 5.0]))
    >>> net(torch.tensor([[0.0], [1.0], [3.0]]))[:, 0].round(decimals=6).tolist()
    [2.0, -1.0, 5.0]
    """
    check_tensor(x, "x")
    check_tensor(y, "y", ndim=(1, 2), device=x.device)
    if len(y) != len(x):
        raise ValueError(f"y: {len(y)} targets for {len(x)} points")
    X = x.reshape(len(x), -1).double()  # (n, d)
    Y = (y if y.dim() == 2 else y[:, None]).double()  # (n, K)
    a = torch.randn(X.shape[1], generator=generator, dtype=torch.float64).to(X.device)
    z = X @ a  # (n,)
    order = z.argsort()
    zs = z[order]
    gaps = zs.diff()
    if (gaps <= 0).any():
        raise ValueError("two points share a projection (duplicate points?): Theorem 1 needs distinct points")
    b = torch.cat([zs[:1] - gaps.min(), (zs[1:] + zs[:-1]) / 2])  # b_1 < z_1 < b_2 < z_2 < ...
    A = torch.relu(zs[:, None] - b[None, :])  # (n, n) lower triangular, diagonal > 0
    w = torch.linalg.solve_triangular(A, Y[order], upper=False)  # (n, K)
    return TwoLayerInterpolant(a, b, w)
