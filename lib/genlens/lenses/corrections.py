"""Minimal, stable and symbolic corrections for ReLU networks (Zhang, Solar-Lezama & Singh, NeurIPS 2018).

A correction of an input x that a ReLU network f does not give the desired label t is a change
delta of the features the user marks as mutable such that f(x + delta) gives t:

* **minimal**: it minimizes the weighted L1 size sum_i w_i |delta_i| (w_i: cost of one unit of
  feature i, e.g. 1 / its standard deviation);
* **e-stable**: every point y with |y_i - (x + delta)_i| <= e on the mutable features (the L-inf
  box of radius e, in the features' own units) also gets t, with logit margin `margin`;
* **symbolic**: it is a whole region of inputs, a set of linear inequalities over the named
  mutable features, all of whose points get t.

Inside one activation region (a fixed on/off pattern of every ReLU) the network is affine, so the
minimal e-stable correction inside that region is a linear program (solved here by scipy's HiGHS).
`correct` searches activation regions best-first, in order of a lower bound of their distance from
x, starting at x's own region and flipping one ReLU at a time (the paper's "neighbouring linear
regions", capped at `max_regions`, as the official code's MAX_NUM_REGIONS = 100). The search stops
when no region left in the queue can hold a cheaper correction than the best found. The queue's key
of a neighbour is the largest weighted L1 distance from x to one of its first-layer halfspaces; the
first layer's hyperplanes are the same in every region, so the key is a valid lower bound of the
neighbour's distance at any depth. Every region closer than the answer is reached through regions
closer than it (those crossed by the straight path to it), and crossing a facet flips exactly one
unit (regions in general position), so with `neighbours="facets"` a search that ends by its bound
returns the global minimum at any depth: `Correction.exact` then means *proven minimal* (tested
against enumerating every region of a one-hidden-layer network and against dense grids for deeper
ones). It is False when the budget cut the search or with `neighbours="active"` (a local search).
The symbolic construction of the paper (a union of neighbouring regions, a triangle inside it, the
nearest stable box) is in `genlens.lenses.corrections_polaris`.

Symbols: A x + c are the logits in a region (A: (K, d)), G x + g the pre-activations of all hidden
units (G: (H, d), H = total hidden units), s = +1/-1 the region's pattern. Activation patterns and
the local affine maps are computed in torch, batched over inputs or patterns; the LPs run in scipy
on the CPU. Shown in the chapter `corrections`.
"""
from __future__ import annotations

import heapq
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linprog
from scipy.spatial import HalfspaceIntersection
from torch import nn

from ..core.cache import Cache
from ..core.data import TabularData
from ..core.nn import check_model, check_tensor, eval_mode, model_device
from ..core.train import History, TrainConfig, predict, train_cached

__all__ = ["ReluNet", "relu_net", "fold_standardization", "activation_patterns", "local_affine", "Correction",
           "correct", "correct_many", "process_pool", "stable_fraction", "check_region", "verified", "SymbolicRegion",
           "symbolic_region", "salient_features", "grid_correction", "fit_tabular", "rejected"]

_TOL = 1e-7  # slack for LP round-off when re-checking constraints


# ----------------------------------------------------------------------------- the network as matrices

@dataclass(frozen=True)
class ReluNet:
    """A fully connected ReLU network as float64 tensors: hidden layers (W_l, b_l), then the output layer.

    Shapes: weights[l] (h_l, h_{l-1}) with h_0 = d input features; the last entry is the (K, h_L) output layer.
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]

    @property
    def in_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def hidden(self) -> int:
        """H, the number of hidden units (length of an activation pattern)."""
        return int(sum(w.shape[0] for w in self.weights[:-1]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) of inputs x (N, d), in float64."""
        h = x.to(torch.float64)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.relu(h @ w.T + b)
        return h @ self.weights[-1].T + self.biases[-1]


def relu_net(model: nn.Module | ReluNet) -> ReluNet:
    """Read a Sequential of Flatten / Linear / ReLU modules (nested Sequentials allowed, e.g. `models.MLP`)."""
    if isinstance(model, ReluNet):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or ReluNet, got {type(model).__name__}")
    mods = [m for m in model.modules() if not list(m.children())]  # leaf modules, in order
    weights, biases, expect_linear = [], [], True
    for m in mods:
        if isinstance(m, nn.Flatten) or (isinstance(m, nn.Dropout)):
            continue
        if isinstance(m, nn.Linear):
            if not expect_linear:
                raise TypeError("model: two Linear layers without a ReLU between them")
            weights.append(m.weight.detach().to("cpu", torch.float64))
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
            biases.append(bias.detach().to("cpu", torch.float64))
            expect_linear = False
        elif isinstance(m, nn.ReLU):
            if expect_linear:
                raise TypeError("model: a ReLU must follow a Linear layer")
            expect_linear = True
        else:
            raise TypeError(f"model: only Flatten, Linear and ReLU layers are supported, got {type(m).__name__}")
    if not weights or expect_linear:
        raise TypeError("model must end with a Linear layer (the logits)")
    return ReluNet(tuple(weights), tuple(biases))


