"""Polaris's symbolic, stable correction over two features (Zhang, Solar-Lezama & Singh 2018; official
code xinpl/Polaris, `nnExplain/genExp.py`), built on `genlens.lenses.corrections`.

One activation region holds a small convex polygon of approved inputs. Polaris makes the symbolic
correction larger and stable in four steps, reproduced here for two mutable features y = (y_1, y_2):

1. **union**: from a seed region whose polygon (region, target's logit margin, feature bounds) is
   not empty, visit neighbouring activation regions breadth-first across the polygon's edges and keep
   every neighbour whose polygon continues across that edge, up to `max_regions` pieces (the
   official MAX_NUM_REGIONS = 100). Every point of the union gets the target: it is a union of
   approved polygons, no longer one set of inequalities.
2. **triangle**: a large triangle inside that union (`inferTriangle`): three linear constraints
   `tri_cons`, one symbolic correction. Grown here deterministically from the largest triangle on
   the vertices of the biggest pieces by moving one vertex at a time outwards while the triangle
   stays inside the union (no union boundary edge enters it), in units of each feature's weight.
3. **stable box**: the box of radii r (feature units) around a centre c lies in the triangle iff
   a_k c + |a_k| r <= b_k for its three constraints (`tri_cons.shift([+-r1, +-r2])`).
4. **minimal**: the box centre nearest to the input in weighted L1 (`get_nearest_box_lin_lin`, four
   quadrant LPs there; one LP with |c - x| split here), by scipy's HiGHS.

`best_pair` tries every pair of mutable features and keeps the nearest (`pickBestExplaination2D`).
Shown in the chapter `corrections`.
"""
from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from ..core.nn import check_model, eval_mode, model_device
from .corrections import Correction, ReluNet, _affine_np, _as_vector, _polytope, activation_patterns, correct, relu_net

__all__ = ["PolarisCorrection", "polygon", "polygon_area", "polaris", "nearest_box", "best_pair", "approved_share"]


# ----------------------------------------------------------------------------- polygons of one region

def polygon(H: np.ndarray, h: np.ndarray) -> np.ndarray | None:
    """Vertices (V, 2), counter-clockwise, of the bounded polygon {y : H y <= h} (H: (M, 2)); None if it
    has no interior (Chebyshev radius below 1e-9 of its scale)."""
    found = _polytope(H, h)
    if found is None:
        return None
    centre, hs = found
    v = hs.intersections
    angle = np.arctan2(v[:, 1] - centre[1], v[:, 0] - centre[0])
    return v[np.argsort(angle)]


def polygon_area(v: np.ndarray) -> float:
    """Area of a simple polygon with vertices v (V, 2) in order (shoelace formula)."""
    x, y = v[:, 0], v[:, 1]
    return float(abs(x @ np.roll(y, -1) - y @ np.roll(x, -1)) / 2)


def _piece(layers, pattern: np.ndarray, x0: np.ndarray, target: int, mut: np.ndarray, lo: np.ndarray,
           hi: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Halfspaces (H (M, 2), h (M,)) over y = x[mut] of the points of `pattern`'s region (other features at
    x0) where the target wins by `margin`, within [lo, hi]: region rows, then class rows, then bounds."""
    A, c, G, g = _affine_np(layers, pattern)
    s = np.where(pattern, 1.0, -1.0)
    Gm, xm = G[:, mut], x0[mut]
    z0 = G @ x0 + g - Gm @ xm  # pre-activations with y = 0
    others = np.array([k for k in range(A.shape[0]) if k != target])
    D, dc = A[target] - A[others], c[target] - c[others]
    d0 = D @ x0 + dc - D[:, mut] @ xm
    eye = np.eye(len(mut))
    H = np.concatenate([-s[:, None] * Gm, -D[:, mut], eye, -eye])
    h = np.concatenate([s * z0, d0 - margin, hi[mut], -lo[mut]])
    flat = np.linalg.norm(H, axis=1) == 0  # rows that do not depend on y: satisfied or not everywhere
    if (h[flat] < 0).any():
        return np.zeros((1, len(mut))), -np.ones(1)  # an empty piece
    return H[~flat], h[~flat]


def _edges(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (V, 2) of the edges of a counter-clockwise polygon v (V, 2)."""
    return v, np.roll(v, -1, axis=0)


