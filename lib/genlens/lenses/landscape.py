"""Loss landscapes with filter normalization (Li, Xu, Taylor, Studer, Goldstein, NeurIPS 2018, arXiv:1712.09913).

A landscape is the loss along a low-dimensional slice of parameter space,

    f(a) = L(theta* + sum_k a_k d_k),      a in R^K (K = 1 or 2),

around trained weights theta* along directions d_k. Random Gaussian directions are *filter
normalized*: every filter (slice along dim 0 of a weight tensor: a conv output channel, a linear
output neuron) of d is rescaled to the norm of the same filter of theta*, so that the picture does
not depend on the scale of the weights (ReLU nets are invariant to rescaling a layer by c and the
next by 1/c). Shown in the chapter ``landscape``.

Directions and points are dicts ``name -> tensor`` shaped like the model's parameters (and, for
interpolation between two solutions, its floating-point buffers: BatchNorm running statistics).
Evaluation is batched: ``points_per_pass`` parameter points go through one vmapped
``torch.func.functional_call`` over data that stay on the device; BatchNorm uses its running
statistics (eval mode), as the paper does. A grid can be cached point-chunk by point-chunk
(atomic writes), so a killed run continues where it stopped.

Symbols: theta* -> ``origin``; d_k -> ``directions[k]``; a -> ``points`` (P, K).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..core.cache import Cache, config_key
from ..core.nn import check_pair, eval_mode
from . import hessian

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Norm = Literal["filter", "layer", "weight", "dfilter", "dlayer", "none"]
Ignore = Literal["biasbn", "none"]
Engine = Literal["auto", "vmap", "loop"]

__all__ = [
    "weights", "states", "random_direction", "normalize_direction", "difference", "PointLoss", "evaluate_points",
    "Surface", "surface", "interpolate", "PCATrajectory", "pca_directions", "hessian_extremes",
    "PlaneCurvature", "plane_curvature", "plane_nonconvexity", "interpolation_defined", "loss_rise", "end_rise",
    "plane_nonconvexities", "random_plane_hessian", "random_walk_explained_variance",
]


# ----------------------------------------------------------------------------- directions

def weights(model: nn.Module) -> Params:
    """The model's parameters, detached: ``name -> tensor`` (the paper's dir_type 'weights')."""
    return {n: p.detach() for n, p in model.named_parameters()}


def states(model: nn.Module) -> Params:
    """Parameters plus floating-point buffers (BatchNorm running mean/var): dir_type 'states'."""
    out = weights(model)
    out.update({n: b.detach() for n, b in model.named_buffers() if b.is_floating_point()})
    return out


def normalize_direction(direction: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], *,
                        norm: Norm = "filter", ignore: Ignore = "biasbn") -> Params:
    """Rescale `direction` to the scale of `reference` (new tensors; inputs are not modified).

    As ``normalize_directions_for_weights`` of tomgoldstein/loss-landscape: a tensor with at most
    one dimension (bias, BatchNorm weight/bias/statistics) is set to zero (``ignore="biasbn"``) or
    to the reference itself (``ignore="none"``). Every other tensor, with f ranging over its
    slices along dim 0 (filters):

    * ``filter``:  d_f <- d_f * ||w_f|| / (||d_f|| + 1e-10)
    * ``layer``:   d <- d * ||w|| / ||d||
    * ``weight``:  d <- d * w (elementwise)
    * ``dfilter``: d_f <- d_f / (||d_f|| + 1e-10)   (unit filters)
    * ``dlayer``:  d <- d / ||d||
    * ``none``:    unchanged
    """
    if norm not in ("filter", "layer", "weight", "dfilter", "dlayer", "none"):
        raise ValueError(f"norm must be one of filter, layer, weight, dfilter, dlayer, none; got {norm!r}")
    if ignore not in ("biasbn", "none"):
        raise ValueError(f"ignore must be 'biasbn' or 'none', got {ignore!r}")
    out: Params = {}
    for name, d in direction.items():
        if name not in reference:
            raise ValueError(f"direction has tensor {name!r} that the reference lacks")
        w = reference[name]
        if d.shape != w.shape:
            raise ValueError(f"direction[{name!r}] has shape {tuple(d.shape)}, reference {tuple(w.shape)}")
        if d.dim() <= 1:
            out[name] = torch.zeros_like(d) if ignore == "biasbn" else w.detach().clone().to(d.dtype)
            continue
        d_flat, w_flat = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1).to(d.dtype)  # (F, fan_in)
        if norm == "filter":
            scale = w_flat.norm(dim=1, keepdim=True) / (d_flat.norm(dim=1, keepdim=True) + 1e-10)
            out[name] = (d_flat * scale).reshape(d.shape)
        elif norm == "dfilter":
            out[name] = (d_flat / (d_flat.norm(dim=1, keepdim=True) + 1e-10)).reshape(d.shape)
        elif norm == "layer":
            out[name] = d * (w.norm() / d.norm())
        elif norm == "dlayer":
            out[name] = d / d.norm()
        elif norm == "weight":
            out[name] = d * w
        else:
            out[name] = d.clone()
    return out


def random_direction(model: nn.Module, *, norm: Norm = "filter", ignore: Ignore = "biasbn",
                     generator: torch.Generator | None = None, include_buffers: bool = False) -> Params:
    """A Gaussian random direction in parameter space, normalized by `normalize_direction`.

    Entries are drawn N(0, 1) from `generator` (a CPU generator; None: the global one) in the order
    of ``model.named_parameters()`` (then the floating buffers if `include_buffers`), and put on the
    model's device. Same seed, same direction on every device.
    """
    ref = states(model) if include_buffers else weights(model)
    raw = {n: torch.randn(w.shape, generator=generator, dtype=torch.float32).to(w.device, w.dtype)
           for n, w in ref.items()}
    return normalize_direction(raw, ref, norm=norm, ignore=ignore)


def difference(model_a: nn.Module, model_b: nn.Module, *, include_buffers: bool = True) -> Params:
    """theta_b - theta_a (with BatchNorm statistics by default): the direction of linear interpolation."""
    a, b = (states(m) if include_buffers else weights(m) for m in (model_a, model_b))
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ValueError("model_a and model_b must have the same architecture (parameter names and shapes)")
    return {k: b[k] - a[k] for k in a}


def _fingerprint(tensors: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    items = tensors.items() if isinstance(tensors, Mapping) else enumerate(tensors)
    for name, t in items:
        h.update(str(name).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float64 if t.is_floating_point() else torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


# ----------------------------------------------------------------------------- batched evaluation

def _as_points(points: torch.Tensor | Sequence, k: int, device: torch.device) -> torch.Tensor:
    pts = torch.as_tensor(points, dtype=torch.float32, device=device)
    if pts.dim() == 1 and k == 1:
        pts = pts[:, None]
    if pts.dim() != 2 or pts.shape[1] != k:
        raise ValueError(f"points must have shape (P, {k}) for {k} direction(s), got {tuple(pts.shape)}")
    return pts


@dataclass(frozen=True)
class PointLoss:
    """Mean loss (P,) and accuracy (P,) (fraction; NaN if targets are not class labels) at P parameter points."""

    loss: torch.Tensor
    acc: torch.Tensor


def evaluate_points(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
                    directions: Sequence[Mapping[str, torch.Tensor]], points: torch.Tensor | Sequence, *,
                    loss_fn: LossFn = F.cross_entropy, origin: Mapping[str, torch.Tensor] | None = None,
                    points_per_pass: int = 16, batch_size: int | None = None, engine: Engine = "auto") -> PointLoss:
    """Mean loss and accuracy of the model at theta = origin + sum_k points[p, k] * directions[k].

    loss_fn(logits (N, K), targets (N,)) -> mean loss over the batch (e.g. ``F.cross_entropy``).
    Shapes: points (P, K); returns a `PointLoss` of float32 (P,) tensors on the model's device;
    accuracy is the fraction of argmax(logits) == targets (NaN if targets are not class labels).
    `origin` defaults to the model's parameters and buffers. The model is evaluated in eval mode
    (BatchNorm uses running statistics) and its mode is restored. `points_per_pass` points go
    through one pass; data are split in chunks of `batch_size` (None: all at once).

    engine: ``vmap`` batches the points of a pass into one ``torch.func.vmap`` call (on a GPU this
    is the fast path); ``loop`` runs one ``functional_call`` per point; ``auto`` picks vmap on CUDA
    and loop elsewhere.
    """
    x, y = check_pair(model, data)
    if len(directions) == 0:
        raise ValueError("directions must hold at least one direction")
    if engine not in ("auto", "vmap", "loop"):
        raise ValueError(f"engine must be one of auto, vmap, loop; got {engine!r}")
    names = list(directions[0].keys())
    if any(set(d.keys()) != set(names) for d in directions):
        raise ValueError("all directions must have the same tensor names")
    base = dict(origin) if origin is not None else states(model)
    dev = next(model.parameters()).device
    pts = _as_points(points, len(directions), dev)
    stacked = {n: torch.stack([d[n] for d in directions]).to(dev) for n in names}  # (K, *shape)
    moving = {n: base[n].detach().contiguous() for n in names}  # a model trained on CUDA is channels-last
    fixed = {n: t.detach().contiguous() for n, t in {**states(model), **dict(base)}.items() if n not in stacked}
    fixed.update({n: b for n, b in model.named_buffers() if not b.is_floating_point()})
    classify = y.dim() == 1 and not y.is_floating_point()
    bs = batch_size or len(x)
    use_vmap = [engine == "vmap" or (engine == "auto" and dev.type == "cuda")]  # auto: the loop where vmap fails

    def one(params: Params, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional_call(model, {**fixed, **params}, (xb,))
        correct = (logits.argmax(1) == yb).sum() if classify else torch.zeros((), device=dev)
        return loss_fn(logits.float(), yb) * len(yb), correct.float()

    vmapped = vmap(one, in_dims=(0, None, None))

    def batched(params: Params, B: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and correct count (B,) of the B points in `params` on one chunk of data."""
        if use_vmap[0]:
            try:
                return vmapped(params, xb, yb)
            except RuntimeError:  # e.g. cuDNN BatchNorm inside vmap on CUDA: NYI memory-format queries
                if engine == "vmap":
                    raise
                use_vmap[0] = False
        outs = [one({n: t[b] for n, t in params.items()}, xb, yb) for b in range(B)]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

    losses, accs = [], []
    with eval_mode(model), torch.inference_mode():
        for i in range(0, len(pts), points_per_pass):
            a = pts[i : i + points_per_pass]  # (B, K)
            params = {n: moving[n] + torch.tensordot(a, stacked[n].to(moving[n].dtype), dims=1) for n in names}
            loss_sum = torch.zeros(len(a), device=dev)
            correct = torch.zeros(len(a), device=dev)
            for j in range(0, len(x), bs):
                ls, cs = batched(params, len(a), x[j : j + bs], y[j : j + bs])
                loss_sum += ls
                correct += cs
            losses.append(loss_sum / len(x))
            accs.append(correct / len(x) if classify else torch.full_like(correct, float("nan")))
    return PointLoss(torch.cat(losses), torch.cat(accs))