def fold_standardization(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> nn.Sequential:
    """A copy of `model` that takes raw features: its first Linear layer absorbs (x - mean) / std.

    mean, std: (d,). The result is a Sequential of Linear/ReLU layers on (N, d) raw inputs.
    """
    net = relu_net(model)
    mean, std = mean.to(torch.float64).cpu(), std.to(torch.float64).cpu()
    if mean.shape != (net.in_features,) or std.shape != (net.in_features,):
        raise ValueError(f"mean and std must have shape ({net.in_features},), got {tuple(mean.shape)}, {tuple(std.shape)}")
    if (std <= 0).any():
        raise ValueError("std must be positive")
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        if i == 0:
            w, b = w / std, b - (w / std) @ mean
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w.float())
            lin.bias.copy_(b.float())
        layers += [lin, nn.ReLU()] if i < len(net.weights) - 1 else [lin]
    return nn.Sequential(*layers).eval()


def activation_patterns(model: nn.Module | ReluNet, x: torch.Tensor) -> torch.Tensor:
    """On/off pattern (N, H) bool of every hidden ReLU (pre-activation > 0) for inputs x (N, d), batched."""
    net = relu_net(model)
    h = x.reshape(len(x), -1).to("cpu", torch.float64)
    if h.shape[1] != net.in_features:
        raise ValueError(f"x must have {net.in_features} features per row, got shape {tuple(x.shape)}")
    out = []
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ w.T + b  # (N, h_l)
        out.append(z > 0)
        h = torch.relu(z)
    return torch.cat(out, dim=1) if out else torch.zeros(len(h), 0, dtype=torch.bool)