def _inside_any(points: np.ndarray, pieces: list[tuple[np.ndarray, np.ndarray]], tol: float) -> np.ndarray:
    """(N,) bool: which points (N, 2) lie in some piece {H y <= h + tol ||H_i||}."""
    out = np.zeros(len(points), bool)
    for H, h in pieces:
        out |= (points @ H.T <= h + tol * np.linalg.norm(H, axis=1)).all(1)
    return out


# ----------------------------------------------------------------------------- 1. the union of regions

def _grow(net: ReluNet, layers, seed: np.ndarray, x0, target, mut, lo, hi, margin, max_regions: int, scale: float):
    """Breadth-first union of approved pieces from `seed`'s region. Returns the pieces' patterns,
    halfspaces, vertices and the number of regions whose polygon was computed."""
    step = 1e-6 * scale
    H0, h0 = _piece(layers, seed, x0, target, mut, lo, hi, margin)
    v0 = polygon(H0, h0)
    if v0 is None:
        return [], [], [], 1
    patterns, halfspaces, vertices = [seed], [(H0, h0)], [v0]
    seen, queue, tried = {seed.tobytes()}, deque([0]), 1
    while queue and len(patterns) < max_regions:
        i = queue.popleft()
        a, b = _edges(vertices[i])
        mid, e = (a + b) / 2, b - a
        normal = np.stack([e[:, 1], -e[:, 0]], 1) / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-300)
        across = mid + step * normal  # (V, 2): just outside each edge
        full = np.repeat(x0[None], len(across), 0)
        full[:, mut] = across
        pats = activation_patterns(net, torch.from_numpy(full)).numpy()
        for p, point in zip(pats, across):
            code = p.tobytes()
            if code in seen or len(patterns) >= max_regions:
                continue
            seen.add(code)
            H, h = _piece(layers, p, x0, target, mut, lo, hi, margin)
            tried += 1
            if not (point @ H.T <= h + 1e-7 * scale * np.linalg.norm(H, axis=1)).all():
                continue  # the approved part of that region does not continue across this edge
            v = polygon(H, h)
            if v is None:
                continue
            patterns.append(p)
            halfspaces.append((H, h))
            vertices.append(v)
            queue.append(len(patterns) - 1)
    return patterns, halfspaces, vertices, tried


def _boundary(halfspaces, vertices, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The union's boundary edges (start (E, 2), end (E, 2)): piece edges with no piece just across them."""
    a = np.concatenate([_edges(v)[0] for v in vertices])
    b = np.concatenate([_edges(v)[1] for v in vertices])
    e = b - a
    normal = np.stack([e[:, 1], -e[:, 0]], 1) / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-300)
    across = (a + b) / 2 + 1e-6 * scale * normal
    outer = ~_inside_any(across, halfspaces, 1e-9 * scale)
    return a[outer], b[outer]


# ----------------------------------------------------------------------------- 2. a triangle inside it

def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z-component of the cross product of 2-D vectors (..., 2)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _ccw(tri: np.ndarray) -> np.ndarray:
    return tri if _cross(tri[1] - tri[0], tri[2] - tri[0]) >= 0 else tri[[0, 2, 1]]


def _tri_area(tri: np.ndarray) -> float:
    return float(abs(_cross(tri[1] - tri[0], tri[2] - tri[0])) / 2)


def _triangle_inside(tri: np.ndarray, a: np.ndarray, b: np.ndarray, halfspaces, tol: float) -> bool:
    """Whether the triangle tri (3, 2) lies in the union: its centroid is in a piece and no boundary
    edge (a, b: (E, 2)) enters its interior (Liang-Barsky clipping of every edge at once)."""
    tri = _ccw(tri)
    if not _inside_any(tri.mean(0)[None], halfspaces, tol)[0]:
        return False
    t_lo, t_hi = np.zeros(len(a)), np.ones(len(a))
    for k in range(3):  # inside edge k: cross(p1 - p0, y - p0) > tol
        p0, p1 = tri[k], tri[(k + 1) % 3]
        d = p1 - p0
        fa = d[0] * (a[:, 1] - p0[1]) - d[1] * (a[:, 0] - p0[0]) - tol * np.linalg.norm(d)
        fb = d[0] * (b[:, 1] - p0[1]) - d[1] * (b[:, 0] - p0[0]) - tol * np.linalg.norm(d)
        slope = fb - fa
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -fa / slope
        t_lo = np.where(slope > 0, np.maximum(t_lo, t), t_lo)
        t_hi = np.where(slope < 0, np.minimum(t_hi, t), t_hi)
        t_hi = np.where((slope == 0) & (fa <= 0), -1.0, t_hi)
    return not (t_hi > t_lo).any()