@dataclass(frozen=True)
class Surface:
    """Loss and accuracy on a grid: ``loss[i, j]`` is at (coords[0][i], coords[1][j]) ('ij' indexing).

    coords: one 1-D tensor per direction; loss, acc: tensors of shape (len(coords[0]), ...).
    """

    coords: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    acc: torch.Tensor


def surface(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
            directions: Sequence[Mapping[str, torch.Tensor]], coords: Sequence[Sequence[float] | torch.Tensor], *,
            loss_fn: LossFn = F.cross_entropy, origin: Mapping[str, torch.Tensor] | None = None, points_per_pass: int = 16,
            batch_size: int | None = None, engine: Engine = "auto", cache: Cache | bool | None = None,
            progress: bool = False) -> Surface:
    """The 1-D or 2-D loss surface over the grid ``coords[0] x coords[1]`` spanned by `directions`.

    coords: one sequence of step sizes per direction (e.g. ``torch.linspace(-1, 1, 21)`` twice;
    the paper's plots use [-1, 1] with filter-normalized directions). With `cache` (a `Cache`, or
    True for the default one) finished chunks of points are saved atomically after every pass, so a
    killed run resumes; a finished grid is returned from the cache. Other arguments as in
    `evaluate_points`. Returns a `Surface` on the CPU.
    """
    if len(coords) != len(directions):
        raise ValueError(f"need one coordinate sequence per direction: {len(directions)} directions, {len(coords)} coords")
    axes = tuple(torch.as_tensor(c, dtype=torch.float32).flatten().cpu() for c in coords)
    grid = torch.cartesian_prod(*axes) if len(axes) > 1 else axes[0][:, None]  # (P, K), 'ij' order
    shape = tuple(len(a) for a in axes)
    store = Cache() if cache is True else (cache or None)
    key = spec = None
    state = {"loss": torch.full((len(grid),), float("nan")), "acc": torch.full((len(grid),), float("nan")),
             "done": torch.zeros(len(grid), dtype=torch.bool)}
    if store is not None:
        x, y = check_pair(model, data)
        base = dict(origin) if origin is not None else states(model)
        spec = {"what": "surface", "format": 1, "origin": _fingerprint(base),
                "directions": [_fingerprint(d) for d in directions], "data": _fingerprint([x, y]),
                "coords": [a.tolist() for a in axes], "loss_fn": getattr(loss_fn, "__qualname__", repr(loss_fn)),
                "model": type(model).__name__}
        key = config_key(spec)
        hit = store.load("surfaces", key)
        if hit is not None:
            return Surface(axes, hit["loss"].reshape(shape), hit["acc"].reshape(shape))
        state = store.load_checkpoint("surfaces", key) or state
    todo = torch.nonzero(~state["done"]).flatten()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="surface", leave=False)
    for i in range(0, len(todo), points_per_pass):
        idx = todo[i : i + points_per_pass]
        at = evaluate_points(model, data, directions, grid[idx], loss_fn=loss_fn, origin=origin,
                             points_per_pass=points_per_pass, batch_size=batch_size, engine=engine)
        state["loss"][idx], state["acc"][idx], state["done"][idx] = at.loss.cpu(), at.acc.cpu(), True
        if store is not None:
            store.save_checkpoint("surfaces", key, state)
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    if store is not None:
        store.save("surfaces", key, {"loss": state["loss"], "acc": state["acc"]}, spec)
        store.clear_checkpoint("surfaces", key)
    return Surface(axes, state["loss"].reshape(shape), state["acc"].reshape(shape))


