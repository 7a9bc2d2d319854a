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
them, each tile read along its rows and its columns, with an exact grouped search for each point's
best candidates); wherever the cancellation error of that formula could matter (duplicates, ties,
near-ties) the point's neighbours are searched again exactly and measured directly, ``||x_i - x_j||``,
so duplicates give exactly r1 = 0 and ties exactly r1 = r2, as with the paper's ``scipy`` distance
matrix.

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

_CANDIDATES = 8  # extra neighbours of an exact search (float64 products) re-measured directly
_BLOCK_ELEMENTS = 1 << 24  # elements of one distance block (64 MB in float32)
_TILE = 1024  # side of one tile of the distance matrix
_DIAGONAL_MIN = 250  # points: below twice this a diagonal tile is multiplied whole
_GROUP = 16  # entries per group in a tile's search for its rows' smallest entries
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


def _exact_neighbors(x: torch.Tensor, xc: torch.Tensor, sq: torch.Tensor, rows: torch.Tensor,
                     domain: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest points among `domain` (n,) (all of x if None) of each point `rows` (F,), itself
    excluded, ascending: distances (F, k) measured directly as ||x_i - x_j|| in x's dtype, indices (F, k)
    into x. xc, sq: x centred (N, D) and its squared norms (N,).

    Each point's k + _CANDIDATES best candidates by matrix products against the whole domain are
    re-measured directly, so duplicates give exactly 0 and ties exactly equal distances.
    """
    dom = torch.arange(len(x), device=x.device) if domain is None else domain
    xd, sd = (xc, sq) if domain is None else (xc[domain], sq[domain])  # (n, D), (n,)
    C = min(len(dom) - 1, k + _CANDIDATES)
    dist = torch.empty(len(rows), k, device=x.device, dtype=x.dtype)
    idx = torch.empty(len(rows), k, device=x.device, dtype=torch.long)
    step = max(1, _BLOCK_ELEMENTS // len(dom))
    for s in range(0, len(rows), step):
        r = rows[s:s + step]
        d2 = torch.addmm(sd[None], xc[r], xd.T, alpha=-2).add_(sq[r, None])  # (b, n)
        d2.masked_fill_(dom[None, :] == r[:, None], math.inf)  # a point is not its own neighbour
        cand = dom[d2.topk(C, dim=1, largest=False).indices]  # (b, C) indices into x
        exact, order = _exact_distances(x, r, cand).sort(dim=1)
        dist[s:s + step] = exact[:, :k]
        idx[s:s + step] = cand.gather(1, order[:, :k])
    return dist, idx


def _finish(x: torch.Tensor, xc: torch.Tensor, sq: torch.Tensor, rows: torch.Tensor, d2: torch.Tensor,
            cand: torch.Tensor, k: int, domain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """From approximate squared distances d2 (B, C >= k + 1) to candidates cand (B, C), ascending, of the
    points `rows` (B,) of x (N, D) among the points `domain` (all of x if None), the k nearest distances
    and indices (B, k). xc, sq: x centred and its squared norms (N,).

    The matrix-product form |a|^2 + |b|^2 - 2 a.b loses about eps * (|a|^2 + |b|^2) to cancellation.
    Where that could reorder the first k + 1 candidates (a first distance or a gap between them within
    _REFINE_TOL of that scale: duplicates, ties, near-ties) the point's neighbours are searched again
    and measured directly (`_exact_neighbors`). Elsewhere every gap exceeds twice the error, so the
    first k candidates are the k nearest points, in order.
    """
    scale = sq[rows] + sq.max()  # (B,)
    head = d2[:, : k + 1].clamp_min(0)  # (B, k + 1)
    gaps = torch.cat([head[:, :1], head.diff(dim=1)], dim=1)  # (B, k + 1)
    flag = (gaps < _REFINE_TOL * scale[:, None]).any(dim=1)  # (B,)
    dist = head[:, :k].sqrt()
    idx = cand[:, :k].clone()
    if flag.any():
        f = flag.nonzero().squeeze(1)
        dist[f], idx[f] = _exact_neighbors(x, xc, sq, rows[f], domain, k)
    return dist, idx


def _center(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xc = x - x.mean(0, keepdim=True)  # distances are shift-invariant; centring limits cancellation
    return xc, (xc * xc).sum(1)


def _smallest_in_groups(values: torch.Tensor, mins: torch.Tensor, line: torch.Tensor, group: torch.Tensor,
                        member: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The c smallest entries of each line, exactly, found through group minima.

    mins (..., M): each line's group minima. Entry r of group q of a line lies at the flat position
    line[...] + group[q] + member[r] of `values` (line (...), group (M,), member (g,)). Returns values
    (..., c), ascending, and their flat positions (..., c).
    The c smallest entries lie in the c groups with the smallest minima: a group holding one of them
    has a minimum no larger than the c-th smallest entry, and at most c groups do (ties aside, where
    any choice gives equal values). Only those c * g entries are then ranked.
    """
    groups = mins.topk(c, dim=-1, largest=False).indices  # (..., c)
    pos = ((line[..., None] + group[groups])[..., None] + member).flatten(-2)  # (..., c g)
    vals, j = values.take(pos).topk(c, dim=-1, largest=False)
    return vals, pos.gather(-1, j)


def _rows_smallest(tiles: torch.Tensor, c: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The c smallest entries of each row of the tiles (m, T, T) laid side by side (T, m T): values
    (T, c), ascending, and columns (T, c) in 0 .. m T - 1. Group (t, q) of a row: columns q, q + G, ...
    of tile t (G = T / g), so that its minimum reduces over a middle axis, which vectorizes."""
    m, T, _ = tiles.shape
    G = T // g
    dev = tiles.device
    mins = tiles.view(m, T, g, G).amin(dim=2).transpose(0, 1).reshape(T, m * G)  # (T, m G)
    group = (torch.arange(m, device=dev)[:, None] * (T * T) + torch.arange(G, device=dev)).flatten()  # (m G,)
    line = torch.arange(T, device=dev) * T
    vals, pos = _smallest_in_groups(tiles, mins, line, group, torch.arange(g, device=dev) * G, c)
    return vals, pos // (T * T) * T + pos % T


def _columns_smallest(tiles: torch.Tensor, c: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The c smallest entries of each column of each tile (m, T, T): values (m, T, c), ascending, and rows
    (m, T, c). Group q of a column: rows q, q + G, ... (G = T / g), so that its minimum reduces over an
    outer axis, which vectorizes; no tile is transposed."""
    m, T, _ = tiles.shape
    G = T // g
    dev = tiles.device
    mins = tiles.view(m, g, G, T).amin(dim=1).transpose(1, 2).contiguous()  # (m, T columns, G)
    line = torch.arange(m, device=dev)[:, None] * (T * T) + torch.arange(T, device=dev)  # (m, T)
    group = torch.arange(G, device=dev) * T
    vals, pos = _smallest_in_groups(tiles, mins, line, group, torch.arange(g, device=dev) * (G * T), c)
    return vals, pos % (T * T) // T


def _diagonal_tile(xb: torch.Tensor, sb: torch.Tensor, out: torch.Tensor) -> None:
    """Squared distances among one block's points xb (T, D) (centred; squared norms sb (T,)) into out
    (T, T), +inf on the diagonal. The matrix is symmetric: the off-diagonal quarter is multiplied and
    mirrored, the two diagonal quarters recursively (down to _DIAGONAL_MIN points)."""
    T = len(xb)
    if T < 2 * _DIAGONAL_MIN:
        torch.addmm(sb[None], xb, xb.T, alpha=-2, out=out).add_(sb[:, None])
        out.fill_diagonal_(math.inf)  # a point is not its own neighbour
        return
    h = T // 2
    top = out[:h]  # (h, T), contiguous: its right part is the off-diagonal quarter
    torch.addmm(sb[None, h:], xb[:h], xb[h:].T, alpha=-2, out=top[:, h:]).add_(sb[:h, None])
    out[h:, :h] = top[:, h:].T
    for part in (slice(0, h), slice(h, T)):
        square = torch.empty(part.stop - part.start, part.stop - part.start, device=out.device, dtype=out.dtype)
        _diagonal_tile(xb[part], sb[part], square)
        out[part, part] = square


def nearest_neighbors(x: torch.Tensor, k: int = 2) -> Neighbors:
    """Distances and indices of each point's k nearest other points, ascending.

    Shapes: x (N, D) -> `Neighbors` of distances (N, k) and indices (N, k). A point is never its own
    neighbour; an identical copy of it is, at distance exactly 0.
    Squared distances come from T x T tiles of matrix products (the form ``torch.cdist`` uses), T <=
    _TILE: block a of points against itself and every later block, so each distance is computed once
    (the matrix is symmetric) and read along its rows (block a's candidates among the later blocks)
    and its columns (the later points' candidates among block a). Each read keeps k + 1 candidates by
    an exact search through group minima (`_smallest_in_groups`); the best k + 1 over all tiles are
    kept, and duplicates, ties and near-ties are searched again exactly (`_finish`).
    Memory: one strip of tiles, T * N entries of x's dtype, and (k + 1) * N * (N / T + 1) candidates of
    12 bytes (float32, k = 2; N = 5,000: 20 MB and 1 MB; N = 50,000: 200 MB and 90 MB).
    """
    x = _check_points(x, min_points=k + 1)
    N, D = x.shape
    xc, sq = _center(x)
    C = min(N - 1, k + 1)
    nb = -(-N // _TILE)  # blocks of points
    T = -(-N // (nb * _GROUP)) * _GROUP  # tile side: at most _TILE, a multiple of _GROUP, little padding
    g = _GROUP if C <= T // _GROUP else 1  # entries per group (groups of one: a plain search, for large k)
    n_pad = nb * T
    dev = x.device
    xp = torch.cat([xc, xc.new_zeros(n_pad - N, D)])  # padding points, infinitely far from every point
    sp = torch.cat([sq, sq.new_full((n_pad - N,), math.inf)])
    cand_d = torch.full((n_pad, nb + 1, C), math.inf, device=dev, dtype=x.dtype)  # 0: in own and later blocks;
    cand_i = torch.zeros((n_pad, nb + 1, C), device=dev, dtype=torch.long)  # 1 + a: in block a < own block
    tiles = torch.empty(nb, T, T, device=dev, dtype=x.dtype)
    for a in range(nb):
        I = slice(a * T, (a + 1) * T)
        _diagonal_tile(xp[I], sp[I], tiles[0])
        for b in range(a + 1, nb):
            torch.addmm(sp[None, b * T:(b + 1) * T], xp[I], xp[b * T:(b + 1) * T].T, alpha=-2,
                        out=tiles[b - a]).add_(sp[I, None])  # block a against block b
        v, j = _rows_smallest(tiles[:nb - a], C, g)
        cand_d[I, 0], cand_i[I, 0] = v, j + a * T
        if a + 1 < nb:
            v, j = _columns_smallest(tiles[1:nb - a], C, g)  # (nb - a - 1, T, C)
            cand_d[(a + 1) * T:, 1 + a], cand_i[(a + 1) * T:, 1 + a] = v.flatten(0, 1), j.flatten(0, 1) + a * T
    d, j = cand_d[:N].flatten(1).topk(C, dim=1, largest=False)
    idx = cand_i[:N].flatten(1).gather(1, j)
    return Neighbors(*_finish(x, xc, sq, torch.arange(N, device=dev), d, idx, k))


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


def _subset_twonn(x: torch.Tensor, xc: torch.Tensor, sq: torch.Tensor, full: torch.Tensor, subset: torch.Tensor,
                  discard_fraction: float) -> TwoNNResult:
    """TwoNN on the points `subset` (n,) using the precomputed squared-distance matrix `full` (N, N)."""
    sub = full[subset][:, subset]  # (n, n)
    d2, j = sub.topk(min(len(subset) - 1, 3), dim=1, largest=False)  # (n, 3)
    dist, _ = _finish(x, xc, sq, subset, d2, subset[j], 2, domain=subset)
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
        samples.append(_subset_twonn(x, xc, sq, full, subset, discard_fraction).dimension)
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
        ds = torch.tensor([_subset_twonn(x, xc, sq, full, part, discard_fraction).dimension for part in perm.split(m)],
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