def _fit_triangle(halfspaces, vertices, a, b, scale: float, rounds: int = 9) -> np.ndarray:
    """A large triangle (3, 2) in the union: the largest triangle on the vertices of one of the five
    biggest pieces, grown by moving one vertex at a time (outwards from the opposite side, straight
    or at 45 degrees) while its area grows and it stays inside; steps halve from scale / 4."""
    tol = 1e-9 * scale
    order = np.argsort([-polygon_area(v) for v in vertices])[:5]
    best = None
    for i in order:
        v = vertices[i]
        idx = np.array(list(itertools.combinations(range(len(v)), 3)))
        p = v[idx]  # (T, 3, 2)
        areas = np.abs(_cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])) / 2
        cand = p[np.argmax(areas)]
        if best is None or _tri_area(cand) > _tri_area(best):
            best = cand
    tri = _ccw(best.copy())
    step = scale / 4
    for _ in range(rounds):
        for _sweep in range(200):
            grown = False
            for k in range(3):
                q0, q1 = tri[(k + 1) % 3], tri[(k + 2) % 3]
                along = (q1 - q0) / np.linalg.norm(q1 - q0)
                out = np.array([along[1], -along[0]])
                if np.dot(out, tri[k] - q0) < 0:
                    out = -out
                for direction in (out, (out + along) / np.sqrt(2), (out - along) / np.sqrt(2)):
                    cand = tri.copy()
                    cand[k] = tri[k] + step * direction
                    if _tri_area(cand) > _tri_area(tri) and _triangle_inside(cand, a, b, halfspaces, tol):
                        tri, grown = _ccw(cand), True
                        break
            if not grown:
                break
        step /= 2
    return tri


