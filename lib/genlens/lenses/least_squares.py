"""Implicit regularization of SGD on linear least squares (Zhang et al. 2017, Section 5).

For min_w ||X w - Y||^2 with more features than points, SGD started at w = 0 only ever adds
multiples of data rows to w, so it stays in the row space of X and, if it interpolates, it lands
on the minimum-norm interpolating solution X^+ Y: the one the pseudo-inverse gives.
"""
from __future__ import annotations

import math

import torch

from ..core.nn import check_tensor


def _check_problem(X: torch.Tensor, Y: torch.Tensor) -> None:
    check_tensor(X, "X (N, D)", ndim=2, floating=True)
    check_tensor(Y, "Y (N, K)", ndim=2, floating=True, device=X.device)
    if len(Y) != len(X):
        raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")


def random_fourier_features(x: torch.Tensor, num_features: int, bandwidth: float, *,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """phi(x) = sqrt(2/D) cos(x W + c), W ~ N(0, 1/bandwidth^2), c ~ U[0, 2pi): x (N, ...) -> (N, D).

    phi(x).phi(x') approximates the Gaussian kernel exp(-|x - x'|^2 / (2 bandwidth^2)) (Rahimi &
    Recht 2007), the kernel of the paper's Section 5; the features are drawn once from `generator` (CPU).
    """
    check_tensor(x, "x", floating=True)
    X = x.reshape(len(x), -1)
    W = (torch.randn(X.shape[1], num_features, generator=generator) / bandwidth).to(X)
    c = (torch.rand(num_features, generator=generator) * 2 * math.pi).to(X)
    return (2.0 / num_features) ** 0.5 * torch.cos(X @ W + c)


def min_norm_solution(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares solution X^+ Y, in float64. X: (N, D), Y: (N, K) -> (D, K)."""
    _check_problem(X, Y)
    return torch.linalg.pinv(X.double()) @ Y.double()


def sgd_least_squares(X: torch.Tensor, Y: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[float]]:
    """Minibatch SGD on 0.5 * mean ||X w - Y||^2 from w = 0; returns (w (D, K), train MSE per epoch).

    X: (N, D), Y: (N, K). `lr` is the step per minibatch on the mean loss; choose it below
    2 / lambda_max(X^T X / N) (see `max_step`). Batch order is drawn from `generator` (CPU).
    """
    _check_problem(X, Y)
    N, D = X.shape
    w = torch.zeros(D, Y.shape[1], dtype=X.dtype, device=X.device)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(N, generator=generator).to(X.device)
        for i in range(0, N, batch_size):
            idx = order[i : i + batch_size]
            residual = X[idx] @ w - Y[idx]  # (B, K)
            w -= lr * X[idx].T @ residual / len(idx)
        losses.append(((X @ w - Y) ** 2).sum(1).mean().item())
    return w, losses


def max_step(X: torch.Tensor) -> float:
    """lambda_max(X^T X / N): SGD on the mean squared loss is stable for lr < 2 / this."""
    return torch.linalg.matrix_norm(X.double(), ord=2).item() ** 2 / len(X)


def row_space_residual(X: torch.Tensor, w: torch.Tensor) -> float:
    """||w - P w|| / ||w||, P the projector on the row space of X (N, D): 0 when w = X^T alpha."""
    Q, _ = torch.linalg.qr(X.double().T)  # (D, N) orthonormal basis of the row space
    wd = w.double()
    return ((wd - Q @ (Q.T @ wd)).norm() / wd.norm().clamp_min(1e-300)).item()


def median_distance(x: torch.Tensor) -> float:
    """Median Euclidean distance between distinct rows of x (N, ...) flattened to (N, D), N <= 5,000: a kernel bandwidth scale.

    >>> median_distance(torch.tensor([[0.0], [1.0], [3.0]]))
    2.0
    """
    check_tensor(x, "x", floating=True)
    X = x.reshape(len(x), -1).double()
    if len(X) < 2:
        raise ValueError(f"x needs at least 2 rows, got {len(X)}")
    i, j = torch.triu_indices(len(X), len(X), offset=1)
    return torch.quantile(torch.cdist(X, X)[i, j], 0.5).item()  # the usual median (mean of the middle two)


def gabor_bank(size: int, wavelengths: tuple[float, ...], n_orientations: int, *,
               sigma_ratio: float = 0.5) -> torch.Tensor:
    """Even (cosine, zero-mean) and odd (sine) Gabor filters: (2 P, 1, size, size) float64, P = len(wavelengths) * n_orientations.

    Filter p = (wavelength lam, angle theta = k pi / n_orientations) is exp(-(u'^2 + v'^2) / (2 sigma^2)) times
    cos (rows 0..P-1) or sin (rows P..2P-1) of 2 pi u' / lam, with u' = u cos theta + v sin theta
    (u the column, v the row offset from the centre) and sigma = sigma_ratio * lam. The preprocessing of the
    minimum-norm experiment of Zhang et al. (2017), Section 5 (a wavelet transform there; see `gabor_features`).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number of pixels, got {size}")
    if not wavelengths or min(wavelengths) <= 0 or n_orientations < 1:
        raise ValueError(f"need positive wavelengths and n_orientations >= 1, got {wavelengths}, {n_orientations}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    v, u = torch.meshgrid(r, r, indexing="ij")  # v: row offset, u: column offset
    even, odd = [], []
    for lam in wavelengths:
        for k in range(n_orientations):
            theta = math.pi * k / n_orientations
            up = u * math.cos(theta) + v * math.sin(theta)
            envelope = torch.exp(-(u**2 + v**2) / (2 * (sigma_ratio * lam) ** 2))
            e = envelope * torch.cos(2 * math.pi * up / lam)
            even.append(e - envelope * (e.sum() / envelope.sum()))  # zero mean: no response to flat regions
            odd.append(envelope * torch.sin(2 * math.pi * up / lam))
    return torch.stack(even + odd)[:, None]


def gabor_features(x: torch.Tensor, bank: torch.Tensor, *, pool: int) -> torch.Tensor:
    """Local Gabor energy: x (N, 1, H, W) -> (N, P * (H // pool) * (W // pool)).

    Correlates each image with the even and odd filters of `bank` (`gabor_bank`, zero padding, same size),
    takes the modulus sqrt(even^2 + odd^2) of each pair and averages it over pool x pool blocks.
    """
    check_tensor(x, "x (N, 1, H, W)", ndim=4, floating=True)
    if x.shape[1] != 1:
        raise ValueError(f"x must have 1 channel, got shape {tuple(x.shape)}")
    check_tensor(bank, "bank (2P, 1, k, k)", ndim=4, floating=True)
    if bank.shape[0] % 2 or bank.shape[1] != 1:
        raise ValueError(f"bank must be (2P, 1, k, k) as gabor_bank makes it, got shape {tuple(bank.shape)}")
    resp = torch.nn.functional.conv2d(x.to(bank.dtype), bank.to(x.device), padding=bank.shape[-1] // 2)
    P = bank.shape[0] // 2
    energy = (resp[:, :P] ** 2 + resp[:, P:] ** 2).sqrt()
    return torch.nn.functional.avg_pool2d(energy, pool).reshape(len(x), -1)