def interpolate(model_a: nn.Module, model_b: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
                alphas: Sequence[float] | torch.Tensor, **kw) -> Surface:
    """Loss along theta(alpha) = (1 - alpha) theta_a + alpha theta_b (Goodfellow et al. 2015; the paper's Fig. 2).

    BatchNorm running statistics are interpolated too (the paper's README: needed for a correct
    loss between two solutions). alpha = 0 is model_a, alpha = 1 is model_b. Keywords as `surface`.
    """
    return surface(model_a, data, [difference(model_a, model_b)], [alphas], **kw)


# ----------------------------------------------------------------------------- trajectories

@dataclass(frozen=True)
class PCATrajectory:
    """PCA directions of an optimization path and the path projected on them.

    directions: two unit-norm directions (dicts like the weights); explained_variance_ratio: (2,);
    coords: (T, 2) projections of theta_t - theta_final; residual: (T,) fraction of
    ||theta_t - theta_final|| that lies outside the plane (0 = on the plane); off_plane: the share
    of the path's summed squared distance to the end, sum_t ||theta_t - theta_final||^2, that lies
    outside the plane through theta_final spanned by the two directions (0 = the path lies in it).
    """

    directions: tuple[Params, Params]
    explained_variance_ratio: torch.Tensor
    coords: torch.Tensor
    residual: torch.Tensor
    off_plane: float = float("nan")