def local_affine(model: nn.Module | ReluNet, patterns: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The affine pieces of the network in the regions of `patterns` (P, H) bool, batched over P.

    Returns A (P, K, d), c (P, K) with logits A x + c, and G (P, H, d), g (P, H) with the
    pre-activations of all hidden units G x + g, valid for every x whose pattern is that row.
    """
    net = relu_net(model)
    if patterns.ndim != 2 or patterns.shape[1] != net.hidden:
        raise ValueError(f"patterns must have shape (P, {net.hidden}), got {tuple(patterns.shape)}")
    P, d = len(patterns), net.in_features
    M = torch.eye(d, dtype=torch.float64).expand(P, d, d)  # (P, h_{l-1}, d): map input -> layer input
    m = torch.zeros(P, d, dtype=torch.float64)  # (P, h_{l-1})
    Gs, gs, start = [], [], 0
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        Z, z = w @ M, m @ w.T + b  # (P, h_l, d), (P, h_l)
        Gs.append(Z)
        gs.append(z)
        on = patterns[:, start:start + w.shape[0]].to(torch.float64)  # (P, h_l)
        M, m = Z * on[:, :, None], z * on
        start += w.shape[0]
    A, c = net.weights[-1] @ M, m @ net.weights[-1].T + net.biases[-1]  # (P, K, d), (P, K)
    if not Gs:  # no hidden layer: one region
        return A, c, torch.zeros(P, 0, d, dtype=torch.float64), torch.zeros(P, 0, dtype=torch.float64)
    return A, c, torch.cat(Gs, dim=1), torch.cat(gs, dim=1)


# ----------------------------------------------------------------------------- minimal, stable corrections

@dataclass(frozen=True)
class Correction:
    """The result of `correct` for one input.

    x, delta: (d,) float64 (delta is zero on immutable features; None when nothing was found); eps:
    (d,) the stability radius per feature (0 on immutable ones);
    cost: weighted L1 size sum_i w_i |delta_i| (inf if none found); exact: the search ended by its
    bound or ran out of regions, not by the budget; regions: activation regions whose LP was solved;
    lps: linear programs solved; seconds: wall time. halfspaces (Hm, hm) describe, over the mutable
    features only, the polytope {y : Hm y <= hm} of points of the final region that get the target
    with the margin (e = 0): the raw material of a symbolic correction.
    """

    x: np.ndarray
    target: int
    delta: np.ndarray | None
    cost: float
    eps: np.ndarray
    margin: float
    mutable: np.ndarray
    exact: bool
    regions: int
    lps: int
    seconds: float
    pattern: np.ndarray | None
    halfspaces: tuple[np.ndarray, np.ndarray] | None

    @property
    def found(self) -> bool:
        return self.delta is not None

    @property
    def corrected(self) -> np.ndarray:
        """x + delta, (d,)."""
        if self.delta is None:
            raise ValueError("no correction was found for this input")
        return self.x + self.delta


def _affine_np(layers: list[tuple[np.ndarray, np.ndarray]], pattern: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`local_affine` for one pattern (H,) in numpy: A (K, d), c (K,), G (H, d), g (H,). The search calls
    it once per region, where torch's per-call overhead would dominate on such small matrices."""
    d = layers[0][0].shape[1]
    M, m = np.eye(d), np.zeros(d)
    Gs, gs, start = [np.zeros((0, d))], [np.zeros(0)], 0
    for w, b in layers[:-1]:
        Z, z = w @ M, w @ m + b  # (h_l, d), (h_l,)
        Gs.append(Z)
        gs.append(z)
        on = pattern[start:start + len(b)]
        M, m = Z * on[:, None], z * on
        start += len(b)
    return layers[-1][0] @ M, layers[-1][0] @ m + layers[-1][1], np.concatenate(Gs), np.concatenate(gs)


def _region_lp(A, c, G, g, s, x0, target, mut, w, lo, hi, margin, eps, with_class):
    """min sum w|delta| over delta on the mutable features, with the e-box around x0 + delta inside the
    region (s_j z_j >= e ||G_j||_1) and, if with_class, logit_t - logit_k >= margin + e ||A_t - A_k||_1.
    Variables [delta (m), u (m)]. Returns (cost, delta_m, (Hm, hm) polytope over y_m with e = 0) or None."""
    m = len(mut)
    Gm = G[:, mut]  # (H, m)
    zx = G @ x0 + g  # (H,)
    rows = [-s[:, None] * Gm]  # -s G_m delta <= s z(x0) - e ||G_m||_1
    em = eps[mut]  # (m,) box radius per mutable feature
    rhs = [s * zx - np.abs(Gm) @ em]
    if with_class:
        others = np.array([k for k in range(A.shape[0]) if k != target])
        D, dc = A[target] - A[others], c[target] - c[others]  # (K-1, d), (K-1,)
        Dm = D[:, mut]
        rows.append(-Dm)
        rhs.append(D @ x0 + dc - margin - np.abs(Dm) @ em)
    R, r = np.concatenate(rows), np.concatenate(rhs)
    eye = np.eye(m)
    A_ub = np.block([[R, np.zeros_like(R)], [eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([r, np.zeros(2 * m)])
    bounds = [(lo[i] - x0[i], hi[i] - x0[i]) for i in mut] + [(0, None)] * m
    res = linprog(np.concatenate([np.zeros(m), w[mut]]), A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    delta_m = res.x[:m]
    # the same constraints at e = 0, over y_m = x0_m + delta_m: R y_m <= r0 + R x0_m, then the bounds
    r0 = r + np.abs(R) @ em
    box = np.concatenate([eye, -eye])
    poly = (np.concatenate([R, box]), np.concatenate([r0 + R @ x0[mut], hi[mut], -lo[mut]]))
    return float(w[mut] @ np.abs(delta_m)), delta_m, poly


def _toward_target(A, c, G, g, s, x0, target, mut, w, lo, hi, margin) -> np.ndarray | None:
    """delta_m (m,) of the point of the region that comes closest to the target's margin (the summed
    shortfall of the class constraints, then the size as a tie-break): the region's constraints
    active there are the ones to cross next. None if the region is empty."""
    m = len(mut)
    Gm = G[:, mut]
    others = np.array([k for k in range(A.shape[0]) if k != target])
    D, dc = A[target] - A[others], c[target] - c[others]  # (K-1, d), (K-1,)
    R = np.concatenate([-s[:, None] * Gm, -D[:, mut]])
    r = np.concatenate([s * (G @ x0 + g), D @ x0 + dc - margin])
    k, eye = len(others), np.eye(m)
    slack = np.concatenate([np.zeros((len(s), k)), -np.eye(k)])  # class rows may fall short by v >= 0
    A_ub = np.block([[R, np.zeros_like(R), slack], [eye, -eye, np.zeros((m, k))], [-eye, -eye, np.zeros((m, k))]])
    b_ub = np.concatenate([r, np.zeros(2 * m)])
    bounds = [(lo[i] - x0[i], hi[i] - x0[i]) for i in mut] + [(0, None)] * (m + k)
    cost = np.concatenate([np.zeros(m), 1e-3 * w[mut] / w[mut].sum(), np.ones(k)])
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    return res.x[:m] if res.status == 0 else None


def _polytope(Hm: np.ndarray, hm: np.ndarray) -> tuple[np.ndarray, HalfspaceIntersection] | None:
    """Chebyshev centre (m,) (LP) and qhull's intersection of the bounded polytope {y : Hm y <= hm} (m >= 2),
    over its finite, non-zero rows; None if it is flat (radius < 1e-9) or qhull fails. `hs.dual_vertices`
    index those kept rows, in order."""
    keep = np.isfinite(hm) & (np.linalg.norm(Hm, axis=1) > 0)
    Hf, hf = Hm[keep], hm[keep]
    m = Hm.shape[1]
    norms = np.linalg.norm(Hf, axis=1)
    res = linprog(np.concatenate([np.zeros(m), [-1.0]]), A_ub=np.concatenate([Hf, norms[:, None]], axis=1), b_ub=hf,
                  bounds=[(None, None)] * m + [(0, None)], method="highs")
    if res.status != 0 or res.x[-1] < 1e-9:
        return None
    try:
        return res.x[:m], HalfspaceIntersection(np.concatenate([Hf, -hf[:, None]], axis=1), res.x[:m])
    except Exception:  # qhull failure on a degenerate polytope
        return None


def _facets(Hm: np.ndarray, hm: np.ndarray, rows: int) -> np.ndarray | None:
    """Indices (< rows) of the irredundant constraints of the bounded polytope {y : Hm y <= hm}, via a
    Chebyshev centre (LP) and qhull (`_polytope`); None if the polytope is flat or qhull fails (caller falls back)."""
    idx = np.flatnonzero(np.isfinite(hm) & (np.linalg.norm(Hm, axis=1) > 0))
    if Hm.shape[1] == 1:  # an interval: the tightest upper and lower bound
        Hf, hf = Hm[idx], hm[idx]
        ratio = hf / Hf[:, 0]
        up, down = np.flatnonzero(Hf[:, 0] > 0), np.flatnonzero(Hf[:, 0] < 0)
        if len(up) and len(down) and ratio[up].min() - ratio[down].max() < 1e-9:
            return None
        keep = ([up[np.argmin(ratio[up])]] if len(up) else []) + ([down[np.argmax(ratio[down])]] if len(down) else [])
        out = idx[np.array(keep, dtype=int)]
    else:
        found = _polytope(Hm, hm)
        if found is None:
            return None
        out = idx[np.unique(found[1].dual_vertices)]
    return out[out < rows]


def _tight(Hm: np.ndarray, hm: np.ndarray, y: np.ndarray, rows: int) -> np.ndarray:
    """Indices (< rows) of the constraints of {Hm y <= hm} active at y (relative tolerance 1e-6)."""
    slack = hm[:rows] - Hm[:rows] @ y
    scale = np.abs(Hm[:rows]).sum(1) * (1 + np.abs(y).max()) + 1e-12
    return np.flatnonzero(slack <= 1e-6 * scale)


def _as_vector(value, d: int, name: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(d, default, dtype=np.float64)
    arr = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.shape != (d,):
        raise ValueError(f"{name} must be a scalar or have shape ({d},), got {arr.shape}")
    return arr


def _seed_regions(net: ReluNet, x0, target, mask, w, lo, hi, start, n_start) -> list[bytes]:
    """Activation patterns of the n_start candidates nearest to x0 (weighted L1) that get the target."""
    if start is None or n_start < 1:
        return []
    if not isinstance(start, torch.Tensor) or start.ndim != 2 or start.shape[1] != len(x0):
        raise ValueError(f"start must be a tensor of shape (S, {len(x0)}), got {getattr(start, 'shape', type(start))}")
    cand = start.detach().to("cpu", torch.float64).clone()  # (S, d)
    cand[:, ~torch.from_numpy(mask)] = torch.from_numpy(x0)[~torch.from_numpy(mask)]
    cand = torch.maximum(torch.minimum(cand, torch.from_numpy(hi)), torch.from_numpy(lo))
    ok = net(cand).argmax(1) == target
    if not ok.any():
        return []
    cand = cand[ok]
    dist = (cand - torch.from_numpy(x0)).abs() @ torch.from_numpy(w)  # (S',)
    near = cand[dist.argsort()[:n_start]]
    return [p.numpy().tobytes() for p in activation_patterns(net, near)]


def correct(model: nn.Module | ReluNet, x: torch.Tensor, target: int, *, mutable=None, weights=None,
            lower=None, upper=None, eps=0.0, margin: float = 1e-3, max_regions: int = 100,
            neighbours: Literal["auto", "facets", "active"] = "auto", start: torch.Tensor | None = None,
            n_start: int = 3) -> Correction:
    """The minimal e-stable correction of one input x (d,) to the label `target` (see the module docstring).

    mutable: bool mask (d,) of the features that may change (default all); weights: (d,) cost per
    unit of each feature (default 1); lower, upper: (d,) bounds of the corrected point (default
    unbounded); eps: stability radius, scalar or (d,) per feature, of the box (L-inf ball) around the
    corrected point over the mutable features, in the features' own units; margin:
    required logit margin of the target over every other class; max_regions: budget of activation
    regions searched (the official code's MAX_NUM_REGIONS is 100). neighbours: which neighbouring
    regions a visited region adds to the queue: "facets", across every facet of the region (found
    with qhull: exact, for a few mutable features), or "active", across the constraints active at
    the region's point nearest to x and at its correction (a local search for many features; the
    result is then not proven minimal, `exact` is False); "auto" picks "facets" for up to 4
    mutable features. start: optional candidate points (S, d) (e.g. training inputs); their mutable
    features are moved into x's (the others kept, bounds applied) and the regions of the `n_start`
    nearest that get the target are searched first, as the paper seeds its search with an attack
    point: this finds a correction early, and the budget then goes to proving or improving it.

    >>> net = nn.Linear(1, 2)  # logits (x, -x): class 0 wins for x > 0
    >>> with torch.no_grad(): _ = net.weight.copy_(torch.tensor([[1.], [-1.]])); _ = net.bias.zero_()
    >>> round(correct(net, torch.tensor([-2.]), 0, margin=1.0).cost, 6)  # to x = 0.5, where 2x >= 1
    2.5
    """
    net = relu_net(model)
    d = net.in_features
    check_tensor(x, "x")
    x0 = x.detach().reshape(-1).to("cpu", torch.float64).numpy()
    if len(x0) != d:
        raise ValueError(f"x must have {d} features, got shape {tuple(x.shape)}")
    if not isinstance(target, (int, np.integer)) or not 0 <= int(target) < net.num_classes:
        raise ValueError(f"target must be an int in [0, {net.num_classes}), got {target!r}")
    target = int(target)
    mask = np.ones(d, bool) if mutable is None else np.asarray(
        mutable.cpu() if isinstance(mutable, torch.Tensor) else mutable, dtype=bool).reshape(-1)
    if mask.shape != (d,) or not mask.any():
        raise ValueError(f"mutable must be a bool mask of shape ({d},) with at least one True, got shape {mask.shape}")
    w = _as_vector(weights, d, "weights", 1.0)
    if (w[mask] <= 0).any():
        raise ValueError("weights must be positive on the mutable features")
    lo, hi = _as_vector(lower, d, "lower", -np.inf), _as_vector(upper, d, "upper", np.inf)
    e = _as_vector(eps, d, "eps", 0.0)
    if (e < 0).any() or margin < 0:
        raise ValueError(f"eps and margin must be >= 0, got eps={eps}, margin={margin}")
    if max_regions < 1:
        raise ValueError(f"max_regions must be >= 1, got {max_regions}")
    if neighbours not in ("auto", "facets", "active"):
        raise ValueError(f"neighbours must be 'auto', 'facets' or 'active', got {neighbours!r}")
    mut = np.flatnonzero(mask)
    n_first = int(net.weights[0].shape[0]) if len(net.weights) > 1 else 0
    if neighbours == "auto":
        neighbours = "facets" if len(mut) <= 4 else "active"
    H = net.hidden
    layers = [(wl.numpy(), bl.numpy()) for wl, bl in zip(net.weights, net.biases)]
    t0 = time.perf_counter()
    root = activation_patterns(net, torch.from_numpy(x0)[None])[0].numpy()
    queue: list[tuple[float, int, bytes]] = [(0.0, 0, root.tobytes())]
    seen, best, regions, lps, counter = {root.tobytes()}, None, 0, 0, 1
    for i, code in enumerate(_seed_regions(net, x0, target, mask, w, lo, hi, start, n_start)):
        if code not in seen:  # key 0 is a valid lower bound; seeds go first to get an upper bound early
            seen.add(code)
            heapq.heappush(queue, (0.0, -n_start + i, code))
    exact = neighbours == "facets"
    while queue:
        key, _, code = heapq.heappop(queue)
        if best is not None and key >= best[0] - 1e-12:
            break  # no region left can hold a cheaper correction
        if regions >= max_regions:
            exact = False
            break
        pattern = np.frombuffer(code, dtype=bool)
        A, c, G, g = _affine_np(layers, pattern)
        s = np.where(pattern, 1.0, -1.0)
        near = _region_lp(A, c, G, g, s, x0, target, mut, w, lo, hi, 0.0, 0.0 * e, False)  # distance to the region
        lps += 1
        if near is None:
            continue  # an empty pattern
        regions += 1
        if best is not None and near[0] >= best[0] - 1e-12:
            continue  # neither this region nor any region beyond it can be cheaper (see the module docstring)
        sol = _region_lp(A, c, G, g, s, x0, target, mut, w, lo, hi, margin, e, True)
        lps += 1
        if sol is not None and (best is None or sol[0] < best[0]):
            best = (sol[0], sol[1], sol[2], pattern)
        # neighbours: flip one unit, across a facet of the region ("facets") or a constraint active at
        # the region's nearest point or its correction ("active")
        Hm, hm = near[2]
        if neighbours == "facets":
            far = 1e6 * (1 + np.abs(x0[mut]))  # stand-in for infinite bounds: qhull needs a bounded polytope
            hm = np.concatenate([hm[:H], np.minimum(hm[H:], np.concatenate([x0[mut] + far, far - x0[mut]]))])
            flips = _facets(Hm, hm, H)
            if flips is None:
                flips, exact = np.arange(H), False
            else:
                lps += 1
        else:
            toward = sol[1] if sol is not None else _toward_target(A, c, G, g, s, x0, target, mut, w, lo, hi, margin)
            lps += sol is None
            flips = _tight(Hm, hm, x0[mut] + near[1], H)
            if toward is not None:
                flips = np.union1d(flips, _tight(Hm, hm, x0[mut] + toward, H))
        # key: the largest weighted L1 distance from x0 to a first-layer halfspace of the neighbour, a
        # lower bound of its distance whatever the depth (first-layer hyperplanes are the same in every region)
        z = G @ x0 + g  # (H,)
        slope = (np.abs(G[:, mut]) / w[mut]).max(1)  # (H,) weighted dual norm of each row
        with np.errstate(divide="ignore", invalid="ignore"):
            stay = np.where(slope > 0, np.maximum(-s * z, 0) / slope, np.where(-s * z > 0, np.inf, 0.0))
            flip = np.where(slope > 0, np.maximum(s * z, 0) / slope, np.where(s * z > 0, np.inf, 0.0))
        order = np.argsort(-stay[:n_first])
        top1 = stay[order[0]] if n_first > 0 else 0.0
        top2 = stay[order[1]] if n_first > 1 else 0.0
        for j in flips:
            if slope[j] == 0:
                continue
            nb = pattern.copy()
            nb[j] = ~nb[j]
            code_nb = nb.tobytes()
            if code_nb in seen:
                continue
            seen.add(code_nb)
            nb_key = max(top2 if j == order[0] else top1, flip[j]) if j < n_first else top1
            if np.isfinite(nb_key):
                heapq.heappush(queue, (float(nb_key), counter, code_nb))
                counter += 1
    seconds = time.perf_counter() - t0
    if best is None:
        return Correction(x0, target, None, float("inf"), e * mask, margin, mask, exact, regions, lps, seconds, None, None)
    delta = np.zeros(d)
    delta[mut] = best[1]
    return Correction(x0, target, delta, best[0], e * mask, margin, mask, exact, regions, lps, seconds, best[3], best[2])


def _correct_one(args):
    net, x, target, mutable, kwargs = args
    return correct(net, x, target, mutable=mutable, **kwargs)


_POOLS: dict[int, ProcessPoolExecutor] = {}  # correct_many's pools, by number of workers


def process_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` spawned processes that `correct_many` calls can share (starting one costs seconds:
    each process imports torch and scipy). Shut it down when done, or leave that to the interpreter's exit."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def correct_many(model: nn.Module | ReluNet, xs: torch.Tensor, targets, *, mutable=None,
                 workers: int | Executor = 1, **kwargs) -> list[Correction]:
    """`correct` for every row of xs (N, d); targets: int or (N,); mutable: None, (d,) or (N, d) bool.

    workers: 1 runs the searches here; n > 1 in a pool of n processes started by the first such call
    and reused by later ones (shut down at the interpreter's exit); an executor (`process_pool`) reuses
    its processes across calls. The LPs are CPU-bound and independent; the results are the same either way, in order. Other keyword arguments go to `correct`.
    """
    net = relu_net(model)
    check_tensor(xs, "xs", ndim=2)
    n = len(xs)
    tg = [int(t) for t in (torch.as_tensor(targets).reshape(-1).tolist() if not isinstance(targets, int) else [targets] * n)]
    if len(tg) != n:
        raise ValueError(f"targets must be an int or have {n} entries, got {len(tg)}")
    masks = None if mutable is None else np.asarray(mutable.cpu() if isinstance(mutable, torch.Tensor) else mutable, bool)
    rows = [masks if masks is None or masks.ndim == 1 else masks[i] for i in range(n)]
    jobs = [(net, xs[i].detach().cpu(), tg[i], rows[i], kwargs) for i in range(n)]
    if isinstance(workers, Executor):
        return list(workers.map(_correct_one, jobs))
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or n < 2:
        return [_correct_one(job) for job in jobs]
    pool = _POOLS.get(workers)
    if pool is None:  # started once per worker count and kept for later calls (starting one costs seconds)
        pool = _POOLS[workers] = process_pool(workers)
    return list(pool.map(_correct_one, jobs, chunksize=max(1, n // (4 * workers))))


# ----------------------------------------------------------------------------- verification

@torch.no_grad()
def stable_fraction(model: nn.Module, corrections: list[Correction], *, samples: int = 1000,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fraction (N,) of `samples` points drawn uniformly in each correction's e-box (mutable features
    only, the first two points at its corners +e and -e) that the model gives the target; one batched
    forward pass for all corrections, in eval mode."""
    check_model(model)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not corrections:
        return torch.zeros(0, dtype=torch.float64)
    centre = torch.from_numpy(np.stack([c.corrected for c in corrections]))  # (N, d)
    radius = torch.from_numpy(np.stack([np.broadcast_to(c.eps, c.x.shape) * c.mutable for c in corrections]))  # (N, d)
    N, d = centre.shape
    u = torch.rand(N, samples, d, generator=generator, dtype=torch.float64) * 2 - 1  # (N, S, d)
    u[:, : min(samples, 2)] = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)[: min(samples, 2)]
    pts = centre[:, None] + radius[:, None] * u  # (N, S, d)
    with eval_mode(model):
        pred = model(pts.reshape(N * samples, d).to(model_device(model), torch.float32)).argmax(1).reshape(N, samples)
    target = torch.tensor([c.target for c in corrections])
    return (pred.cpu() == target[:, None]).double().mean(1)


def check_region(model: nn.Module | ReluNet, corr: Correction, tol: float = 1e-6) -> bool:
    """Re-derive the region of `corr` from the network and check, in float64, that the corrected point
    lies in it and that the whole e-box around it keeps every pre-activation's sign and the target's margin."""
    if not corr.found:
        return False
    net = relu_net(model)
    y = corr.corrected
    pattern = torch.from_numpy(corr.pattern.copy())[None]
    A, c, G, g = (t[0].numpy() for t in local_affine(net, pattern))
    s = np.where(corr.pattern, 1.0, -1.0)
    radius = np.broadcast_to(corr.eps, corr.x.shape)[corr.mutable]
    spread = lambda M: np.abs(M[:, corr.mutable]) @ radius  # noqa: E731 - worst case over the e-box
    in_region = (s * (G @ y + g) - spread(G) >= -tol).all()
    D = A[corr.target] - np.delete(A, corr.target, axis=0)
    dc = c[corr.target] - np.delete(c, corr.target)
    return bool(in_region and (D @ y + dc - spread(D) >= corr.margin - tol).all())


@torch.no_grad()
def verified(model: nn.Module, corrections: list[Correction]) -> bool:
    """True when every correction found gets its target from the network's forward pass (one batch, eval
    mode) and lies in the region its LP assumed (`check_region`)."""
    found = [c for c in corrections if c.found]
    if not found:
        return True
    check_model(model)
    points = torch.tensor(np.stack([c.corrected for c in found]), dtype=torch.float32, device=model_device(model))
    with eval_mode(model):
        labels = model(points).argmax(1).tolist()
    return labels == [c.target for c in found] and all(check_region(model, c) for c in found)


# ----------------------------------------------------------------------------- symbolic corrections

@dataclass(frozen=True)
class SymbolicRegion:
    """A set of inputs over the named mutable features, all of which get the target label.

    H (M, m), h (M,): the irredundant polytope {y : H y <= h} (the correction's activation region
    with the target's margin, within the bounds); box_lo, box_hi (m,): a large axis-aligned box
    inside it; nearest: (m,) the box's point nearest to the input (weighted L1). The other features
    stay at the input's values.
    """

    features: tuple[str, ...]
    H: np.ndarray
    h: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    nearest: np.ndarray
    vertices: np.ndarray | None  # (V, m), when the polytope could be enumerated

    def inequalities(self, digits: int = 3) -> list[str]:
        """The polytope as readable inequalities, e.g. '0.5 * interest rate - 1 * dti <= 3.2'."""
        lines = []
        for a, b in zip(self.H, self.h):
            scale = np.abs(a).max()
            terms = [f"{ai / scale:+.{digits}g} * {name}" for ai, name in zip(a, self.features) if abs(ai) > 1e-12 * scale]
            lines.append(" ".join(terms).lstrip("+") + f" <= {b / scale:.{digits}g}")
        return lines

    def polygon(self) -> np.ndarray:
        """The vertices (V, 2) of a two-feature region in counter-clockwise order, for drawing."""
        if self.vertices is None or self.vertices.shape[1] != 2:
            raise ValueError("polygon() needs a region over exactly 2 features whose vertices are known")
        centre = self.vertices.mean(0)
        angle = np.arctan2(*(self.vertices - centre).T[::-1])
        return self.vertices[np.argsort(angle)]

    def box_text(self, digits: int = 3) -> str:
        return " and ".join(f"{lo:.{digits}g} <= {name} <= {hi:.{digits}g}"
                            for name, lo, hi in zip(self.features, self.box_lo, self.box_hi))

    def contains(self, y: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """(N,) bool: which rows of y (N, m) lie in the polytope."""
        return (np.asarray(y) @ self.H.T <= self.h + tol).all(axis=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """n points (n, m) drawn uniformly from the polytope by rejection from its bounding box."""
        lo = self.vertices.min(0) if self.vertices is not None else self.box_lo
        hi = self.vertices.max(0) if self.vertices is not None else self.box_hi
        out = np.zeros((0, len(lo)))
        for _ in range(100):
            u = torch.rand(4 * n, len(lo), generator=generator, dtype=torch.float64).numpy()
            cand = lo + u * (hi - lo)
            out = np.concatenate([out, cand[self.contains(cand)]])
            if len(out) >= n:
                return out[:n]
        raise RuntimeError("could not sample the polytope (is it flat?)")


def symbolic_region(corr: Correction, features: list[str] | tuple[str, ...], *, weights=None) -> SymbolicRegion:
    """Grow the correction `corr` into its symbolic region: the polytope of its activation region where the
    target wins by the margin (irredundant inequalities over the mutable `features`, named in order),
    and the largest box inside it (max of its smallest side, then of the sum of sides), by LP."""
    if not corr.found or corr.halfspaces is None:
        raise ValueError("corr holds no correction (found is False)")
    mut = np.flatnonzero(corr.mutable)
    if len(features) != len(mut):
        raise ValueError(f"features must name the {len(mut)} mutable features, got {len(features)} names")
    Hm, hm = corr.halfspaces
    keep = np.isfinite(hm)
    Hm, hm = Hm[keep], hm[keep]
    m = len(mut)
    # largest box [l, u] inside: min over the box of a.y = sum a+ l - a- u ... >= is  sum(a+ u + a- l)<= h for a.y<=h
    ap, an = np.clip(Hm, 0, None), np.clip(Hm, None, 0)
    eye = np.eye(m)
    A_ub = np.block([[an, ap, np.zeros((len(hm), 1))], [eye, -eye, np.ones((m, 1))]])  # l - u + t <= 0
    res = linprog(np.concatenate([np.full(2 * m, 0.0), [-1.0]]), A_ub=A_ub, b_ub=np.concatenate([hm, np.zeros(m)]),
                  bounds=[(None, None)] * (2 * m) + [(0, None)], method="highs")
    t_best = res.x[-1] if res.status == 0 else 0.0
    c2 = np.concatenate([np.ones(m), -np.ones(m), [0.0]])  # then maximize the sum of sides at that smallest side
    res2 = linprog(c2, A_ub=A_ub, b_ub=np.concatenate([hm, np.zeros(m)]),
                   bounds=[(None, None)] * (2 * m) + [(0.999 * t_best, None)], method="highs")
    sol = res2.x if res2.status == 0 else res.x
    if sol is None:
        raise ValueError("the correction's region has no interior box")
    box_lo, box_hi = sol[:m], sol[m:2 * m]
    nearest = np.clip(corr.x[mut], box_lo, box_hi)
    vertices = None
    found = _polytope(Hm, hm) if t_best > 1e-9 else None
    if found is not None:  # irredundant rows: the facets qhull found
        vertices = found[1].intersections
        rows = np.flatnonzero(np.isfinite(hm) & (np.linalg.norm(Hm, axis=1) > 0))[np.unique(found[1].dual_vertices)]
        Hm, hm = Hm[rows], hm[rows]
    return SymbolicRegion(tuple(features), Hm, hm, box_lo, box_hi, nearest, vertices)


# ----------------------------------------------------------------------------- helpers for the chapter

def salient_features(model: nn.Module, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (N, d) of the k features of each input with the largest |d (logit_target - logit_source) / dx|.

    x: (N, ...) inputs; source, target: (N,) labels. One batched backward pass, in eval mode.
    """
    check_model(model)
    check_tensor(x, "x", device=model_device(model))
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    xg = x.detach().reshape(len(x), -1).clone().requires_grad_(True)
    with torch.enable_grad(), eval_mode(model):
        logits = model(xg.reshape(x.shape))
        gap = logits.gather(1, target[:, None]) - logits.gather(1, source[:, None])
        (grad,) = torch.autograd.grad(gap.sum(), xg)
    top = grad.abs().topk(k, dim=1).indices  # (N, k)
    return torch.zeros_like(xg, dtype=torch.bool).scatter_(1, top, True)


def grid_correction(model: nn.Module, x: torch.Tensor, target: int, axes: list[torch.Tensor], *,
                    mutable=None, weights=None, margin: float = 1e-3, batch_size: int = 65536) -> tuple[float, np.ndarray]:
    """Brute-force baseline: the cheapest point of the grid axes[0] x axes[1] x ... over the mutable
    features (others kept at x) whose target logit beats every other by `margin`; (cost, point (d,)).
    Batched forward passes in eval mode; only sensible for 2 or 3 mutable features. (inf, x) if no grid point does."""
    check_model(model)
    check_tensor(x, "x")
    x0 = x.detach().reshape(-1).to(torch.float64).cpu()
    d = len(x0)
    mask = torch.ones(d, dtype=torch.bool) if mutable is None else torch.as_tensor(np.asarray(mutable, dtype=bool))
    if len(axes) != int(mask.sum()):
        raise ValueError(f"axes must give one grid axis per mutable feature ({int(mask.sum())}), got {len(axes)}")
    w = torch.from_numpy(_as_vector(weights, d, "weights", 1.0))
    pts = torch.cartesian_prod(*[torch.as_tensor(a, dtype=torch.float64) for a in axes]).reshape(-1, len(axes))
    best_cost, best_point = float("inf"), x0.numpy()
    for i in range(0, len(pts), batch_size):
        full = x0.repeat(len(pts[i:i + batch_size]), 1)  # (B, d)
        full[:, mask] = pts[i:i + batch_size]
        logits = predict(model, full.to(model_device(model), torch.float32), batch_size,
                         mixed_precision=False).double().cpu()  # (B, K)
        others = torch.cat([logits[:, :target], logits[:, target + 1:]], 1).max(1).values
        cost = ((full - x0).abs() @ w).masked_fill(logits[:, target] - others < margin, float("inf"))
        j = int(cost.argmin())
        if cost[j] < best_cost:
            best_cost, best_point = float(cost[j]), full[j].numpy()
    return best_cost, best_point


def fit_tabular(data: TabularData, hidden: tuple[int, ...], config: TrainConfig, *,
                cache: Cache | None = None) -> tuple[nn.Sequential, History]:
    """A ReLU MLP (`models.MLP`) trained with `genlens.core.train.train_cached` on standardized features
    (the training set's mean and std) and folded back to raw feature units (`fold_standardization`),
    on the data's device; with its training History."""
    from ..core.models import MLP

    mean, std = data.x_train.mean(0), data.x_train.std(0)
    spec = {"data": data.name, "model": "mlp", "hidden": list(hidden), "standardized": True}
    net, history = train_cached(lambda: MLP(in_features=len(data.features), hidden=hidden, num_classes=data.num_classes),
                                data.standardized(mean, std), config, spec=spec, cache=cache, progress=False)
    return fold_standardization(net, mean, std).to(data.x_train.device), history


def rejected(model: nn.Module, x: torch.Tensor, target: int, count: int) -> torch.Tensor:
    """The first `count` rows of x (N, ...) that the model does not give the label `target` (e.g. the
    applicants to correct), from one batched forward pass in eval mode."""
    check_model(model)
    check_tensor(x, "x", device=model_device(model))
    return x[predict(model, x, mixed_precision=False).argmax(1) != target][:count]