def _tri_halfspaces(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The triangle (3, 2) as three constraints a_k y <= b_k (`tri_cons`): (3, 2), (3,)."""
    tri = _ccw(tri)
    p0, p1 = tri, np.roll(tri, -1, axis=0)
    d = p1 - p0
    A = np.stack([d[:, 1], -d[:, 0]], 1)  # outward normals of a counter-clockwise triangle
    return A, (A * p0).sum(1)


# ----------------------------------------------------------------------------- 3-4. the nearest stable box

def nearest_box(A: np.ndarray, b: np.ndarray, x: np.ndarray, weights: np.ndarray, radius: np.ndarray,
                lower: np.ndarray, upper: np.ndarray) -> tuple[float, np.ndarray] | None:
    """The centre c (m,) nearest to x (m,) in weighted L1 whose box [c - radius, c + radius] lies in
    {y : A y <= b} and in [lower, upper]: (distance, c), or None if no such box fits. One LP over
    [c, u] with u >= |c - x|.

    >>> A, b = np.array([[1., 0], [-1, 0], [0, 1], [0, -1]]), np.array([3., -1, 1, 1])  # [1, 3] x [-1, 1]
    >>> d, c = nearest_box(A, b, np.zeros(2), np.ones(2), np.array([0.5, 0.5]), -9 * np.ones(2), 9 * np.ones(2))
    >>> round(d, 6), (c.round(6) + 0.0).tolist()
    (1.5, [1.5, 0.0])
    """
    m = len(x)
    eye = np.eye(m)
    A_ub = np.block([[A, np.zeros_like(A)], [eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([b - np.abs(A) @ radius, x, -x])
    bounds = [(lo + r, hi - r) for lo, hi, r in zip(lower, upper, radius)] + [(0, None)] * m
    if any(lo > hi for lo, hi in bounds[:m]):
        return None
    res = linprog(np.concatenate([np.zeros(m), weights]), A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    c = res.x[:m]
    return float(weights @ np.abs(c - x)), c


# ----------------------------------------------------------------------------- the whole construction

@dataclass(frozen=True)
class PolarisCorrection:
    """Polaris's symbolic, stable, minimal correction over two features (feature units throughout).

    x: the input (d,); mutable: the indices (2,) of the two features; pieces: vertices (V_i, 2) of the
    approved polygons of the union (one per activation region);
    triangle (3, 2) and its constraints tri_A (3, 2), tri_b (3,) (tri_A y <= tri_b); radius (2,);
    centre (2,) of the nearest stable box inside the triangle (None if no box of that radius fits);
    distance: its weighted L1 distance from the input (inf if none); seed_area: the area of the seed
    region's own polygon; regions_tried: regions whose polygon was computed; seconds: wall time.
    """

    features: tuple[str, ...]
    x: np.ndarray  # (d,) the input
    mutable: np.ndarray  # (2,) indices of the two features
    pieces: tuple[np.ndarray, ...]
    triangle: np.ndarray
    tri_A: np.ndarray
    tri_b: np.ndarray
    radius: np.ndarray
    centre: np.ndarray | None
    distance: float
    seed_area: float
    regions_tried: int
    seconds: float

    @property
    def found(self) -> bool:
        return self.centre is not None

    @property
    def union_area(self) -> float:
        return float(sum(polygon_area(v) for v in self.pieces))

    @property
    def triangle_area(self) -> float:
        return _tri_area(self.triangle)

    def in_triangle(self, y: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """(N,) bool: which rows of y (N, 2) lie in the triangle."""
        return (np.asarray(y) @ self.tri_A.T <= self.tri_b + tol * np.linalg.norm(self.tri_A, axis=1)).all(1)

    def sample(self, n: int, generator: torch.Generator | None = None, where: str = "triangle") -> np.ndarray:
        """n points (n, 2) drawn uniformly from the triangle, or from the stable box (`where="box"`, its
        four corners first)."""
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64).numpy()
        if where == "box":
            if self.centre is None:
                raise ValueError("no stable box was found")
            u[: min(n, 4)] = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])[: min(n, 4)]
            return self.centre - self.radius + 2 * self.radius * u
        if where != "triangle":
            raise ValueError(f"where must be 'triangle' or 'box', got {where!r}")
        fold = u.sum(1) > 1  # reflect into the lower-left half of the unit square: uniform barycentric weights
        u[fold] = 1 - u[fold]
        p0, p1, p2 = self.triangle
        return p0 + u[:, :1] * (p1 - p0) + u[:, 1:] * (p2 - p0)

    def inequalities(self, digits: int = 3) -> list[str]:
        """The triangle as three readable inequalities over the named features."""
        lines = []
        for a, b in zip(self.tri_A, self.tri_b):
            s = np.abs(a).max()
            terms = " ".join(f"{ai / s:+.{digits}g} * {n}" for ai, n in zip(a, self.features))
            lines.append(terms.lstrip("+") + f" <= {b / s:.{digits}g}")
        return lines


def polaris(model: nn.Module | ReluNet, corr: Correction, features, radius, *, weights=None, lower=None,
            upper=None, max_regions: int = 100) -> PolarisCorrection:
    """Polaris's construction (module docstring) seeded with the activation region of the correction
    `corr` (found by `corrections.correct` over exactly two mutable features, with its target and
    margin): the union of up to `max_regions` approved pieces, a triangle inside it, and the nearest
    centre of a box of `radius` (scalar or (2,), feature units) inside the triangle.
    weights, lower, upper: (d,) as for `correct` (the bounds must be finite on the two features)."""
    if not isinstance(corr, Correction) or not corr.found:
        raise ValueError("corr must be a Correction that was found (corr.found)")
    mut = np.flatnonzero(corr.mutable)
    if len(mut) != 2:
        raise ValueError(f"polaris works on exactly 2 mutable features, corr has {len(mut)}")
    if len(features) != 2:
        raise ValueError(f"features must name the 2 mutable features, got {len(features)} names")
    if max_regions < 1:
        raise ValueError(f"max_regions must be >= 1, got {max_regions}")
    net = relu_net(model)
    d = net.in_features
    w = _as_vector(weights, d, "weights", 1.0)
    lo, hi = _as_vector(lower, d, "lower", -np.inf), _as_vector(upper, d, "upper", np.inf)
    if not (np.isfinite(lo[mut]).all() and np.isfinite(hi[mut]).all()):
        raise ValueError("lower and upper must be finite on the two mutable features")
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (2,)).copy()
    if (r < 0).any():
        raise ValueError(f"radius must be >= 0, got {radius}")
    t0 = time.perf_counter()
    # work in weighted units u = w y, so that distances and the triangle's growth are isotropic
    S = np.ones(d)
    S[mut] = w[mut]
    scaled = ReluNet((net.weights[0] / torch.from_numpy(S),) + net.weights[1:], net.biases)
    layers = [(wl.numpy(), bl.numpy()) for wl, bl in zip(scaled.weights, scaled.biases)]
    x0 = corr.x * S
    los, his = lo * S, hi * S
    scale = float(np.max(his[mut] - los[mut]))
    pats, halfspaces, verts, tried = _grow(scaled, layers, corr.pattern, x0, corr.target, mut, los, his,
                                           corr.margin, max_regions, scale)
    if not verts:
        raise ValueError("the correction's region holds no approved polygon with an interior")
    a, b = _boundary(halfspaces, verts, scale)
    tri = _fit_triangle(halfspaces, verts, a, b, scale)
    A, bb = _tri_halfspaces(tri)
    box = nearest_box(A, bb, x0[mut], np.ones(2), r * w[mut], los[mut], his[mut])
    wm = w[mut]
    centre = None if box is None else box[1] / wm
    dist = float("inf") if box is None else box[0]
    tri_f = tri / wm
    A_f, b_f = _tri_halfspaces(tri_f)
    pieces = tuple(v / wm for v in verts)
    return PolarisCorrection(tuple(features), corr.x.copy(), mut, pieces, tri_f, A_f, b_f, r, centre, dist,
                             polygon_area(pieces[0]), tried, time.perf_counter() - t0)


@torch.no_grad()
def approved_share(model: nn.Module, regions: list[PolarisCorrection], target: int, n: int = 2000,
                   generator: torch.Generator | None = None, where: str = "triangle") -> np.ndarray:
    """Fraction (R,) of n points sampled in each region's triangle (or stable box, `where="box"`), the other
    features kept at the region's input, that the model gives `target`; one batched forward pass, eval mode."""
    check_model(model)
    if not regions:
        return np.ones(0)
    pts = np.concatenate([r.sample(n, generator, where) for r in regions])  # (R n, 2)
    full = np.repeat(np.stack([r.x for r in regions]), n, axis=0)  # (R n, d)
    full[:, regions[0].mutable] = pts
    with eval_mode(model):
        pred = model(torch.tensor(full, dtype=torch.float32, device=model_device(model))).argmax(1).cpu()
    return (pred == target).reshape(len(regions), n).double().mean(1).numpy()


def best_pair(model: nn.Module | ReluNet, x: torch.Tensor, target: int, features, radius, *, mutable=None,
              weights=None, lower=None, upper=None, margin: float = 1e-3, max_regions: int = 100, **kwargs
              ) -> tuple[tuple[int, int] | None, PolarisCorrection | None, dict]:
    """`pickBestExplaination2D`: Polaris's correction over every pair of the mutable features (all by
    default) of x (d,), keeping the nearest stable box. features: (d,) names; radius: scalar or (d,).
    Returns (best pair of feature indices, its PolarisCorrection, {pair: distance}); (None, None, ...)
    if no pair has one. Other keyword arguments go to `corrections.correct` (e.g. start=)."""
    net = relu_net(model)
    d = net.in_features
    if len(features) != d:
        raise ValueError(f"features must name all {d} features, got {len(features)}")
    allowed = np.ones(d, bool) if mutable is None else np.asarray(mutable, bool).reshape(-1)
    if allowed.shape != (d,) or allowed.sum() < 2:
        raise ValueError(f"mutable must be a bool mask ({d},) with at least two True")
    rad = np.broadcast_to(np.asarray(radius, dtype=np.float64), (d,))
    best, best_corr, dists = None, None, {}
    for i, j in itertools.combinations(np.flatnonzero(allowed).tolist(), 2):
        mask = np.zeros(d, bool)
        mask[[i, j]] = True
        corr = correct(net, x, target, mutable=mask, weights=weights, lower=lower, upper=upper, margin=margin,
                       max_regions=max_regions, **kwargs)
        if not corr.found:
            dists[(i, j)] = float("inf")
            continue
        pc = polaris(net, corr, (features[i], features[j]), rad[[i, j]], weights=weights, lower=lower, upper=upper,
                     max_regions=max_regions)
        dists[(i, j)] = pc.distance
        if pc.found and (best_corr is None or pc.distance < best_corr.distance):
            best, best_corr = (i, j), pc
    return best, best_corr, dists