def pca_directions(model: nn.Module, trajectory: torch.Tensor | Sequence[Mapping[str, torch.Tensor]], *,
                   ignore: Ignore = "biasbn") -> PCATrajectory:
    """The paper's trajectory plot (Sec. 7, Fig. 9): PCA of the path theta_t - theta_final.

    trajectory: the parameters along the path, either the snapshots ``name -> tensor`` that
    ``core.train.train_cached(..., snapshots=True)`` keeps in `History.snapshots` (at initialisation
    and after each epoch, as the paper saves one checkpoint per epoch), or a (T, P) tensor of flat
    trainable parameters (``core.nn.flat_parameters`` order); theta_final is the model's current parameters.
    As in tomgoldstein/loss-landscape (``projection.setup_PCA_directions``): the matrix of
    differences (T, P) (entries of 1-D tensors zeroed with ``ignore="biasbn"``) is centred and its
    top two principal components are the directions; each point is projected as d . e_k.
    """
    final = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    sizes = [t.numel() for t in final.values()]
    if isinstance(trajectory, Sequence) and trajectory and all(isinstance(s, Mapping) for s in trajectory):
        missing = sorted(set(final) - set(trajectory[0]))
        if missing:
            raise ValueError(f"trajectory snapshots lack the model's parameters {missing[:3]}")
        trajectory = torch.stack([torch.cat([s[n].detach().reshape(-1).cpu() for n in final]) for s in trajectory])
    if not (isinstance(trajectory, torch.Tensor) and trajectory.ndim == 2 and trajectory.shape[1] == sum(sizes)):
        raise ValueError(f"trajectory must be a (T, {sum(sizes)}) tensor of flat parameters, "
                         f"got {tuple(getattr(trajectory, 'shape', ()))}")
    if len(trajectory) < 2:
        raise ValueError(f"trajectory needs at least 2 parameter snapshots, got {len(trajectory)}")
    keep = torch.cat([torch.full((t.numel(),), 0.0 if (ignore == "biasbn" and t.dim() <= 1) else 1.0,
                                 dtype=torch.float64) for t in final.values()])  # (P,)
    end = torch.cat([t.reshape(-1) for t in final.values()]).cpu().double()
    M = (trajectory.cpu().double() - end) * keep  # (T, P)
    centred = M - M.mean(0, keepdim=True)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)  # Vh: (min(T, P), P)
    ratio = (S**2 / (S**2).sum())[:2]
    E = Vh[:2]  # (2, P) orthonormal
    coords = M @ E.T  # (T, 2)
    off = M - coords @ E  # (T, P): the part of each point outside the plane
    resid = off.norm(dim=1) / M.norm(dim=1).clamp_min(1e-30)
    off_plane = (off.pow(2).sum() / M.pow(2).sum().clamp_min(1e-30)).item()
    dirs = tuple({n: c.reshape(t.shape).to(t) for (n, t), c in zip(final.items(), e.split(sizes))} for e in E)
    return PCATrajectory(dirs, ratio.float(), coords.float(), resid.float(), off_plane)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- curvature

