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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from ..core.cache import Cache, config_key

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Norm = Literal["filter", "layer", "weight", "dfilter", "dlayer", "none"]
Ignore = Literal["biasbn", "none"]
Engine = Literal["auto", "vmap", "loop"]

__all__ = [
    "weights", "states", "random_direction", "normalize_direction", "difference", "evaluate_points",
    "Surface", "surface", "interpolate", "PCATrajectory", "pca_directions", "hessian_extremes",
    "plane_curvature", "train_with_trajectory",
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


def random_direction(model: nn.Module, *, norm: Norm = "filter", ignore: Ignore = "biasbn", seed: int = 0,
                     generator: torch.Generator | None = None, include_buffers: bool = False) -> Params:
    """A Gaussian random direction in parameter space, normalized by `normalize_direction`.

    Entries are drawn N(0, 1) from `generator` (a CPU generator, default seeded with `seed`) in the
    order of ``model.named_parameters()`` (then the floating buffers if `include_buffers`), and put
    on the model's device. Same seed, same direction on every device.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    ref = states(model) if include_buffers else weights(model)
    raw = {n: torch.randn(w.shape, generator=g, dtype=torch.float32).to(w.device, w.dtype) for n, w in ref.items()}
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

@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _check_data(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"data must be an (inputs, targets) pair of tensors, got {type(data).__name__}")
    x, y = data
    dev = next(model.parameters()).device
    if x.device != dev or y.device != dev:
        raise ValueError(f"model is on {dev} but data is on {x.device}")
    if len(x) != len(y):
        raise ValueError(f"inputs ({len(x)}) and targets ({len(y)}) differ in length")
    return x, y


def _as_points(points: torch.Tensor | Sequence, k: int, device: torch.device) -> torch.Tensor:
    pts = torch.as_tensor(points, dtype=torch.float32, device=device)
    if pts.dim() == 1 and k == 1:
        pts = pts[:, None]
    if pts.dim() != 2 or pts.shape[1] != k:
        raise ValueError(f"points must have shape (P, {k}) for {k} direction(s), got {tuple(pts.shape)}")
    return pts


def _input_layer(model: nn.Module, fixed: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                 x: torch.Tensor) -> str | None:
    """Name of the Conv2d/Linear module that the model applies to its raw input, once, if any.

    Found with a probe forward pass on two inputs: the module whose forward receives the input
    tensor object itself. Its output is linear in its (weight, bias), which `evaluate_points` uses.
    """
    calls: dict[str, int] = {}
    hit: list[str] = []
    modules = {n: m for n, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)}
    probe = x[:2]

    def hook(name: str):
        def pre(module: nn.Module, inputs: tuple) -> None:
            calls[name] = calls.get(name, 0) + 1
            if len(inputs) == 1 and inputs[0] is probe:
                hit.append(name)
        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules.items()]
    try:
        functional_call(model, {**fixed, **params}, (probe,))
    finally:
        for h in handles:
            h.remove()
    if len(hit) != 1 or calls[hit[0]] != 1:
        return None
    name = hit[0]
    m = modules[name]
    if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
        return None
    return name


def _layer_out(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if isinstance(module, nn.Conv2d):
        return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation, module.groups)
    return F.linear(x, weight, bias)


def evaluate_points(model: nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, torch.Tensor],
                    directions: Sequence[Mapping[str, torch.Tensor]], points: torch.Tensor | Sequence, *,
                    origin: Mapping[str, torch.Tensor] | None = None, points_per_pass: int = 16,
                    batch_size: int | None = None, engine: Engine = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy of the model at theta = origin + sum_k points[p, k] * directions[k].

    loss_fn(logits (N, K), targets (N,)) -> mean loss over the batch (e.g. ``F.cross_entropy``).
    Shapes: points (P, K); returns (loss (P,), accuracy (P,)) float32 on the model's device;
    accuracy is the fraction of argmax(logits) == targets (NaN if targets are not class labels).
    `origin` defaults to the model's parameters and buffers. The model is evaluated in eval mode
    (BatchNorm uses running statistics) and its mode is restored. `points_per_pass` points go
    through one pass; data are split in chunks of `batch_size` (None: all at once).

    engine: ``vmap`` batches the points of a pass into one ``torch.func.vmap`` call (on a GPU this
    is the fast path). ``loop`` runs one ``functional_call`` per point and uses that the model's
    input layer (a Conv2d or Linear applied to the raw input) is linear in its weights:
    layer(x; w0 + sum_k a_k d_k) = layer(x; w0) + sum_k a_k layer(x; d_k), so a pass computes that
    layer K + 1 times instead of once per point (exact up to float rounding; measured in
    ``bench/landscape.py``). ``auto`` picks vmap on CUDA and loop elsewhere.
    """
    x, y = _check_data(model, data)
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
    moving = {n: base[n].detach() for n in names}
    fixed = {n: t.detach() for n, t in {**states(model), **dict(base)}.items() if n not in stacked}
    fixed.update({n: b for n, b in model.named_buffers() if not b.is_floating_point()})
    classify = y.dim() == 1 and not y.is_floating_point()
    bs = batch_size or len(x)
    use_vmap = engine == "vmap" or (engine == "auto" and dev.type == "cuda")

    def one(params: Params, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional_call(model, {**fixed, **params}, (xb,))
        correct = (logits.argmax(1) == yb).sum() if classify else torch.zeros((), device=dev)
        return loss_fn(logits.float(), yb) * len(yb), correct.float()

    vmapped = vmap(one, in_dims=(0, None, None))
    first = None
    with _eval_mode(model), torch.inference_mode():
        if not use_vmap:
            first = _input_layer(model, fixed, {n: moving[n] for n in names}, x)
    layer = model.get_submodule(first) if first is not None else None
    lw, lb = (f"{first}.weight", f"{first}.bias") if first is not None else ("", "")

    def first_layer_terms(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """layer(xb; origin) (N, ...) and layer(xb; d_k) stacked (K, N, ...), bias included where it moves."""
        w0 = moving[lw] if lw in moving else fixed[lw]
        b0 = (moving[lb] if lb in moving else fixed.get(lb)) if layer.bias is not None else None
        out0 = _layer_out(layer, xb, w0, b0)
        dk = [_layer_out(layer, xb, stacked[lw][k] if lw in stacked else torch.zeros_like(w0),
                         stacked[lb][k] if (lb in stacked and b0 is not None) else None) for k in range(len(directions))]
        return out0, torch.stack(dk)

    def batched(params: Params, a: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if use_vmap:
            return vmapped(params, xb, yb)
        B = len(a)
        if layer is None:
            outs = [one({n: t[b] for n, t in params.items()}, xb, yb) for b in range(B)]
        else:
            out0, dk = first_layer_terms(xb)
            outs = []
            try:
                for b in range(B):
                    z = out0.clone()  # layer(xb; theta_b) = layer(xb; origin) + sum_k a_k layer(xb; d_k)
                    for k, a_k in enumerate(a[b].tolist()):
                        z.add_(dk[k], alpha=a_k)
                    layer.forward = lambda _inp, z=z: z  # type: ignore[method-assign]
                    outs.append(one({n: t[b] for n, t in params.items()}, xb, yb))
            finally:
                del layer.forward
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

    losses, accs = [], []
    with _eval_mode(model), torch.inference_mode():
        for i in range(0, len(pts), points_per_pass):
            a = pts[i : i + points_per_pass]  # (B, K)
            params = {n: moving[n] + torch.tensordot(a, stacked[n].to(moving[n].dtype), dims=1) for n in names}
            loss_sum = torch.zeros(len(a), device=dev)
            correct = torch.zeros(len(a), device=dev)
            for j in range(0, len(x), bs):
                ls, cs = batched(params, a, x[j : j + bs], y[j : j + bs])
                loss_sum += ls
                correct += cs
            losses.append(loss_sum / len(x))
            accs.append(correct / len(x) if classify else torch.full_like(correct, float("nan")))
    return torch.cat(losses), torch.cat(accs)


@dataclass(frozen=True)
class Surface:
    """Loss and accuracy on a grid: ``loss[i, j]`` is at (coords[0][i], coords[1][j]) ('ij' indexing).

    coords: one 1-D tensor per direction; loss, acc: tensors of shape (len(coords[0]), ...).
    """

    coords: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    acc: torch.Tensor


def surface(model: nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, torch.Tensor],
            directions: Sequence[Mapping[str, torch.Tensor]], coords: Sequence[Sequence[float] | torch.Tensor], *,
            origin: Mapping[str, torch.Tensor] | None = None, points_per_pass: int = 16,
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
        x, y = _check_data(model, data)
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
        loss, acc = evaluate_points(model, loss_fn, data, directions, grid[idx], origin=origin,
                                    points_per_pass=points_per_pass, batch_size=batch_size, engine=engine)
        state["loss"][idx], state["acc"][idx], state["done"][idx] = loss.cpu(), acc.cpu(), True
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


def interpolate(model_a: nn.Module, model_b: nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, torch.Tensor],
                alphas: Sequence[float] | torch.Tensor, **kw) -> Surface:
    """Loss along theta(alpha) = (1 - alpha) theta_a + alpha theta_b (Goodfellow et al. 2015; the paper's Fig. 2).

    BatchNorm running statistics are interpolated too (the paper's README: needed for a correct
    loss between two solutions). alpha = 0 is model_a, alpha = 1 is model_b. Keywords as `surface`.
    """
    return surface(model_a, loss_fn, data, [difference(model_a, model_b)], [alphas], **kw)


# ----------------------------------------------------------------------------- trajectories

@dataclass(frozen=True)
class PCATrajectory:
    """PCA directions of an optimization path and the path projected on them.

    directions: two unit-norm directions (dicts like the weights); explained_variance_ratio: (2,);
    coords: (T, 2) projections of theta_t - theta_final; residual: (T,) fraction of
    ||theta_t - theta_final|| that lies outside the plane (0 = on the plane).
    """

    directions: tuple[Params, Params]
    explained_variance_ratio: torch.Tensor
    coords: torch.Tensor
    residual: torch.Tensor


def pca_directions(trajectory: Sequence[Mapping[str, torch.Tensor]], final: Mapping[str, torch.Tensor], *,
                   ignore: Ignore = "biasbn") -> PCATrajectory:
    """The paper's trajectory plot (Sec. 7, Fig. 9): PCA of the path theta_t - theta_final.

    As in tomgoldstein/loss-landscape (``projection.setup_PCA_directions``): the matrix of
    differences (T, D) (1-D tensors zeroed with ``ignore="biasbn"``) is centred and its top two
    principal components are the directions; each point is projected as d . e_k.
    """
    if len(trajectory) < 2:
        raise ValueError(f"trajectory needs at least 2 parameter snapshots, got {len(trajectory)}")
    names = list(final.keys())

    def flat(p: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([((p[n] - final[n]) * (0.0 if (ignore == "biasbn" and final[n].dim() <= 1) else 1.0))
                          .flatten().double() for n in names])

    M = torch.stack([flat(p) for p in trajectory])  # (T, D)
    centred = M - M.mean(0, keepdim=True)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)  # Vh: (min(T, D), D)
    ratio = (S**2 / (S**2).sum())[:2]
    E = Vh[:2]  # (2, D) orthonormal
    coords = M @ E.T  # (T, 2)
    resid = (M - coords @ E).norm(dim=1) / M.norm(dim=1).clamp_min(1e-30)
    sizes = [final[n].numel() for n in names]
    dirs = tuple({n: c.reshape(final[n].shape).to(final[n].dtype) for n, c in zip(names, e.split(sizes))} for e in E)
    return PCATrajectory(dirs, ratio.float(), coords.float(), resid.float())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- curvature

def hessian_extremes(model: nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, torch.Tensor],
                     directions: Sequence[Mapping[str, torch.Tensor]], points: torch.Tensor | Sequence, *,
                     steps: int = 20, seed: int = 0, points_per_pass: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest Hessian eigenvalue of the loss at each point (the paper's Fig. 7 ratio).

    The Hessian is taken w.r.t. all parameters at theta = theta* + sum_k a_k d_k, on the whole of
    `data` (one batch; pass a subset), BatchNorm in eval mode. Eigenvalues come from `steps` steps of
    Lanczos with full reorthogonalization on Hessian-vector products (forward-over-reverse
    ``torch.func``), batched over `points_per_pass` points with vmap; the official code uses
    ARPACK's Lanczos (scipy ``eigsh``) the same way. Returns (lambda_min (P,), lambda_max (P,)).
    The HVP is batched over points here (``genlens.lenses.hessian`` works on one point); the chapter checks
    both against each other at the minimizer.
    """
    x, y = _check_data(model, data)
    dev = next(model.parameters()).device
    pts = _as_points(points, len(directions), dev)
    base = weights(model)
    names = list(base.keys())
    sizes, shapes = [base[n].numel() for n in names], [base[n].shape for n in names]
    fixed = {n: b.detach() for n, b in model.named_buffers()}
    theta0 = torch.cat([base[n].flatten() for n in names])  # (D,)
    D = theta0.numel()
    dirs = torch.stack([torch.cat([d.get(n, torch.zeros_like(base[n])).to(dev).flatten() for n in names])
                        for d in directions])  # (K, D)

    def loss_at(theta: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        return loss_fn(functional_call(model, {**fixed, **params}, (x,)).float(), y)

    def hvp(theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return jvp(grad(loss_at), (theta,), (v,))[1]

    batched_hvp = vmap(hvp)
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(D, generator=g).to(dev)
    m = min(steps, D)
    lo, hi = [], []
    with _eval_mode(model):
        for i in range(0, len(pts), points_per_pass):
            a = pts[i : i + points_per_pass]
            B = len(a)
            theta = theta0 + a @ dirs  # (B, D)
            Q = torch.zeros(B, m, D, device=dev)
            alpha = torch.zeros(B, m, device=dev)
            beta = torch.zeros(B, m, device=dev)
            q = (start / start.norm()).expand(B, D).clone()
            for j in range(m):
                Q[:, j] = q
                w = batched_hvp(theta, q).detach()  # (B, D)
                alpha[:, j] = (w * q).sum(1)
                w = w - torch.einsum("bj,bjd->bd", torch.einsum("bjd,bd->bj", Q[:, : j + 1], w), Q[:, : j + 1])
                w = w - torch.einsum("bj,bjd->bd", torch.einsum("bjd,bd->bj", Q[:, : j + 1], w), Q[:, : j + 1])
                beta[:, j] = w.norm(dim=1)
                q = w / beta[:, j : j + 1].clamp_min(1e-30)
            T = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
            ev = torch.linalg.eigvalsh(T.double())  # (B, m) ascending Ritz values
            lo.append(ev[:, 0].float())
            hi.append(ev[:, -1].float())
    return torch.cat(lo), torch.cat(hi)


def plane_curvature(surf: Surface) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of the 2x2 finite-difference Hessian of a 2-D surface at its interior grid points.

    Central differences with the grid's spacing; returns (smallest, largest), each of shape
    (len(coords[0]) - 2, len(coords[1]) - 2). A cheap 2-D stand-in for the full Hessian ratio: the
    curvature of the loss restricted to the plane that the contour plot shows.
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
    return (mean - dev).float(), (mean + dev).float()



def train_with_trajectory(build_model: Callable[[], nn.Module], data, config, *, spec: Mapping, cache: Cache | None = None,
                          ) -> tuple[nn.Module, object, list[Params]]:
    """Train with `genlens.core.train.train` and keep the weights after every epoch (for `pca_directions`).

    Returns (model in eval mode, History, [weights at initialization, after epoch 1, ...]) as CPU
    tensors; the whole result is cached under `spec` and `config` like `train_cached`.
    """
    from dataclasses import asdict

    from ..core.train import History, train

    store = cache or Cache()
    device = data.x_train.device
    full = {"spec": dict(spec), "train": asdict(config), "device": device.type, "what": "trajectory", "format": 1}
    model = build_model().to(device)

    def compute() -> dict:
        path = [{n: t.detach().cpu().clone() for n, t in weights(model).items()}]
        history = train(model, data, config, progress=False,
                        callback=lambda epoch, m, h: path.append({n: t.detach().cpu().clone() for n, t in weights(m).items()}))
        return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history.to_dict(), "path": path}

    hit = store.get_or_compute("trajectories", full, compute)
    model.load_state_dict(hit["model"])
    model.eval()
    return model, History.from_dict(hit["history"]), hit["path"]
