"""The Hessian of a training loss: products, extreme eigenpairs, trace and spectral density.

Yao, Gholami, Lei, Keutzer and Mahoney (NeurIPS 2018) and PyHessian (Yao et al. 2020) probe the
curvature of a network's loss with Hessian-vector products (HVPs) alone; this module does the same
with a few changes that users of PyHessian keep asking for:

* One operator, :class:`HessianOperator`, for the *dataset* loss
  ``L(w) = (1/N) sum_i loss(model(x_i), y_i)``: batches are weighted by their size, so the result
  does not depend on how the data are split. The HVP is exact, by forward-over-reverse
  differentiation (``torch.func.jvp`` of ``torch.func.grad``), with double backward as the fallback;
  ``cache_graph=True`` keeps each batch's gradient graph so that every later product is a single
  backward pass (PyHessian's single-batch trick, for data whose graphs fit in memory). The operator
  is taken at the model's parameters or at any other point ``w0``, and ``matmat(V, points=W)``
  multiplies each row of V by the Hessian at the matching row of W (one vmapped pass for many points).
* One Lanczos (full reorthogonalization, batched over rows) serves the top eigenpairs (``which="SA"``
  gives the most negative ones), the extreme eigenvalues at many points (:func:`extremes`, the loss
  landscape's non-convexity map) and the spectral density; the paper's power iteration with
  deflation is the alternative for eigenpairs.
* The model is evaluated in eval mode (BatchNorm uses its running statistics, dropout is off) and
  every submodule's mode is restored afterwards; the model's parameters and ``.grad`` are never touched.
* Vectors are flat (``(P,)`` for ``P`` selected parameters, in ``named_parameters`` order);
  :meth:`HessianOperator.unflatten` turns one into a ``{name: tensor}`` pytree and back.
* Every stochastic estimate draws from a ``torch.Generator`` (CPU; None: the global one) and reports
  its convergence (iterations, residuals, HVP count), its spread (over probe vectors, data subsets)
  and the number of samples used: with 128 samples PyHessian's top eigenvalue can be 10x off
  (PyHessian issue #5).

Eigenvalues are in units of loss per squared parameter (nats for cross-entropy). Shown in the
chapters ``hessian`` and ``landscape``.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nn import check_model, check_pair, check_tensor, eval_mode
from .krylov import lanczos as _lanczos, random_unit as _random_unit, ritz as _ritz

if TYPE_CHECKING:
    from ..core.cache import Cache
    from ..core.train import History, TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Method = Literal["auto", "forward_over_reverse", "double_backward"]
Which = Literal["LA", "SA"]

__all__ = [
    "HessianOperator", "full_precision", "EigenEstimate", "Extremes", "TraceEstimate", "SpectralDensity", "LayerCurvature", "Spread",
    "hvp", "eigenpairs", "extremes", "trace", "density", "per_layer", "gradient", "loss_along",
    "spread_over_subsets", "parameter_blocks", "tracker", "around_loss", "at_loss", "train_tracked",
]


# ----------------------------------------------------------------------------- the operator

@contextmanager
def full_precision() -> Iterator[None]:
    """No TF32 inside the block: CUDA convolutions and matrix products in full float32 (restored afterwards).

    cuDNN convolutions default to TF32 on Ampere and later GPUs (10 mantissa bits); a Hessian-vector
    product of a ResNet-20 then differs from the float64 one by about 10% (measured on an H200). Every
    product of :class:`HessianOperator` runs inside this block; on the CPU it changes nothing.
    """
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


def _batches(model: nn.Module, data, batch_size: int | None) -> list[Batch]:
    """`data` ((x, y) tensors, or a sequence of (x, y) batches) as a list of checked batches."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = check_pair(model, data)
        if len(x) == 0:
            raise ValueError("data: no samples")
        step = batch_size or len(x)
        return [(x[i : i + step], y[i : i + step]) for i in range(0, len(x), step)]
    if not isinstance(data, Iterable):
        raise TypeError(f"data must be (x, y) tensors or a sequence of (x, y) batches, got {type(data).__name__}")
    batches = [check_pair(model, b, f"data[{i}]") for i, b in enumerate(data)]
    if not batches:
        raise ValueError("data: no batches")
    return batches