def hessian_extremes(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
                     directions: Sequence[Mapping[str, torch.Tensor]], points: torch.Tensor | Sequence, *,
                     loss_fn: LossFn = F.cross_entropy, steps: int = 20, points_per_pass: int = 8,
                     generator: torch.Generator | None = None) -> hessian.Extremes:
    """Smallest and largest Hessian eigenvalue of the loss at each point (the paper's Fig. 7 ratio).

    The Hessian is taken w.r.t. all trainable parameters at theta = theta* + sum_k a_k d_k, points
    (P, K), on `data` (pass a subset), BatchNorm in eval mode, by `genlens.lenses.hessian.extremes`:
    `steps` Lanczos steps per point from one random start (drawn from `generator`), batched over
    `points_per_pass` points; the official code runs ARPACK's Lanczos (scipy ``eigsh``) the same way.
    """
    op = hessian.HessianOperator(model, data, loss_fn=loss_fn)
    pts = _as_points(points, len(directions), op.device)
    dirs = torch.stack([op.flatten({n: d[n] if n in d else torch.zeros(s, device=op.device)
                                  for n, s in zip(op.names, op.shapes)})
                        for d in directions])  # (K, P)
    return hessian.extremes(model, data, op.w0 + pts.to(op.dtype) @ dirs, steps=steps,
                            points_per_pass=points_per_pass, generator=generator, operator=op)


@dataclass(frozen=True)
class PlaneCurvature:
    """Eigenvalues mu_min <= mu_max of the 2x2 finite-difference Hessian of a 2-D surface, each
    (len(coords[0]) - 2, len(coords[1]) - 2), at the interior grid points `coords` (two 1-D tensors)."""

    lo: torch.Tensor
    hi: torch.Tensor
    coords: tuple[torch.Tensor, torch.Tensor]


