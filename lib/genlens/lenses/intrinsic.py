"""Intrinsic dimension of data representations (Ansuini, Laio, Macke, Zoccolan, NeurIPS 2019).

TwoNN (Facco, d'Errico, Rodriguez, Laio, Sci. Rep. 2017) estimates the intrinsic dimension d of
points x_1..x_N from each point's distances r1 < r2 to its first and second nearest neighbours:
on a locally uniform d-dimensional manifold mu = r2 / r1 follows a Pareto law,
F(mu) = 1 - mu^(-d), so -log(1 - F(mu)) = d log(mu) is a line through the origin whose slope is d.

The estimate follows the paper's code (ansuini/IntrinsicDimDeep, ``IDNN/intrinsic_dimension.py``):

1. drop points with r1 = 0 (duplicates) and points with r1 = r2 (ties);
2. sort mu over the N kept points, F_emp(mu_(i)) = i / N;
3. leave out the last two points (where 1 - F_emp is 0 or tiny), then fit the line through the origin
   on the first floor(N * (1 - discard_fraction)) of them (least squares, no intercept): the slope is d.

Distances are found in tiles on the data's device (matrix products, as ``torch.cdist`` computes
them, + ``topk``); wherever the cancellation error of that formula could matter (duplicates, ties,
near-ties) the candidate neighbours are re-measured directly, ``||x_i - x_j||``, so duplicates give
exactly r1 = 0 and ties exactly r1 = r2, as with the paper's ``scipy`` distance matrix.

Used by the ``intrinsic`` chapter.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from ..core.nn import check_tensor

__all__ = ["TwoNNResult", "ResampledID", "BlockAnalysis", "Neighbors", "nearest_neighbors", "twonn_from_distances",
           "twonn_fit", "twonn", "twonn_resampled", "block_analysis", "pca_spectrum", "pca_id", "probe_layers",
           "gaussian_like", "Curvature", "curvature_resampled", "paired_ratios", "percentile_interval",
           "pearson_bootstrap"]

_CANDIDATES = 8  # extra neighbours kept from the matrix-product search before exact re-measuring
_BLOCK_ELEMENTS = 1 << 24  # elements of one distance block (64 MB in float32)
_TILE = 1024  # side of one tile of the distance matrix
_REFINE_TOL = 1e-4  # relative to |x_i|^2 + max |x|^2: below it a squared distance or gap is re-measured


@dataclass(frozen=True)
class TwoNNResult:
    """A TwoNN fit.

    dimension: the slope d; r: Pearson correlation of the fitted points (log mu, -log(1 - F));
    n_points: points given; n_duplicates: points with r1 = 0; n_ties: points with r1 = r2 > 0;
    n_fit: points in the line fit; log_mu, neg_log_survival: (N_kept - 2,) float64 CPU tensors,
    the x and y of the plot (the first ``n_fit`` entries were fitted).
    """

    dimension: float
    r: float
    n_points: int
    n_duplicates: int
    n_ties: int
    n_fit: int
    log_mu: torch.Tensor
    neg_log_survival: torch.Tensor

    @property
    def n_dropped(self) -> int:
        return self.n_duplicates + self.n_ties


@dataclass(frozen=True)
class ResampledID:
    """TwoNN over random subsamples: mean and standard deviation (ddof = 0) of the ``samples``."""

    mean: float
    std: float
    samples: tuple[float, ...]


@dataclass(frozen=True)
class BlockAnalysis:
    """TwoNN against sample size: for ``blocks[i]`` disjoint subsets of ``n_points[i]`` points each,
    the ``mean`` and ``std`` (ddof = 0, 0 for one block) of their estimates."""

    blocks: tuple[int, ...]
    n_points: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Neighbors:
    """Each point's k nearest other points: distances (N, k) ascending, in x's units and dtype, and
    their indices (N, k) int64, on x's device."""

    distances: torch.Tensor
    indices: torch.Tensor


# --------------------------------------------------------------------------- checks

def _check_points(x: torch.Tensor, name: str = "x", min_points: int = 3) -> torch.Tensor:
    """x (N, D) as floating point, or a one-line error naming `name`."""
    check_tensor(x, name, ndim=2)
    if len(x) < min_points:
        raise ValueError(f"{name} needs at least {min_points} points, got {len(x)}")
    if not x.is_floating_point():
        x = x.float()
    return x