def parameter_blocks(model: nn.Module) -> dict[str, list[str]]:
    """Trainable parameter names grouped by the module that owns them: {"net.1": ["net.1.weight", "net.1.bias"]}."""
    blocks: dict[str, list[str]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            blocks.setdefault(name.rpartition(".")[0] or name, []).append(name)
    return blocks


class HessianOperator:
    """The Hessian H of the dataset loss with respect to (a subset of) a model's parameters.

    data: ``(x, y)`` tensors on the model's device (split into ``batch_size`` rows per pass), or a
    sequence of ``(x, y)`` batches; loss_fn(outputs, targets) -> mean loss of a batch; params:
    parameter names to differentiate (default: every trainable parameter; the others are held
    fixed); w0: the flat point (P,) at which H is taken (default: the model's own parameters);
    method: "forward_over_reverse", "double_backward" or "auto" (the first, falling back to the
    second if torch.func cannot trace the model).

    cache_graph=True keeps each batch's gradient graph at w0 (double backward, as PyHessian does for
    one batch): every later product is one backward pass, at the cost of holding the graphs in memory.

    ``op(v)`` maps a flat ``(P,)`` vector to ``H v``; ``op.matmat(V)`` maps ``(m, P)`` to ``(m, P)``;
    ``op.matmat(V, points=W)`` gives row i as ``H(W[i]) V[i]``. ``op.hvp_count`` counts dataset-wide
    products (one per vector).
    """

    def __init__(self, model: nn.Module, data, *, loss_fn: LossFn = F.cross_entropy,
                 params: Sequence[str] | None = None, batch_size: int | None = None, method: Method = "auto",
                 cache_graph: bool = False, w0: torch.Tensor | None = None):
        check_model(model)
        if method not in ("auto", "forward_over_reverse", "double_backward"):
            raise ValueError(f"method must be 'auto', 'forward_over_reverse' or 'double_backward', got {method!r}")
        named = dict(model.named_parameters())
        names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
        unknown = [n for n in names if n not in named]
        if unknown or not names:
            raise ValueError(f"params must name parameters of the model, got {unknown or names}")
        self.model, self.loss_fn, self.method, self.names = model, loss_fn, method, names
        self.shapes = [named[n].shape for n in names]
        self.numels = [named[n].numel() for n in names]
        self.w0 = torch.cat([named[n].detach().reshape(-1) for n in names])
        if w0 is not None:
            self.w0 = self._check_points(check_tensor(w0, "w0", ndim=1)[None], "w0")[0]
        self.fixed = {n: p.detach() for n, p in named.items() if n not in set(names)}
        self.fixed |= dict(model.named_buffers())
        self.batches = _batches(model, data, batch_size)
        self.num_samples = sum(len(xb) for xb, _ in self.batches)
        self.hvp_count = 0
        self._vmap_ok = True
        self.cache_graph = cache_graph
        self._graphs: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    # -- vectors ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """P, the number of scalar parameters the Hessian is taken over."""
        return sum(self.numels)

    @property
    def dtype(self) -> torch.dtype:
        return self.w0.dtype

    @property
    def device(self) -> torch.device:
        return self.w0.device

    def _check_points(self, W: torch.Tensor, name: str) -> torch.Tensor:
        """W (m, P) detached in the operator's dtype, or a one-line error naming `name`."""
        check_tensor(W, name, ndim=2, floating=True, device=self.device)
        if W.shape[1] != self.size:
            raise ValueError(f"{name} must have {self.size} entries per row (one per parameter), "
                             f"got shape {tuple(W.shape)}")
        return W.detach().to(self.dtype)

    def unflatten(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat (P,) vector as {parameter name: tensor of that parameter's shape}."""
        if vec.shape != (self.size,):
            raise ValueError(f"vec must have shape ({self.size},), got {tuple(vec.shape)}")
        return {n: t.view(s) for n, t, s in zip(self.names, vec.split(self.numels), self.shapes)}

    def flatten(self, tree: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
        """{name: tensor} (or a list in `names` order) as one flat (P,) vector."""
        parts = [tree[n] for n in self.names] if isinstance(tree, Mapping) else list(tree)
        if len(parts) != len(self.names):
            raise ValueError(f"expected {len(self.names)} tensors, got {len(parts)}")
        return torch.cat([t.reshape(-1) for t in parts]).to(self.w0)

    # -- loss and products -----------------------------------------------------------------
    def _loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(self.model, {**self.unflatten(w), **self.fixed}, (x,))
        return self.loss_fn(out, y)

    def loss(self, w: torch.Tensor | None = None) -> float:
        """The dataset loss at flat parameters w (default: w0)."""
        w = self.w0 if w is None else w
        with torch.no_grad(), eval_mode(self.model):
            total = sum(self._loss(w, xb, yb).double() * len(xb) for xb, yb in self.batches)
        return float(total / self.num_samples)

    def gradient(self) -> torch.Tensor:
        """The full-dataset gradient at w0, flat (P,)."""
        g = torch.zeros_like(self.w0)
        with eval_mode(self.model), full_precision():
            for xb, yb in self.batches:
                g += torch.func.grad(self._loss)(self.w0, xb, yb) * len(xb)
        return g / self.num_samples

    def _forward_over_reverse(self, W: torch.Tensor, V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grad_fn = torch.func.grad(self._loss)

        def one(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(lambda u: grad_fn(u, x, y), (w,), (v,))[1]

        shared = W.dim() == 1  # one point for every vector, or one point per vector
        if len(V) > 1 and self._vmap_ok:
            try:
                return torch.func.vmap(one, in_dims=(None if shared else 0, 0))(W, V)
            except Exception:  # some layers have no batching rule: fall back to a loop
                self._vmap_ok = False
        return torch.stack([one(W if shared else W[i], v) for i, v in enumerate(V)])

    def _double_backward(self, W: torch.Tensor, V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        groups = [(W, V)] if W.dim() == 1 else [(W[i], V[i : i + 1]) for i in range(len(V))]
        out = []
        with torch.enable_grad():
            for w, vs in groups:
                w = w.detach().clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self._loss(w, x, y), w, create_graph=True)
                out += [torch.autograd.grad(g, w, v, retain_graph=i < len(vs) - 1)[0] for i, v in enumerate(vs)]
        return torch.stack(out)

    def _products(self, W: torch.Tensor, V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.method != "double_backward":
            try:
                return self._forward_over_reverse(W, V, x, y)
            except (RuntimeError, NotImplementedError):
                if self.method == "forward_over_reverse":
                    raise
                self.method = "double_backward"
        return self._double_backward(W, V, x, y)

    def _cached_matmat(self, V: torch.Tensor) -> torch.Tensor:
        if self._graphs is None:
            self._graphs = []
            with eval_mode(self.model), torch.enable_grad(), full_precision():
                for xb, yb in self.batches:
                    w = self.w0.clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(self._loss(w, xb, yb) * len(xb), w, create_graph=True)
                    self._graphs.append((w, g))
        out = torch.zeros_like(V)
        with full_precision():
            for w, g in self._graphs:
                for i, v in enumerate(V):
                    out[i] += torch.autograd.grad(g, w, v, retain_graph=True)[0]
        self.hvp_count += len(V)
        return out / self.num_samples

    def matmat(self, V: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """H V for m flat vectors V (m, P) -> (m, P): at w0, or row i at points[i] (points: (m, P))."""
        V = self._check_points(V, "V")
        if points is not None:
            points = self._check_points(points, "points")
            if len(points) != len(V):
                raise ValueError(f"points must have one row per vector: {len(V)} vectors, {len(points)} points")
        elif self.cache_graph:
            return self._cached_matmat(V)
        W = self.w0 if points is None else points
        out = torch.zeros_like(V)
        with eval_mode(self.model), full_precision():
            for xb, yb in self.batches:
                out += self._products(W, V, xb, yb).detach() * len(xb)
        self.hvp_count += len(V)
        return out / self.num_samples

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """H v for one flat (P,) vector."""
        return self.matmat(v[None])[0]


def hvp(model: nn.Module, data, v, *, loss_fn: LossFn = F.cross_entropy, params: Sequence[str] | None = None,
        batch_size: int | None = None, method: Method = "auto"):
    """The Hessian-vector product H v of the dataset loss (see :class:`HessianOperator`).

    v: a flat (P,) vector, an (m, P) stack of them, or a {name: tensor} pytree over the selected
    parameters; the result has the same form. Units: loss per parameter unit squared, times v.

    >>> net = nn.Linear(2, 1, bias=False)
    >>> x, y = torch.eye(2), torch.zeros(2, 1)
    >>> hvp(net, (x, y), torch.tensor([1.0, 0.0]), loss_fn=F.mse_loss)  # H = 2 X^T X / N = I
    tensor([1., 0.])
    """
    op = HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size, method=method)
    if isinstance(v, Mapping):
        return op.unflatten(op(op.flatten(v)))
    check_tensor(v, "v", ndim=(1, 2))
    return op.matmat(v) if v.dim() == 2 else op(v)


# ----------------------------------------------------------------------------- eigenpairs

@dataclass(frozen=True)
class EigenEstimate:
    """Eigenpairs of H: eigenvalues (k,) ordered from the requested end, eigenvectors (k, P) unit norm.

    residuals (k,): ||H u - lambda u|| per pair (a bound on each eigenvalue's error); iterations:
    Lanczos steps, or power steps per pair; hvp_count: dataset-wide HVPs used in all; num_samples:
    the number of data points the loss averages over.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    iterations: tuple[int, ...]
    hvp_count: int
    converged: bool
    num_samples: int
    method: str
    which: str


def _check_which(which: str) -> None:
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' (largest) or 'SA' (smallest, most negative), got {which!r}")


def _error_estimate(theta: torch.Tensor, idx: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """min(res, res^2 / gap) per wanted Ritz value theta[idx] (k,): res bounds the eigenvalue's error, and
    res^2 / gap (gap: the distance to the nearest other Ritz value; inf with none) is the Kato-Temple
    estimate of it, the quadratic convergence of a Ritz value (an estimate: the Ritz gap can exceed the
    true one early on)."""
    others = (theta[idx, None] - theta[None, :]).abs()  # (k, j)
    others[torch.arange(len(idx)), idx] = torch.inf
    gap = others.min(dim=1).values if len(theta) > 1 else torch.full_like(res, torch.inf)
    return torch.minimum(res, torch.where(torch.isinf(gap), res, res**2 / gap))


def _lanczos_eigs(op: HessianOperator, k: int, tol: float, atol: float, max_iter: int, which: str,
                  generator: torch.Generator | None, stop_on: str = "residual") -> EigenEstimate:
    def wanted(alpha: torch.Tensor, beta: torch.Tensor):
        theta, S = _ritz(alpha, beta)
        idx = torch.arange(len(theta))
        idx = idx.flip(0)[:k] if which == "LA" else idx[:k]
        res = (beta[-1] * S[-1, idx]).abs()
        err = res if stop_on == "residual" else _error_estimate(theta, idx, res)
        return theta[idx], S[:, idx], res, bool((err <= torch.clamp(tol * theta[idx].abs(), min=atol)).all())

    def stop(alpha: torch.Tensor, beta: torch.Tensor) -> bool:
        return alpha.shape[1] >= k and wanted(alpha[0], beta[0])[3]

    start = op.hvp_count
    alpha, beta, Q, (n,) = _lanczos(op.matmat, _random_unit(op.size, generator, op.w0)[None], max(max_iter, k), stop)
    theta, S, res, converged = wanted(alpha[0, :n], beta[0, :n])
    vecs = S.T.to(Q) @ Q[0, :n]  # (k, P); S is on the CPU, Q on the operator's device
    vecs = vecs / vecs.norm(dim=1, keepdim=True)
    return EigenEstimate(theta.to(op.dtype), vecs, res, (n,), op.hvp_count - start, converged, op.num_samples,
                         "lanczos", which)


def _power_eigs(op: HessianOperator, k: int, tol: float, max_iter: int, shift: float,
                generator: torch.Generator | None) -> tuple[list[float], list[torch.Tensor], list[float], list[int], bool]:
    """Power iteration with deflation on H - shift I (the paper's method, PyHessian's stopping rule)."""
    vals, vecs, res, iters, converged = [], [], [], [], True
    for _ in range(k):
        V = torch.stack(vecs) if vecs else None
        v = _random_unit(op.size, generator, op.w0)
        lam, ok = None, False
        for it in range(1, max_iter + 1):
            if V is not None:
                v = v - V.T @ (V @ v)
                v = v / v.norm()
            hv = op(v) - shift * v
            lam_new = torch.dot(hv, v).item()
            r = (hv - lam_new * v).norm().item()
            v = hv / hv.norm()
            if lam is not None and abs(lam_new - lam) / (abs(lam) + 1e-6) < tol:
                lam, ok = lam_new, True
                break
            lam = lam_new
        if V is not None:
            v = v - V.T @ (V @ v)
            v = v / v.norm()
        vals.append(lam + shift)
        vecs.append(v)
        res.append(r)
        iters.append(it)
        converged &= ok
    return vals, vecs, res, iters, converged


def eigenpairs(model: nn.Module, data, *, k: int = 1, tol: float = 1e-3, loss_fn: LossFn = F.cross_entropy,
               which: Which = "LA", method: Literal["lanczos", "power"] = "lanczos", max_iter: int = 100,
               atol: float = 0.0, stop_on: Literal["residual", "eigenvalue"] = "residual",
               params: Sequence[str] | None = None, batch_size: int | None = None,
               hvp_method: Method = "auto", cache_graph: bool = False, generator: torch.Generator | None = None,
               operator: HessianOperator | None = None) -> EigenEstimate:
    """The k extreme eigenpairs of the dataset-loss Hessian, with convergence information.

    which="LA": the k largest (algebraic) eigenvalues, in descending order; which="SA": the k
    smallest, most negative first (for |lambda_min / lambda_max| maps).

    method="lanczos": Lanczos with full reorthogonalization, stopped when every wanted Ritz pair has
    residual ||H u - theta u|| <= max(tol |theta|, atol), or after max_iter steps. stop_on="eigenvalue"
    stops instead when each eigenvalue's estimated error min(residual, residual^2 / gap) is below that
    (gap: the distance to the nearest other Ritz value): the eigenvalues to tol with fewer HVPs, the
    eigenvectors less accurate (their error goes as residual / gap); the residuals are reported either way.
    method="power": the paper's power iteration with deflation, stopped as PyHessian stops, when the
    eigenvalue changes by less than tol relative (at most max_iter steps per pair). Power iteration
    finds the largest |lambda|; which="SA" runs it on the shifted H - lambda_max I, as in the
    loss-landscape code. The generator draws the start vectors. hvp_method and cache_graph choose
    how products are computed (see :class:`HessianOperator`); `operator` reuses one.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if tol <= 0 and atol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    _check_which(which)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    if stop_on not in ("residual", "eigenvalue"):
        raise ValueError(f"stop_on must be 'residual' or 'eigenvalue', got {stop_on!r}")
    op = operator or HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size,
                                     method=hvp_method, cache_graph=cache_graph)
    if k > op.size:
        raise ValueError(f"k must be <= the number of parameters {op.size}, got {k}")
    if method == "lanczos":
        return _lanczos_eigs(op, k, tol, atol, max_iter, which, generator, stop_on)
    start = op.hvp_count
    shift, iters0 = 0.0, []
    if which == "SA":
        top, _, _, iters0, _ = _power_eigs(op, 1, tol, max_iter, 0.0, generator)
        shift = top[0]
    vals, vecs, res, iters, converged = _power_eigs(op, k, tol, max_iter, shift, generator)
    order = sorted(range(k), key=lambda i: -vals[i] if which == "LA" else vals[i])
    return EigenEstimate(torch.tensor([vals[i] for i in order], dtype=op.dtype), torch.stack([vecs[i] for i in order]),
                         torch.tensor([res[i] for i in order]), tuple(iters0 + iters), op.hvp_count - start,
                         converged, op.num_samples, "power", which)


@dataclass(frozen=True)
class Extremes:
    """Smallest and largest Hessian eigenvalue at each of B parameter points, by `steps` Lanczos steps.

    lambda_min, lambda_max (B,): the extreme Ritz values; residual_min, residual_max (B,): their
    residuals ||H u - theta u|| (bounds on their errors); hvp_count: dataset-wide HVPs in all.
    """

    lambda_min: torch.Tensor
    lambda_max: torch.Tensor
    residual_min: torch.Tensor
    residual_max: torch.Tensor
    steps: int
    hvp_count: int
    num_samples: int

    @property
    def ratio(self) -> torch.Tensor:
        """|lambda_min / lambda_max| (B,): the non-convexity of Li et al. (2018), Fig. 7."""
        return self.lambda_min.abs() / self.lambda_max.abs()


def extremes(model: nn.Module, data, points: torch.Tensor | None = None, *, loss_fn: LossFn = F.cross_entropy,
             steps: int = 20, points_per_pass: int = 8, params: Sequence[str] | None = None,
             batch_size: int | None = None, generator: torch.Generator | None = None,
             operator: HessianOperator | None = None) -> Extremes:
    """lambda_min and lambda_max of the Hessian at each row of `points` (B, P) (default: the model's point).

    `steps` Lanczos steps per point with full reorthogonalization, from one random start vector
    (drawn from `generator`) shared by every point, as the loss-landscape code runs ARPACK's Lanczos
    at each grid point; `points_per_pass` points share one vmapped pass of HVPs. The residuals say
    how far each estimate may be off.
    """
    if steps < 1 or points_per_pass < 1:
        raise ValueError(f"steps and points_per_pass must be >= 1, got {steps}, {points_per_pass}")
    op = operator or HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size)
    W = op.w0[None] if points is None else op._check_points(points, "points")
    v0 = _random_unit(op.size, generator, op.w0)
    start, out = op.hvp_count, []
    for chunk in W.split(points_per_pass):  # (b, P)
        alpha, beta, _, lengths = _lanczos(lambda V: op.matmat(V, points=chunk), v0.expand(len(chunk), -1), steps)
        for a, b, n in zip(alpha, beta, lengths):
            theta, S = _ritz(a[:n], b[:n])
            last = b[n - 1] * S[-1]  # (n,): residual of every Ritz pair
            out.append([theta[0].item(), theta[-1].item(), abs(last[0]).item(), abs(last[-1]).item()])
    lo, hi, r_lo, r_hi = torch.tensor(out, dtype=torch.float64).T
    return Extremes(lo.to(op.dtype), hi.to(op.dtype), r_lo, r_hi, min(steps, op.size), op.hvp_count - start,
                    op.num_samples)


# ----------------------------------------------------------------------------- trace and density

@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate of tr(H): value = mean of v^T H v over Rademacher probes v.

    std_error: standard error of that mean (spread over probes); samples: every v^T H v."""

    value: float
    std_error: float
    samples: tuple[float, ...]
    hvp_count: int
    converged: bool
    num_samples: int


def trace(model: nn.Module, data, *, loss_fn: LossFn = F.cross_entropy, tol: float = 1e-2, max_probes: int = 200,
          min_probes: int = 10, block: int = 10, params: Sequence[str] | None = None, batch_size: int | None = None,
          generator: torch.Generator | None = None, operator: HessianOperator | None = None) -> TraceEstimate:
    """tr(H) by Hutchinson's method, in blocks of `block` Rademacher probes (computed together).

    Stops when the standard error of the mean is below tol * |mean| (after at least min_probes), or
    after max_probes probes.
    """
    if min_probes < 2 or max_probes < min_probes:
        raise ValueError(f"need 2 <= min_probes <= max_probes, got {min_probes}, {max_probes}")
    op = operator or HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size)
    start, samples, converged = op.hvp_count, [], False
    while len(samples) < max_probes:
        m = min(block, max_probes - len(samples))
        V = torch.randint(0, 2, (m, op.size), generator=generator).to(op.w0) * 2 - 1
        samples += (V * op.matmat(V)).sum(1).tolist()
        t = torch.tensor(samples, dtype=torch.float64)
        if len(t) >= min_probes and (t.std() / math.sqrt(len(t))).item() <= tol * abs(t.mean().item()):
            converged = True
            break
    t = torch.tensor(samples, dtype=torch.float64)
    return TraceEstimate(t.mean().item(), (t.std() / math.sqrt(len(t))).item(), tuple(samples), op.hvp_count - start,
                         converged, op.num_samples)


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature: nodes and weights (runs, steps); weights of each run sum to 1.

    The density is sum_j w_j delta(lambda - node_j), averaged over runs; `curve` broadens it.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    num_params: int
    hvp_count: int
    num_samples: int

    def curve(self, grid: torch.Tensor | None = None, sigma: float | None = None,
              num: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(grid, density) with Gaussian broadening of width sigma (default 1% of the range)."""
        lo, hi = self.nodes.min().item(), self.nodes.max().item()
        pad = 0.05 * max(hi - lo, 1e-12)
        grid = torch.linspace(lo - pad, hi + pad, num, dtype=torch.float64) if grid is None else grid.double()
        sigma = sigma or 0.01 * max(hi - lo, 1e-12)
        z = (grid[:, None, None] - self.nodes[None].double()) / sigma
        dens = (self.weights[None].double() * torch.exp(-0.5 * z**2)).sum(-1).mean(-1) / (sigma * math.sqrt(2 * math.pi))
        return grid, dens

    def trace_samples(self) -> torch.Tensor:
        """P * sum_j w_j node_j for each run (runs,) float64.

        Each equals v^T H v for the run's Rademacher start v (||v||^2 = P): the Gauss quadrature of
        q^T H q is exact, so stochastic Lanczos quadrature estimates the trace exactly as Hutchinson's
        method does with one probe per run, and with its variance.
        """
        return self.num_params * (self.weights.double() * self.nodes.double()).sum(1)

    def trace(self) -> float:
        """tr(H) = P * E[sum_j w_j node_j]: a trace estimate from the same runs (the mean of `trace_samples`)."""
        return self.trace_samples().mean().item()


def density(model: nn.Module, data, *, loss_fn: LossFn = F.cross_entropy, steps: int = 80, runs: int = 1,
            params: Sequence[str] | None = None, batch_size: int | None = None,
            generator: torch.Generator | None = None, operator: HessianOperator | None = None) -> SpectralDensity:
    """The Hessian's spectral density by stochastic Lanczos quadrature (`runs` Rademacher starts).

    Each run does `steps` Lanczos steps with full reorthogonalization (the runs share one batched
    pass); its nodes are the Ritz values and its weights the squared first components of the Ritz
    vectors (PyHessian after its PR #23).
    """
    if steps < 1 or runs < 1:
        raise ValueError(f"steps and runs must be >= 1, got {steps}, {runs}")
    op = operator or HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size)
    start, nodes, weights = op.hvp_count, [], []
    V0 = torch.randint(0, 2, (runs, op.size), generator=generator).to(op.w0) * 2 - 1
    alpha, beta, _, lengths = _lanczos(op.matmat, V0 / V0.norm(dim=1, keepdim=True), steps)
    width = alpha.shape[1]
    for a, b, n in zip(alpha, beta, lengths):
        theta, S = _ritz(a[:n], b[:n])
        pad = width - n  # early breakdown: exact, pad with zero-weight nodes
        nodes.append(torch.cat([theta, theta[-1:].expand(pad)]))
        weights.append(torch.cat([S[0] ** 2, torch.zeros(pad, dtype=S.dtype)]))
    return SpectralDensity(torch.stack(nodes), torch.stack(weights), op.size, op.hvp_count - start, op.num_samples)


# ----------------------------------------------------------------------------- per layer, spread

@dataclass(frozen=True)
class LayerCurvature:
    """Top eigenvalue (with its residual) and trace (with its standard error) of one diagonal block of H."""

    name: str
    params: int
    top_eigenvalue: float
    top_residual: float
    trace: float
    trace_std_error: float
    hvp_count: int


def per_layer(model: nn.Module, data, *, loss_fn: LossFn = F.cross_entropy,
              blocks: Mapping[str, Sequence[str]] | None = None, tol: float = 1e-3, trace_tol: float = 1e-2,
              max_probes: int = 100, batch_size: int | None = None,
              generator: torch.Generator | None = None) -> tuple[LayerCurvature, ...]:
    """Top eigenvalue and trace of each diagonal block of H (one block per layer by default).

    blocks: {block name: parameter names} (default :func:`parameter_blocks`), in order. The traces
    of the blocks add up to tr(H); their top eigenvalues are each <= lambda_max(H).
    """
    out = []
    for name, names in (blocks or parameter_blocks(model)).items():
        op = HessianOperator(model, data, loss_fn=loss_fn, params=list(names), batch_size=batch_size)
        eig = eigenpairs(model, data, tol=tol, operator=op, generator=generator)
        tr = trace(model, data, tol=trace_tol, max_probes=max_probes, operator=op, generator=generator)
        out.append(LayerCurvature(name, op.size, eig.eigenvalues[0].item(), eig.residuals[0].item(), tr.value,
                                  tr.std_error, op.hvp_count))
    return tuple(out)


def gradient(model: nn.Module, data, *, loss_fn: LossFn = F.cross_entropy, params: Sequence[str] | None = None,
             batch_size: int | None = None) -> torch.Tensor:
    """The full-dataset gradient, flat (P,) (its norm is the paper's Figure 5 quantity)."""
    return HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size).gradient()


@torch.no_grad()
def loss_along(model: nn.Module, data, direction: torch.Tensor, steps: Iterable[float], *,
               loss_fn: LossFn = F.cross_entropy, params: Sequence[str] | None = None,
               batch_size: int | None = None) -> torch.Tensor:
    """The dataset loss at w + t * direction for each t in steps: (T,) float64 (direction flat (P,))."""
    op = HessianOperator(model, data, loss_fn=loss_fn, params=params, batch_size=batch_size)
    if direction.shape != (op.size,):
        raise ValueError(f"direction must have shape ({op.size},), got {tuple(direction.shape)}")
    return torch.tensor([op.loss(op.w0 + float(t) * direction.to(op.w0)) for t in steps], dtype=torch.float64)


@dataclass(frozen=True)
class Spread:
    """An estimate repeated on random data subsets of `sample_size` points each: its `values` and their spread."""

    values: tuple[float, ...]
    sample_size: int

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof = 1; 0 for one value)."""
        return torch.tensor(self.values, dtype=torch.float64).std().item() if len(self.values) > 1 else 0.0

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


def _headline(result: "EigenEstimate | TraceEstimate | float | torch.Tensor") -> float:
    """The number an estimate stands for: the first eigenvalue, the trace, or a number itself."""
    if isinstance(result, EigenEstimate):
        return result.eigenvalues[0].item()
    if isinstance(result, TraceEstimate):
        return result.value
    return float(result)


def spread_over_subsets(estimate: Callable[..., "EigenEstimate | TraceEstimate | float"], data: Batch, *,
                        sample_size: int, repeats: int = 5, generator: torch.Generator | None = None) -> Spread:
    """Run estimate((x_sub, y_sub), generator=generator) on `repeats` random subsets of `sample_size`
    rows of data (x, y), e.g. ``estimate=functools.partial(eigenpairs, model, tol=1e-2)``.

    Shows how much a Hessian estimate moves with the data it is computed on (and its own random
    draws, which continue the same generator). An `EigenEstimate` counts by its first eigenvalue,
    a `TraceEstimate` by its value.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"data must be an (inputs, targets) pair of tensors, got {type(data).__name__}")
    x, y = check_tensor(data[0], "data[0]"), check_tensor(data[1], "data[1]")
    if len(x) != len(y):
        raise ValueError(f"data: {len(x)} inputs but {len(y)} targets")
    if not 1 <= sample_size <= len(x):
        raise ValueError(f"sample_size must be in [1, {len(x)}], got {sample_size}")
    values = []
    for _ in range(repeats):
        idx = torch.randperm(len(x), generator=generator)[:sample_size].to(x.device)
        values.append(_headline(estimate((x[idx], y[idx]), generator=generator)))
    return Spread(tuple(values), sample_size)


# ----------------------------------------------------------------------------- along training

def tracker(data, gradient_data=None, *, loss_fn: LossFn = F.cross_entropy, tol: float = 1e-2, max_iter: int = 50,
            batch_size: int | None = None, generator: torch.Generator | None = None,
            when: Callable[[int, object], bool] | None = None) -> Callable[[int, nn.Module, object], None]:
    """An epoch callback for `genlens.core.train`: appends the top Hessian eigenvalue (on `data`) and
    the full-gradient norm (on `gradient_data`, default the same data) to history.extra["top_eigenvalue"]
    and history.extra["grad_norm"] (the paper's Figure 5), and the epoch to history.extra["tracked_epoch"].
    when(epoch, history) -> bool picks the epochs that are measured (default: every one; see
    :func:`around_loss`). Both pass over the data in chunks of `batch_size` rows (None: all at once).
    Epoch e draws its Lanczos start from a generator seeded with base + e, base drawn once from
    `generator`, so a resumed run records what an uninterrupted one would.
    """
    base = int(torch.randint(0, 2**62, (1,), generator=generator))

    def callback(epoch: int, model: nn.Module, history) -> None:
        if when is not None and not when(epoch, history):
            return
        gen = torch.Generator().manual_seed(base + epoch)
        est = eigenpairs(model, data, loss_fn=loss_fn, tol=tol, max_iter=max_iter, batch_size=batch_size,
                         generator=gen)
        g = gradient(model, data if gradient_data is None else gradient_data, loss_fn=loss_fn, batch_size=batch_size)
        history.extra.setdefault("top_eigenvalue", []).append(est.eigenvalues[0].item())
        history.extra.setdefault("grad_norm", []).append(g.norm().item())
        history.extra.setdefault("tracked_epoch", []).append(epoch)
    return callback


def around_loss(target: float) -> Callable[[int, object], bool]:
    """A `when` for :func:`tracker`: the first epoch, and the epochs around the one where the training
    loss first falls to `target` (an epoch at or below it, or one whose loss, extrapolated
    geometrically from the last two epochs, reaches it in the next epoch), so that
    :func:`at_loss` can interpolate there without measuring every epoch of a long run.

    >>> from types import SimpleNamespace
    >>> when = around_loss(0.1)
    >>> [when(e, SimpleNamespace(train_loss=loss)) for e, loss in enumerate([[1.0], [1.0, 0.5], [1.0, 0.5, 0.2]])]
    [True, False, True]
    """
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")

    def when(epoch: int, history) -> bool:
        loss = history.train_loss
        if epoch == 0 or loss[-1] <= target:
            return True
        return len(loss) >= 2 and loss[-1] ** 2 / max(loss[-2], 1e-30) <= target
    return when


def at_loss(history, target: float, key: str = "top_eigenvalue") -> float:
    """history.extra[key] at the training loss `target`: interpolated linearly in (log loss, log value)
    between the last tracked epoch above the target and the first at or below it (that epoch's value
    where the epoch before was not tracked). Raises ValueError if the run never reached the target.
    """
    epochs, values = history.extra.get("tracked_epoch", []), history.extra.get(key, [])
    if len(epochs) != len(values) or not epochs:
        raise ValueError(f"history has no tracked {key!r} with its epochs")
    loss = {e: history.train_loss[i] for i, e in enumerate(history.epoch)}
    below = [i for i, e in enumerate(epochs) if loss[e] <= target]
    if not below:
        raise ValueError(f"the run never reached training loss {target:g} (last {history.train_loss[-1]:.3g})")
    j = below[0]
    if j == 0 or epochs[j - 1] != epochs[j] - 1 or values[j] <= 0 or values[j - 1] <= 0:
        return float(values[j])
    l0, l1 = math.log(loss[epochs[j - 1]]), math.log(loss[epochs[j]])
    t = 1.0 if l0 == l1 else (l0 - math.log(target)) / (l0 - l1)
    return float(math.exp((1 - t) * math.log(values[j - 1]) + t * math.log(values[j])))


def train_tracked(data, config: "TrainConfig", *, model: str, model_kwargs: Mapping | None = None, hessian_data: Batch,
                  fgsm_eps: float = 0.0, batch_size: int | None = None, cache: "Cache | None" = None,
                  progress: bool = False, track: bool | str = True) -> tuple[nn.Module, "History"]:
    """Train `model` (a `genlens.core.models` name) on `data` (an ImageData) with :func:`tracker` on
    `hessian_data` (the gradient norm on the whole training set), cached by its specification; the
    initialisation is seeded by config.seed (in `core.train.train_cached`), as is the tracker.

    Every epoch is measured; a config with `stop_at_train_loss` (which needs `exact_train_metrics`)
    trains until the training loss reaches it and measures only :func:`around_loss` it, so that
    :func:`at_loss` gives the curvature at that loss. track="ends" measures only the first and the last
    epoch; track=False trains without measuring.
    fgsm_eps > 0 replaces every training batch by its FGSM adversarial version of that L-inf radius
    (the paper's robust training, Sec. 5). Returns (model in eval mode, History with extra
    "top_eigenvalue", "grad_norm" and "tracked_epoch"), as `genlens.core.train.train_cached` does.
    """
    from functools import partial

    from ..core.models import build_for
    from ..core.train import train_cached
    from .attacks import fgsm

    target = config.stop_at_train_loss
    if target is not None and not config.exact_train_metrics:
        raise ValueError("a config with stop_at_train_loss needs exact_train_metrics=True (the whole set's loss)")
    if track not in (True, False, "ends"):
        raise ValueError(f"track must be True, False or 'ends', got {track!r}")
    kwargs = dict(model_kwargs or {})
    spec = {"data": data.name, "n_train": len(data.x_train), "model": model, "model_kwargs": kwargs,
            "adversarial_fgsm_eps": fgsm_eps}
    if track:
        spec["track"] = ["hessian-top", len(hessian_data[0]), config.seed] + ([] if target is None else ["around", target])
        spec["track"] += ["ends"] if track == "ends" else []
    ends = lambda epoch, history: epoch in (0, config.epochs - 1)  # noqa: E731
    when = around_loss(target) if target is not None else ends if track == "ends" else None
    callback = tracker(hessian_data, (data.x_train, data.y_train), batch_size=batch_size,
                       generator=torch.Generator().manual_seed(config.seed), when=when) if track else None
    return train_cached(partial(build_for, model, data.image_shape, data.num_classes, **kwargs), data, config,
                        spec=spec, cache=cache, callback=callback, progress=progress,
                        perturb=partial(fgsm, eps=fgsm_eps) if fgsm_eps else None)