def plane_curvature(surf: Surface) -> PlaneCurvature:
    """The curvature of the loss restricted to the plane that a contour plot shows.

    Central differences with the grid's spacing at every interior point. A cheap 2-D stand-in for
    the full Hessian ratio.
    """
    if surf.loss.dim() != 2:
        raise ValueError(f"plane_curvature needs a 2-D surface, got loss of shape {tuple(surf.loss.shape)}")
    Z = surf.loss.double()
    hx = float(surf.coords[0][1] - surf.coords[0][0])
    hy = float(surf.coords[1][1] - surf.coords[1][0])
    fxx = (Z[2:, 1:-1] - 2 * Z[1:-1, 1:-1] + Z[:-2, 1:-1]) / hx**2
    fyy = (Z[1:-1, 2:] - 2 * Z[1:-1, 1:-1] + Z[1:-1, :-2]) / hy**2
    fxy = (Z[2:, 2:] - Z[2:, :-2] - Z[:-2, 2:] + Z[:-2, :-2]) / (4 * hx * hy)
    mean, dev = (fxx + fyy) / 2, torch.sqrt(((fxx - fyy) / 2) ** 2 + fxy**2)
    return PlaneCurvature((mean - dev).float(), (mean + dev).float(), (surf.coords[0][1:-1], surf.coords[1][1:-1]))


def plane_nonconvexity(surf: Surface, *, radius: float = 0.5) -> float:
    """How far a plotted 2-D surface is from convex near its centre, in [0, 1] (0: convex).

    Each interior grid point within `radius` of the origin scores min(1, max(0, -mu_min) / |mu_max|)
    (the 2-D analogue of the paper's |lambda_min / lambda_max|, from `plane_curvature`); returns
    their mean.
    """
    curv = plane_curvature(surf)
    a, b = curv.coords
    inner = (a[:, None] ** 2 + b[None, :] ** 2) <= radius**2 + 1e-6  # (n0 - 2, n1 - 2)
    if not inner.any():
        raise ValueError(f"no interior grid point lies within radius {radius} of the origin")
    score = (curv.lo.clamp(max=0).abs() / curv.hi.abs().clamp_min(1e-12)).clamp(max=1)
    return score[inner].mean().item()


# ----------------------------------------------------------------------------- summaries with spread

