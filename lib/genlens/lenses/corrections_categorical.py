"""Polaris's correction over one categorical and one numeric feature, as an integer program (Zhang,
Solar-Lezama & Singh 2018; official code xinpl/Polaris, `get_nearestbox_cat_lin`, solved there with
Gurobi, here with scipy's HiGHS `milp`).

The categorical feature is one-hot encoded in the columns `categories` (K of them); the numeric one
is column `numeric`. For each category k the network, with the one-hot set to k and every other
feature kept, is piecewise linear along the numeric feature: `approved_interval` walks its
activation regions outwards from the nearest approved value and returns the interval [a_k, b_k] of
approved values (target's logit ahead by the margin) around it. The stable correction is then a
set S of at least `min_categories` categories and a numeric centre y whose box [y - r, y + r] lies in
every chosen category's interval; it is minimal in the cost w_cat [original category not in S] +
w_num |y - y0|. Binary z_k (k in S), y and u >= |y - y0| make it a small mixed-integer LP.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from .corrections import ReluNet, _affine_np, activation_patterns, correct, relu_net

__all__ = ["CategoricalCorrection", "approved_interval", "categorical_correction"]


def _limits(layers, pattern, x: np.ndarray, target: int, j: int, margin: float) -> tuple[float, float, float, float]:
    """Along feature j (others at x): the interval [ra, rb] of `pattern`'s region and [ca, cb] of its points
    where the target wins by the margin (either may be empty: lo > hi)."""
    A, c, G, g = _affine_np(layers, pattern)
    s = np.where(pattern, 1.0, -1.0)
    z0 = G @ x + g - G[:, j] * x[j]  # pre-activations with feature j at 0
    slope_r, off_r = -s * G[:, j], s * z0  # region: slope * t <= off
    others = np.array([k for k in range(A.shape[0]) if k != target])
    D, dc = A[target] - A[others], c[target] - c[others]
    slope_c, off_c = -D[:, j], D @ x + dc - D[:, j] * x[j] - margin

    def interval(a, b):
        with np.errstate(divide="ignore"):
            up = np.where(a > 0, b / np.where(a > 0, a, 1), np.inf).min(initial=np.inf)
            down = np.where(a < 0, b / np.where(a < 0, a, 1), -np.inf).max(initial=-np.inf)
        flat_bad = ((a == 0) & (b < 0)).any()
        return (np.inf, -np.inf) if flat_bad else (down, up)

    ra, rb = interval(slope_r, off_r)
    ca, cb = interval(np.concatenate([slope_r, slope_c]), np.concatenate([off_r, off_c]))
    return ra, rb, ca, cb


def approved_interval(model: nn.Module | ReluNet, x: np.ndarray, target: int, j: int, start: float, *, lower: float,
                      upper: float, margin: float = 1e-3, max_regions: int = 100) -> tuple[float, float] | None:
    """The interval (a, b) of values of feature j around `start` (x (d,) elsewhere) that the network gives
    `target` with the margin, within [lower, upper], joined across up to `max_regions` activation
    regions; None if `start` itself is not approved."""
    net = relu_net(model)
    layers = [(w.numpy(), b.numpy()) for w, b in zip(net.weights, net.biases)]
    x = np.asarray(x, dtype=np.float64).copy()
    scale = max(1.0, upper - lower)
    step = 1e-9 * scale

    def pattern_at(t: float) -> np.ndarray:
        y = x.copy()
        y[j] = t
        return activation_patterns(net, torch.from_numpy(y)[None])[0].numpy()

    ra, rb, ca, cb = _limits(layers, pattern_at(start), x, target, j, margin)
    if not ca - 1e-7 * scale <= start <= cb + 1e-7 * scale:
        return None
    a, b, regions = max(ca, lower), min(cb, upper), 1
    for direction in (1, -1):
        edge, region_edge = (cb, rb) if direction == 1 else (ca, ra)
        while regions < max_regions and abs(edge - region_edge) <= 1e-9 * scale and lower < edge < upper:
            t = edge + direction * step
            ra2, rb2, ca2, cb2 = _limits(layers, pattern_at(t), x, target, j, margin)
            regions += 1
            if not ca2 - 1e-7 * scale <= t <= cb2 + 1e-7 * scale:
                break  # approval does not continue across this boundary
            edge, region_edge = (cb2, rb2) if direction == 1 else (ca2, ra2)
        if direction == 1:
            b = min(edge, upper)
        else:
            a = max(edge, lower)
    return float(a), float(b)


@dataclass(frozen=True)
class CategoricalCorrection:
    """chosen: (K,) bool, the categories of the stable correction (None if none); centre: its numeric value;
    distance: its cost; intervals: the approved interval (a_k, b_k) of each category, or None."""

    chosen: np.ndarray | None
    centre: float | None
    distance: float
    intervals: tuple[tuple[float, float] | None, ...]

    @property
    def found(self) -> bool:
        return self.chosen is not None


def categorical_correction(model: nn.Module | ReluNet, x: torch.Tensor, target: int, categories, numeric: int, *,
                           radius: float, min_categories: int = 1, w_cat: float = 1.0, w_num: float = 1.0,
                           lower: float, upper: float, margin: float = 1e-3, max_regions: int = 100
                           ) -> CategoricalCorrection:
    """Polaris's categorical-numeric correction (module docstring) of x (d,): `categories` the K one-hot
    columns, `numeric` the numeric column, `radius` the numeric box radius, `min_categories` how many
    categories the stable correction must span (the official d1 = int(2 r1)), w_cat the cost of leaving
    the input's category, w_num the cost per unit of the numeric feature; lower, upper its bounds."""
    net = relu_net(model)
    x0 = x.detach().reshape(-1).to("cpu", torch.float64).numpy()
    cats = [int(c) for c in categories]
    if len(cats) < 1 or numeric in cats or not all(0 <= c < len(x0) for c in cats + [numeric]):
        raise ValueError(f"categories must be distinct columns of x other than numeric, got {categories}, {numeric}")
    if not 1 <= min_categories <= len(cats) or radius < 0 or w_cat < 0 or w_num <= 0 or not lower < upper:
        raise ValueError("need 1 <= min_categories <= K, radius >= 0, w_cat >= 0, w_num > 0 and lower < upper")
    K, y0 = len(cats), float(x0[numeric])
    own = int(np.argmax(x0[cats]))
    intervals = []
    for k in range(K):  # the approved interval of each category around its nearest approved value
        xk = x0.copy()
        xk[cats] = 0.0
        xk[cats[k]] = 1.0
        mask = np.zeros(len(x0), bool)
        mask[numeric] = True
        corr = correct(net, torch.from_numpy(xk), target, mutable=mask, lower=np.where(mask, lower, -np.inf),
                       upper=np.where(mask, upper, np.inf), margin=margin, max_regions=max_regions)
        intervals.append(None if not corr.found else approved_interval(
            net, xk, target, numeric, float(corr.corrected[numeric]), lower=lower, upper=upper, margin=margin,
            max_regions=max_regions))
    big = 2 * (upper - lower) + abs(lower) + abs(upper)
    # variables [z (K), y, u]; minimize w_cat (1 - z_own) + w_num u
    cost = np.zeros(K + 2)
    cost[own], cost[K + 1] = -w_cat, w_num
    rows, lo_b, hi_b = [], [], []
    for k, iv in enumerate(intervals):
        if iv is None:
            continue
        a, b = iv  # z_k = 1  =>  a + r <= y <= b - r
        r1 = np.zeros(K + 2); r1[K], r1[k] = 1.0, -(a + radius + big)
        rows.append(r1); lo_b.append(-big); hi_b.append(np.inf)
        r2 = np.zeros(K + 2); r2[K], r2[k] = 1.0, big - (b - radius)
        rows.append(r2); lo_b.append(-np.inf); hi_b.append(big)
    r3 = np.zeros(K + 2); r3[:K] = 1.0
    rows.append(r3); lo_b.append(min_categories); hi_b.append(np.inf)
    r4 = np.zeros(K + 2); r4[K + 1], r4[K] = 1.0, -1.0  # u >= y - y0
    rows.append(r4); lo_b.append(-y0); hi_b.append(np.inf)
    r5 = np.zeros(K + 2); r5[K + 1], r5[K] = 1.0, 1.0  # u >= y0 - y
    rows.append(r5); lo_b.append(y0); hi_b.append(np.inf)
    z_hi = np.array([0.0 if iv is None else 1.0 for iv in intervals])
    bounds = Bounds(np.concatenate([np.zeros(K), [lower, 0.0]]), np.concatenate([z_hi, [upper, np.inf]]))
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lo_b, hi_b), bounds=bounds,
               integrality=np.concatenate([np.ones(K), [0, 0]]))
    if res.status != 0 or res.x is None:
        return CategoricalCorrection(None, None, float("inf"), tuple(intervals))
    z = res.x[:K] > 0.5
    return CategoricalCorrection(z, float(res.x[K]), float(w_cat * (not z[own]) + w_num * abs(res.x[K] - y0)),
                                 tuple(intervals))