def _check_fraction(value: float, name: str, low_open: bool = False) -> None:
    ok = (0.0 < value if low_open else 0.0 <= value) and value < 1.0
    if not ok:
        raise ValueError(f"{name} must be in {'(0' if low_open else '[0'}, 1), got {value}")


# --------------------------------------------------------------------------- neighbours

def _exact_distances(x: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """||x[rows[i]] - x[cand[i, j]]|| measured directly, in blocks. rows (B,), cand (B, C) -> (B, C)."""
    B, C = cand.shape
    D = x.shape[1]
    step = max(1, _BLOCK_ELEMENTS // max(C * D, 1))
    out = torch.empty(B, C, device=x.device, dtype=x.dtype)
    for s in range(0, B, step):
        diff = x[rows[s:s + step], None, :] - x[cand[s:s + step]]  # (b, C, D)
        out[s:s + step] = torch.linalg.vector_norm(diff, dim=2)
    return out


def _finish(x: torch.Tensor, sq: torch.Tensor, rows: torch.Tensor, d2: torch.Tensor, cand: torch.Tensor,
            k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From approximate squared distances d2 (B, C) to candidates cand (B, C), ascending, of the points
    `rows` (B,) of x (N, D) (sq: (N,) squared norms after centring), the k nearest distances and
    indices (B, k).

    The matrix-product form |a|^2 + |b|^2 - 2 a.b loses about eps * (|a|^2 + |b|^2) to cancellation.
    Where that could matter (a first distance or a gap between the first k + 1 distances within
    _REFINE_TOL of that scale: duplicates, ties, near-ties) the candidates are measured directly.
    """
    scale = sq[rows] + sq.max()  # (B,)
    head = d2[:, : k + 1].clamp_min(0)  # (B, k + 1)
    gaps = torch.cat([head[:, :1], head.diff(dim=1)], dim=1)  # (B, k + 1)
    flag = (gaps < _REFINE_TOL * scale[:, None]).any(dim=1)  # (B,)
    dist = head[:, :k].sqrt()
    idx = cand[:, :k].clone()
    if flag.any():
        f = flag.nonzero().squeeze(1)
        exact = _exact_distances(x, rows[f], cand[f])  # (F, C), from the raw coordinates
        exact, order = exact.sort(dim=1)
        dist[f] = exact[:, :k]
        idx[f] = cand[f].gather(1, order[:, :k])
    return dist, idx


def _center(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xc = x - x.mean(0, keepdim=True)  # distances are shift-invariant; centring limits cancellation
    return xc, (xc * xc).sum(1)


def _merge(best_d: torch.Tensor, best_i: torch.Tensor, d: torch.Tensor, cols: torch.Tensor, C: int):
    """Merge a block of squared distances d (b, m) to points `cols` (m,) into running top-C lists (b, C)."""
    c = min(C, d.shape[1])
    v, j = d.topk(c, dim=1, largest=False)  # (b, c)
    v, i = torch.cat([best_d, v], 1), torch.cat([best_i, cols[j]], 1)  # (b, C + c)
    v, o = v.topk(C, dim=1, largest=False)
    return v, i.gather(1, o)


def nearest_neighbors(x: torch.Tensor, k: int = 2) -> Neighbors:
    """Distances and indices of each point's k nearest other points, ascending.

    Shapes: x (N, D) -> `Neighbors` of distances (N, k) and indices (N, k). A point is never its own neighbour; an identical copy of it is, at distance exactly 0.
    Squared distances come from tiles of matrix products (the form ``torch.cdist`` uses), each tile
    computed once and used for both of its row blocks (the matrix is symmetric); every point keeps
    its k + 8 best candidates with ``topk``; duplicates, ties and near-ties are then measured directly.
    """
    x = _check_points(x, min_points=k + 1)
    N, D = x.shape
    xc, sq = _center(x)
    C = min(N - 1, k + _CANDIDATES)
    T = min(N, _TILE)
    starts = list(range(0, N, T))
    best_d = torch.full((N, C), math.inf, device=x.device, dtype=x.dtype)
    best_i = torch.zeros((N, C), device=x.device, dtype=torch.long)
    cols = torch.arange(N, device=x.device)
    for a, s in enumerate(starts):
        I = slice(s, min(N, s + T))
        for t in starts[a:]:
            J = slice(t, min(N, t + T))
            d2 = torch.addmm(sq[None, J], xc[I], xc[J].T, alpha=-2).add_(sq[I, None])  # (|I|, |J|)
            if s == t:
                d2.fill_diagonal_(math.inf)  # a point is not its own neighbour
            best_d[I], best_i[I] = _merge(best_d[I], best_i[I], d2, cols[J], C)
            if s != t:
                best_d[J], best_i[J] = _merge(best_d[J], best_i[J], d2.T.contiguous(), cols[I], C)  # rows: fast topk
    return Neighbors(*_finish(x, sq, torch.arange(N, device=x.device), best_d, best_i, k))


# --------------------------------------------------------------------------- TwoNN

def twonn_from_distances(r1: torch.Tensor, r2: torch.Tensor, discard_fraction: float = 0.1) -> TwoNNResult:
    """TwoNN from first and second nearest-neighbour distances r1, r2 (N,), as in the paper's code.

    Points with r1 = 0 or r1 = r2 are dropped (counted in the result); the fit uses the first
    floor(N_kept * (1 - discard_fraction)) of the N_kept - 2 smallest ratios mu = r2 / r1.
    """
    _check_fraction(discard_fraction, "discard_fraction")
    if r1.shape != r2.shape or r1.ndim != 1:
        raise ValueError(f"r1 and r2 must be 1-D of one length, got shapes {tuple(r1.shape)}, {tuple(r2.shape)}")
    r1, r2 = r1.detach().double().cpu(), r2.detach().double().cpu()
    zero = r1 == 0
    tie = (r1 == r2) & ~zero
    good = ~(zero | tie)
    N = int(good.sum())
    if N < 4:
        raise ValueError(f"TwoNN needs at least 4 points with r1 > 0 and r1 != r2, got {N} "
                         f"({int(zero.sum())} duplicates, {int(tie.sum())} ties)")
    mu = (r2[good] / r1[good]).sort().values  # (N,)
    F = torch.arange(1, N + 1, dtype=torch.float64) / N
    xs = mu[:-2].log()  # (N - 2,)
    ys = -torch.log1p(-F[:-2])
    n_fit = min(int(math.floor(N * (1.0 - discard_fraction))), N - 2)
    fx, fy = xs[:n_fit], ys[:n_fit]
    d = float((fx * fy).sum() / (fx * fx).sum())
    cx, cy = fx - fx.mean(), fy - fy.mean()
    r = float((cx * cy).sum() / ((cx * cx).sum() * (cy * cy).sum()).sqrt())
    return TwoNNResult(d, r, len(r1), int(zero.sum()), int(tie.sum()), n_fit, xs, ys)


def twonn_fit(x: torch.Tensor, discard_fraction: float = 0.1) -> TwoNNResult:
    """TwoNN fit of points x (N, D): the dimension, the fit's Pearson r, dropped-point counts, the plot data."""
    dist = nearest_neighbors(x, 2).distances
    return twonn_from_distances(dist[:, 0], dist[:, 1], discard_fraction)


def _warn_dropped(res: TwoNNResult) -> None:
    if res.n_dropped:
        warnings.warn(f"TwoNN dropped {res.n_duplicates} duplicate points (r1 = 0) and {res.n_ties} tied points "
                      f"(r1 = r2) of {res.n_points}", stacklevel=3)


def twonn(x: torch.Tensor, discard_fraction: float = 0.1) -> float:
    """The TwoNN intrinsic dimension of points x (N, D) (Facco et al. 2017, as Ansuini et al. 2019 fit it).

    discard_fraction: share of the largest ratios mu = r2 / r1 left out of the fit (the paper's 0.1).
    Duplicate (r1 = 0) and tied (r1 = r2) points are dropped with a warning that counts them.

    >>> g = torch.Generator().manual_seed(0)
    >>> plane = torch.randn(2000, 2, generator=g) @ torch.randn(2, 50, generator=g)
    >>> round(twonn(plane))
    2
    """
    res = twonn_fit(x, discard_fraction)
    _warn_dropped(res)
    return res.dimension


def _pairwise(xc: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """(N, N) matrix-product squared distances with +inf on the diagonal (only to pick candidates)."""
    N = len(xc)
    out = torch.empty(N, N, device=xc.device, dtype=xc.dtype)
    step = max(1, _BLOCK_ELEMENTS // N)
    for s in range(0, N, step):
        out[s:s + step] = torch.addmm(sq[None, :], xc[s:s + step], xc.T, alpha=-2).add_(sq[s:s + step, None])
    out.fill_diagonal_(math.inf)
    return out


def _subset_twonn(x: torch.Tensor, sq: torch.Tensor, full: torch.Tensor, subset: torch.Tensor,
                  discard_fraction: float) -> TwoNNResult:
    """TwoNN on the points `subset` (n,) using the precomputed squared-distance matrix `full` (N, N)."""
    sub = full[subset][:, subset]  # (n, n)
    C = min(len(subset) - 1, 2 + _CANDIDATES)
    d2, j = sub.topk(C, dim=1, largest=False)  # (n, C)
    dist, _ = _finish(x, sq, subset, d2, subset[j], 2)
    return twonn_from_distances(dist[:, 0], dist[:, 1], discard_fraction)


def twonn_resampled(x: torch.Tensor, n_resamples: int = 50, subsample: float = 0.9, discard_fraction: float = 0.1,
                    *, generator: torch.Generator | None = None) -> ResampledID:
    """TwoNN over `n_resamples` random subsets of round(subsample * N) points (the paper's error bars).

    x (N, D); the (N, N) distance matrix is computed once on x's device and reused.
    """
    x = _check_points(x)
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample must be in (0, 1], got {subsample}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    N = len(x)
    n = int(round(N * subsample))
    xc, sq = _center(x)
    full = _pairwise(xc, sq)
    samples = []
    for _ in range(n_resamples):
        subset = torch.randperm(N, generator=generator)[:n].to(x.device)
        samples.append(_subset_twonn(x, sq, full, subset, discard_fraction).dimension)
    t = torch.tensor(samples, dtype=torch.float64)
    return ResampledID(float(t.mean()), float(t.std(unbiased=False)), tuple(samples))


def block_analysis(x: torch.Tensor, blocks: Iterable[int] = range(1, 21), discard_fraction: float = 0.1, *,
                   generator: torch.Generator | None = None) -> BlockAnalysis:
    """The paper's scale check: for each b in `blocks`, split a random permutation of the N points
    into b disjoint subsets of floor(N / b) points and estimate TwoNN on each.

    A dimension that stays put as the subsets shrink (the neighbourhoods grow) is a property of the
    data at that scale, not of the sample size. x (N, D); the (N, N) distance matrix is computed once.
    """
    x = _check_points(x)
    blocks = tuple(int(b) for b in blocks)
    N = len(x)
    if not blocks or min(blocks) < 1 or N // max(blocks) < 6:
        raise ValueError(f"blocks must be >= 1 and leave at least 6 points per block, got {blocks} for N={N}")
    xc, sq = _center(x)
    full = _pairwise(xc, sq)
    sizes, means, stds = [], [], []
    for b in blocks:
        m = N // b
        perm = torch.randperm(N, generator=generator)[: m * b].to(x.device)
        ds = torch.tensor([_subset_twonn(x, sq, full, part, discard_fraction).dimension for part in perm.split(m)],
                          dtype=torch.float64)
        sizes.append(m)
        means.append(float(ds.mean()))
        stds.append(float(ds.std(unbiased=False)))
    return BlockAnalysis(blocks, tuple(sizes), tuple(means), tuple(stds))


# --------------------------------------------------------------------------- PCA

def pca_spectrum(x: torch.Tensor, standardize: bool = True) -> torch.Tensor:
    """Explained-variance ratios of the principal components of x (N, D), descending: (min(N, D),) float64.

    standardize: scale every feature to unit variance first, as the paper's code does (sklearn's
    StandardScaler; constant features are left unscaled).
    """
    x = _check_points(x, min_points=2)
    xc = _standardized(x, standardize)
    N, D = xc.shape
    gram = xc @ xc.T if N <= D else xc.T @ xc  # (min(N, D),) eigenvalues are the squared singular values
    dev = "cpu" if gram.device.type == "mps" else gram.device  # eigvalsh in float64 (none on mps)
    eig = torch.linalg.eigvalsh(gram.to(dev, torch.float64)).flip(0).clamp_min(0)
    return (eig / eig.sum()).cpu()


def pca_id(x: torch.Tensor, threshold: float = 0.9, standardize: bool = True) -> int:
    """PC-ID: the number of principal components that together explain more than `threshold` of the
    variance of x (N, D). (The paper's code reports the 0-based index of that component, one less.)"""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    cumulative = pca_spectrum(x, standardize).cumsum(0)
    return int((cumulative <= threshold).sum()) + 1


def _standardized(x: torch.Tensor, standardize: bool) -> torch.Tensor:
    xc = x - x.mean(0, keepdim=True)
    if standardize:
        std = xc.std(0, unbiased=False, keepdim=True)
        xc = xc / torch.where(std > 0, std, torch.ones_like(std))
    return xc


def gaussian_like(x: torch.Tensor, standardize: bool = True, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """N points of a centred Gaussian with the PCA spectrum of x (N, D): the flat control of the paper's
    curvature test (their ``last_hidden_pca.py`` draws such an "ellipse" beside each representation).

    Its coordinates are independent normals along the principal axes, with variances equal to the
    covariance eigenvalues of x (features standardized first, as for `pca_id`): (N, min(N, D)) float64
    on the CPU. A linear (flat) cloud and its Gaussian twin have about the same TwoNN ID; data on a
    curved manifold have a much lower ID than their twin, which fills every direction PCA sees.
    """
    x = _check_points(x, min_points=2)
    xc = _standardized(x, standardize).double().cpu()
    N, D = xc.shape
    gram = xc @ xc.T if N <= D else xc.T @ xc
    var = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0) / N  # (min(N, D),) covariance eigenvalues
    return torch.randn(N, len(var), generator=generator, dtype=torch.float64) * var.sqrt()


@dataclass(frozen=True)
class Curvature:
    """Per-subsample TwoNN ID of the data, its PC-ID and the TwoNN ID of its `gaussian_like` twin."""

    twonn: tuple[float, ...]
    pca_id: tuple[int, ...]
    gaussian: tuple[float, ...]


def curvature_resampled(x: torch.Tensor, n_resamples: int = 50, subsample: float = 0.9, threshold: float = 0.9, *,
                        generator: torch.Generator | None = None) -> Curvature:
    """The paper's curvature test on `n_resamples` random subsets of round(subsample * N) points of x (N, D):
    on each subset the TwoNN ID, the PC-ID (`pca_id` at `threshold`) and the TwoNN ID of a fresh
    Gaussian with the subset's PCA spectrum (`gaussian_like`; drawn from `generator` too)."""
    x = _check_points(x)
    N = len(x)
    n = int(round(N * subsample))
    out: dict[str, list] = {"twonn": [], "pca_id": [], "gaussian": []}
    for _ in range(n_resamples):
        sub = x[torch.randperm(N, generator=generator)[:n].to(x.device)]
        out["twonn"].append(twonn_fit(sub).dimension)
        out["pca_id"].append(pca_id(sub, threshold))
        out["gaussian"].append(twonn_fit(gaussian_like(sub, generator=generator)).dimension)
    return Curvature(*(tuple(out[k]) for k in ("twonn", "pca_id", "gaussian")))


def paired_ratios(numerator: Iterable[float], denominator: Iterable[float]) -> list[float]:
    """numerator[i] / denominator[i] for paired estimates (e.g. two layers measured on the same subsets).

    >>> paired_ratios([2.0, 3.0], [1.0, 2.0])
    [2.0, 1.5]
    """
    a, b = [float(v) for v in numerator], [float(v) for v in denominator]
    if len(a) != len(b) or not a or min(b) <= 0:
        raise ValueError(f"need equally many values and positive denominators, got {len(a)} and {len(b)}")
    return [u / v for u, v in zip(a, b)]


def percentile_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean of resampled estimates (e.g. over 90% subsamples) and the central `level` range of them.

    Subsamples overlap, so their estimates are not independent replicates: the spread of the estimates
    themselves (not a standard error of their mean) is the uncertainty of one estimate.

    >>> m, (lo, hi) = percentile_interval(range(101))
    >>> m, round(lo, 9), round(hi, 9)
    (50.0, 2.5, 97.5)
    """
    t = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
    if t.numel() < 2:
        raise ValueError(f"need at least 2 values, got {t.numel()}")
    a = (1 - level) / 2
    lo, hi = torch.quantile(t, torch.tensor([a, 1 - a], dtype=torch.float64)).tolist()
    return float(t.mean()), (lo, hi)


def _pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson r along the last dimension."""
    cx, cy = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    return (cx * cy).sum(-1) / ((cx * cx).sum(-1) * (cy * cy).sum(-1)).sqrt()


def pearson_bootstrap(x: Iterable[float], y: Iterable[float], n_boot: int = 4000, level: float = 0.95, *,
                      generator: torch.Generator | None = None) -> tuple[float, tuple[float, float]]:
    """Pearson r of paired items (x_i, y_i) and its percentile-bootstrap interval over the items.

    Resamples that hold fewer than 3 distinct items (where r is +-1 or undefined) are left out.
    """
    xs = torch.as_tensor([float(v) for v in x], dtype=torch.float64)
    ys = torch.as_tensor([float(v) for v in y], dtype=torch.float64)
    if xs.shape != ys.shape or xs.numel() < 4:
        raise ValueError(f"need at least 4 paired values, got {xs.numel()} and {ys.numel()}")
    n = xs.numel()
    idx = torch.randint(0, n, (n_boot, n), generator=generator)
    distinct = torch.zeros(n_boot, n, dtype=torch.bool).scatter_(1, idx, True).sum(1)
    r = _pearson(xs[idx], ys[idx])
    r = r[(distinct >= 3) & torch.isfinite(r)]
    a = (1 - level) / 2
    lo, hi = torch.quantile(r, torch.tensor([a, 1 - a], dtype=torch.float64)).tolist()
    return float(_pearson(xs, ys)), (lo, hi)


# --------------------------------------------------------------------------- representations

def probe_layers(model: nn.Module) -> dict[str, str]:
    """The layers at which the paper measures a network of genlens.core.models, input side first:
    label -> module name for `genlens.core.nn.activations`.

    First the input itself ("input": ``":in"``, the input of the whole model), then: MLP: every
    hidden ReLU, then the output. SmallCNN, SmallVGG: every conv block's ReLU and every
    pooling, MnistCNN: each conv block (conv, pool, ReLU), the last hidden layer, the output. CIFAR ResNets / ResNet-18: the stem, every residual
    block, the last hidden layer (after global pooling) and the output; ZooCNN: the stem, every block, the last
    hidden layer, the output. The second-to-last entry
    is always the last hidden layer.
    """
    from ..core import models as M

    out: dict[str, str] = {"input": ":in"}
    if isinstance(model, M.MLP):
        relus = [n for n, m in model.net.named_children() if isinstance(m, nn.ReLU)]
        out.update({f"fc{i + 1}": f"net.{n}" for i, n in enumerate(relus)})
        out["output"] = f"net.{len(model.net) - 1}"
        return out
    if isinstance(model, (M.SmallCNN, M.SmallVGG)):
        conv = pool = 0
        for n, m in model.features.named_children():
            if isinstance(m, nn.ReLU):
                conv += 1
                out[f"conv{conv}"] = f"features.{n}"
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                pool += 1
                out[f"pool{pool}"] = f"features.{n}"
        out["last hidden"] = "fc:in"
        out["output"] = "fc"
        return out
    if isinstance(model, M.MnistCNN):  # the paper's MNIST layers: after each conv block, fc1, output
        out["conv1"] = "features.2"
        out["conv2"] = "features.5"
        out["last hidden"] = "fc:in"
        out["output"] = "fc"
        return out
    if isinstance(model, (M.CifarResNet, M.ResNet18)):
        out["stem"] = "bn1"
        out.update({f"block{i + 1}": f"layers.{i}" for i in range(len(model.layers))})
        out["last hidden"] = "fc:in"
        out["output"] = "fc"
        return out
    if isinstance(model, M.ZooCNN):
        out["stem"] = "stem"
        out.update({f"block{i + 1}": f"blocks.{i}" for i in range(len(model.blocks))})
        out["last hidden"] = "fc:in"
        out["output"] = "fc"
        return out
    raise ValueError(f"probe_layers knows MLP, SmallCNN, SmallVGG, MnistCNN, ZooCNN and the ResNets, got {type(model).__name__}")