def interpolation_defined(model_a: nn.Module, model_b: nn.Module, alphas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Where the interpolated network is defined: a (len(alphas),) bool tensor.

    Along theta(alpha) = (1 - alpha) theta_a + alpha theta_b the BatchNorm running variances are
    interpolated too; outside [0, 1] a variance can become negative, and the layer then divides by
    the square root of a negative number (NaN loss). alpha is defined where every interpolated
    running variance is positive.
    """
    al = torch.as_tensor(alphas, dtype=torch.float64).flatten()
    ok = torch.ones(len(al), dtype=torch.bool)
    a, b = states(model_a), states(model_b)
    for name in a:
        if name.endswith("running_var"):
            va, vb = a[name].double().flatten().cpu(), b[name].double().flatten().cpu()
            v = (1 - al[:, None]) * va[None] + al[:, None] * vb[None]  # (A, C)
            ok &= (v > 0).all(dim=1)
    return ok


def _nearest(ts: torch.Tensor, t: float) -> int:
    i = int(torch.argmin((ts - t).abs()))
    if abs(float(ts[i]) - t) > 1e-4 * max(1.0, abs(t)):
        raise ValueError(f"{t} is not a grid point of the curve (nearest {float(ts[i])})")
    return i


def loss_rise(loss: torch.Tensor, ts: Sequence[float] | torch.Tensor, at: float = 0.5) -> torch.Tensor:
    """Sharpness of 1-D curves: 1/2 [f(-at) + f(at)] - f(0), over the last dim of `loss` (..., T).

    `ts` (T,) must contain -at, 0 and at. Returns a tensor of shape loss.shape[:-1].
    """
    t = torch.as_tensor(ts, dtype=torch.float64).flatten()
    lo, mid, hi = _nearest(t, -at), _nearest(t, 0.0), _nearest(t, at)
    L = torch.as_tensor(loss, dtype=torch.float64)
    return (L[..., lo] + L[..., hi]) / 2 - L[..., mid]


def end_rise(loss: torch.Tensor, alphas: Sequence[float] | torch.Tensor, step: float = 0.2) -> tuple[float, float]:
    """How steeply an interpolation curve rises from each end into the line: (f(step) - f(0), f(1 - step) - f(1)).

    The 1-D plot of Keskar et al. (the paper's Fig. 2) reads the sharper end as the one whose loss
    rises faster when stepping away from it along the line. The steps go inwards, where the
    interpolated network is always defined (outside [0, 1] BatchNorm variances can turn negative,
    `interpolation_defined`); `alphas` must contain the four points.
    """
    a = torch.as_tensor(alphas, dtype=torch.float64).flatten()
    L = torch.as_tensor(loss, dtype=torch.float64).flatten()
    return ((L[_nearest(a, step)] - L[_nearest(a, 0.0)]).item(), (L[_nearest(a, 1 - step)] - L[_nearest(a, 1.0)]).item())


def plane_nonconvexities(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], seeds: Sequence[int], *,
                         radius: float = 0.5, spacing: float = 0.2, cache: Cache | bool | None = None,
                         **kw) -> list[float]:
    """`plane_nonconvexity` on one plane of two filter-normalized random directions per seed.

    Only the patch the score reads is evaluated: the square grid with the given `spacing` that
    reaches one step beyond `radius` (7x7 points for radius 0.5 and spacing 0.2), so the score
    equals that of a larger grid with the same spacing through the origin. The plane of seed s uses
    the directions drawn from ``torch.Generator().manual_seed(s)`` (first direction, then second).
    """
    half = int(round(radius / spacing)) + 1
    axis = torch.arange(-half, half + 1, dtype=torch.float64).float() * spacing
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        plane = [random_direction(model, generator=g), random_direction(model, generator=g)]
        out.append(plane_nonconvexity(surface(model, data, plane, [axis, axis], cache=cache, **kw), radius=radius))
    return out


def random_plane_hessian(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], n: int, *,
                         generator: torch.Generator, steps: int = 10, span: float = 1.0,
                         loss_fn: LossFn = F.cross_entropy, points_per_pass: int = 8) -> tuple[hessian.Extremes, torch.Tensor]:
    """Hessian extremes at `n` independent random points of random filter-normalized planes (Fig. 7 with spread).

    Point i is theta* + a_i d_i + b_i e_i with its own pair (d_i, e_i) of filter-normalized random
    directions and (a_i, b_i) uniform on [-span, span]^2, all drawn from `generator` in the order
    (a_i, b_i, d_i, e_i). Averaging |lambda_min / lambda_max| over the points estimates the mean of
    the paper's ratio map over a random plane, and the points are independent replicates of it.
    Returns the `hessian.Extremes` of the n points and their coordinates (n, 2).
    """
    op = hessian.HessianOperator(model, data, loss_fn=loss_fn)
    coords, rows = [], []
    for _ in range(n):
        ab = (torch.rand(2, generator=generator, dtype=torch.float64) * 2 - 1) * span
        d, e = (op.flatten({k: t.get(k, torch.zeros(s, device=op.device)) for k, s in zip(op.names, op.shapes)})
                for t in (random_direction(model, generator=generator), random_direction(model, generator=generator)))
        coords.append(ab)
        rows.append(op.w0 + ab[0].to(op.dtype) * d + ab[1].to(op.dtype) * e)
    ext = hessian.extremes(model, data, torch.stack(rows), steps=steps, points_per_pass=points_per_pass,
                           generator=generator, operator=op)
    return ext, torch.stack(coords).float()


def random_walk_explained_variance(n_points: int, dim: int, *, n_walks: int = 200,
                                   generator: torch.Generator | None = None) -> float:
    """Share of variance that the two PCA directions of `pca_directions` explain for a random walk.

    The null for the paper's Fig. 9: n_points positions of an isotropic Gaussian random walk in
    `dim` dimensions, taken relative to the last one, centred and reduced to their top two principal
    components as `pca_directions` does; the mean over `n_walks` walks. A walk has no preferred
    plane, yet with few points most of its variance still lies in two directions.
    """
    if n_points < 3:
        raise ValueError(f"need at least 3 points, got {n_points}")
    steps = torch.randn(n_walks, n_points - 1, dim, generator=generator, dtype=torch.float64)
    path = torch.cat([torch.zeros(n_walks, 1, dim, dtype=torch.float64), steps.cumsum(1)], 1)  # (W, T, D)
    M = path - path[:, -1:]
    centred = M - M.mean(1, keepdim=True)
    s2 = torch.linalg.svdvals(centred) ** 2  # (W, min(T, D))
    return (s2[:, :2].sum(1) / s2.sum(1)).mean().item()
