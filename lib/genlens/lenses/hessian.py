"""The Hessian of a training loss: products, top eigenpairs, trace and spectral density.

Yao, Gholami, Lei, Keutzer and Mahoney (NeurIPS 2018) and PyHessian (Yao et al. 2020) probe the
curvature of a network's loss with Hessian-vector products (HVPs) alone; this module does the same
with a few changes that users of PyHessian keep asking for:

* One operator, :class:`HessianOperator`, for the *dataset* loss
  ``L(w) = (1/N) sum_i loss(model(x_i), y_i)``: batches are weighted by their size, so the result
  does not depend on how the data are split. The HVP is exact, by forward-over-reverse
  differentiation (``torch.func.jvp`` of ``torch.func.grad``), with double backward as the fallback;
  ``cache_graph=True`` keeps each batch's gradient graph so that every later product is a single
  backward pass (PyHessian's single-batch trick, for data whose graphs fit in memory).
* Top eigenpairs by Lanczos (default; ``which="SA"`` gives the most negative ones) or by the
  paper's power iteration with deflation.
* The model is evaluated in eval mode (BatchNorm uses its running statistics, dropout is off) and
  its mode is restored afterwards; the model's parameters and ``.grad`` are never touched.
* Vectors are flat (``(P,)`` for ``P`` selected parameters, in ``named_parameters`` order);
  :meth:`HessianOperator.unflatten` turns one into a ``{name: tensor}`` pytree and back.
* Every stochastic estimate takes a seed, and reports its convergence (iterations, residuals, HVP
  count), its spread (over probe vectors, data subsets or seeds) and the number of samples used:
  with 128 samples PyHessian's top eigenvalue can be 10x off (PyHessian issue #5).

Eigenvalues are in units of loss per squared parameter (nats for cross-entropy).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Literal, Mapping, Sequence

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = "tuple[torch.Tensor, torch.Tensor] | Sequence[tuple[torch.Tensor, torch.Tensor]]"
Method = Literal["auto", "forward_over_reverse", "double_backward"]
Which = Literal["LA", "SA"]

__all__ = [
    "HessianOperator", "EigenEstimate", "TraceEstimate", "SpectralDensity", "Spread",
    "hvp", "eigenpairs", "top_eigenvalues", "trace", "density", "per_layer", "gradient",
    "loss_along", "spread_over_subsets", "parameter_blocks", "tracker",
]


# ----------------------------------------------------------------------------- the operator

def _batches(data, batch_size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Normalize `data` ((x, y) tensors, or a sequence of (x, y) batches) to a list of batches."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"data: x has {len(x)} rows but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("data: empty")
        step = batch_size or len(x)
        return [(x[i : i + step], y[i : i + step]) for i in range(0, len(x), step)]
    try:
        batches = [(xb, yb) for xb, yb in data]
    except (TypeError, ValueError):
        raise TypeError(f"data must be (x, y) tensors or a sequence of (x, y) batches, got {type(data).__name__}") from None
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


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


class HessianOperator:
    """The Hessian H of the dataset loss with respect to (a subset of) a model's parameters.

    model: an ``nn.Module``; loss_fn(outputs, targets) -> mean loss of a batch (e.g.
    ``F.cross_entropy``); data: ``(x, y)`` tensors (split into ``batch_size`` rows per pass), or a
    sequence of ``(x, y)`` batches; params: parameter names to differentiate (default: every
    trainable parameter; the others are held fixed); method: "forward_over_reverse", "double_backward"
    or "auto" (the first, falling back to the second if torch.func cannot trace the model).

    cache_graph=True keeps each batch's gradient graph (double backward, as PyHessian does for one
    batch): every later product is one backward pass, at the cost of holding the graphs in memory.

    ``op(v)`` maps a flat ``(P,)`` vector to ``H v`` and ``op.matmat(V)`` maps ``(m, P)`` to
    ``(m, P)``; ``op.hvp_count`` counts dataset-wide products (one per vector).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, *, params: Sequence[str] | None = None,
                 batch_size: int | None = None, method: Method = "auto", cache_graph: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if method not in ("auto", "forward_over_reverse", "double_backward"):
            raise ValueError(f"method must be 'auto', 'forward_over_reverse' or 'double_backward', got {method!r}")
        named = dict(model.named_parameters())
        names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
        unknown = [n for n in names if n not in named]
        if unknown or not names:
            raise ValueError(f"params must name parameters of the model, got {unknown or names}")
        self.model, self.loss_fn, self.method = model, loss_fn, method
        self.names = names
        self.shapes = [named[n].shape for n in names]
        self.numels = [named[n].numel() for n in names]
        self.w0 = torch.cat([named[n].detach().reshape(-1) for n in names])
        self.fixed = {n: p.detach() for n, p in named.items() if n not in set(names)}
        self.fixed |= {n: b for n, b in model.named_buffers()}
        self.batches = _batches(data, batch_size)
        self.num_samples = sum(len(xb) for xb, _ in self.batches)
        self.hvp_count = 0
        self._vmap_ok = True
        self.cache_graph = cache_graph
        self._graphs: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    # -- vectors ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """P, the number of scalar parameters the Hessian is taken over."""
        return self.w0.numel()

    @property
    def dtype(self) -> torch.dtype:
        return self.w0.dtype

    @property
    def device(self) -> torch.device:
        return self.w0.device

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
        return torch.cat([t.reshape(-1) for t in parts]).to(self.dtype)

    # -- loss and products -----------------------------------------------------------------
    def _loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(self.model, {**self.unflatten(w), **self.fixed}, (x,))
        return self.loss_fn(out, y)

    def loss(self, w: torch.Tensor | None = None) -> float:
        """The dataset loss at flat parameters w (default: the model's own)."""
        w = self.w0 if w is None else w
        with torch.no_grad(), _eval_mode(self.model):
            total = sum(self._loss(w, xb, yb).double() * len(xb) for xb, yb in self.batches)
        return float(total / self.num_samples)

    def gradient(self) -> torch.Tensor:
        """The full-dataset gradient at the model's parameters, flat (P,)."""
        g = torch.zeros_like(self.w0)
        with _eval_mode(self.model):
            for xb, yb in self.batches:
                g += torch.func.grad(self._loss)(self.w0, xb, yb) * len(xb)
        return g / self.num_samples

    def _hvp_batch_fwd(self, V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grad_fn = torch.func.grad(self._loss)

        def one(v: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(lambda w: grad_fn(w, x, y), (self.w0,), (v,))[1]

        if len(V) == 1 or not self._vmap_ok:
            return torch.stack([one(v) for v in V])
        try:
            return torch.func.vmap(one)(V)
        except Exception:  # some layers have no batching rule: fall back to a loop
            self._vmap_ok = False
            return torch.stack([one(v) for v in V])

    def _hvp_batch_dbl(self, V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.w0.clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self._loss(w, x, y), w, create_graph=True)
            return torch.stack([torch.autograd.grad(g, w, v, retain_graph=i < len(V) - 1)[0]
                                for i, v in enumerate(V)])

    def _cached_matmat(self, V: torch.Tensor) -> torch.Tensor:
        if self._graphs is None:
            self._graphs = []
            with _eval_mode(self.model), torch.enable_grad():
                for xb, yb in self.batches:
                    w = self.w0.clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(self._loss(w, xb, yb) * len(xb), w, create_graph=True)
                    self._graphs.append((w, g))
        out = torch.zeros_like(V)
        for w, g in self._graphs:
            for i, v in enumerate(V):
                out[i] += torch.autograd.grad(g, w, v, retain_graph=True)[0]
        self.hvp_count += len(V)
        return out / self.num_samples

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """H V for m flat vectors V of shape (m, P); returns (m, P)."""
        if V.dim() != 2 or V.shape[1] != self.size:
            raise ValueError(f"V must have shape (m, {self.size}), got {tuple(V.shape)}")
        V = V.to(self.dtype)
        if self.cache_graph:
            return self._cached_matmat(V)
        out = torch.zeros_like(V)
        with _eval_mode(self.model):
            for xb, yb in self.batches:
                if self.method == "double_backward":
                    hv = self._hvp_batch_dbl(V, xb, yb)
                elif self.method == "forward_over_reverse":
                    hv = self._hvp_batch_fwd(V, xb, yb)
                else:
                    try:
                        hv = self._hvp_batch_fwd(V, xb, yb)
                    except (RuntimeError, NotImplementedError):
                        self.method = "double_backward"
                        hv = self._hvp_batch_dbl(V, xb, yb)
                out += hv.detach() * len(xb)
        self.hvp_count += len(V)
        return out / self.num_samples

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """H v for one flat (P,) vector."""
        return self.matmat(v[None])[0]


def hvp(model: nn.Module, loss_fn: LossFn, data, v, *, params: Sequence[str] | None = None,
        batch_size: int | None = None, method: Method = "auto"):
    """The Hessian-vector product H v of the dataset loss (see :class:`HessianOperator`).

    v: a flat (P,) vector, an (m, P) stack of them, or a {name: tensor} pytree over the selected
    parameters; the result has the same form. Units: loss per parameter unit squared, times v.
    """
    op = HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size, method=method)
    if isinstance(v, Mapping):
        return op.unflatten(op(op.flatten(v)))
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a tensor or a {{name: tensor}} mapping, got {type(v).__name__}")
    return op.matmat(v) if v.dim() == 2 else op(v)


# ----------------------------------------------------------------------------- eigenpairs

@dataclass
class EigenEstimate:
    """Eigenpairs of H: eigenvalues (k,) ordered from the requested end, eigenvectors (k, P) unit norm.

    residuals (k,): ||H u - lambda u|| per pair (a bound on each eigenvalue's error); iterations:
    Lanczos steps, or power steps per pair; hvp_count: dataset-wide HVPs used in all; num_samples:
    the number of data points the loss averages over.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    iterations: list[int]
    hvp_count: int
    converged: bool
    num_samples: int
    method: str
    which: str

    def __iter__(self):  # unpacks as (eigenvalues, eigenvectors)
        return iter((self.eigenvalues, self.eigenvectors))


def _check_which(which: str) -> None:
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' (largest) or 'SA' (smallest, most negative), got {which!r}")


def _random_unit(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    v = torch.randn(n, generator=generator, dtype=torch.float64).to(device=like.device, dtype=like.dtype)
    return v / v.norm()


def _lanczos(op: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int,
             stop: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], bool] | None = None):
    """Lanczos with full reorthogonalization from unit v0. Returns (alpha, beta, Q (j, P)).

    stop(alpha, beta, Q) is asked after each step; T = tridiag(beta[:-1], alpha, beta[:-1]).
    """
    n = v0.numel()
    steps = min(steps, n)
    Q = torch.zeros(steps, n, dtype=v0.dtype, device=v0.device)
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)
    q = v0
    for j in range(steps):
        Q[j] = q
        w = op(q)
        alpha[j] = torch.dot(w, q).item()
        for _ in range(2):  # classical Gram-Schmidt, twice: keeps Q orthonormal to working precision
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta[j] = w.norm().item()
        done = stop is not None and stop(alpha[: j + 1], beta[: j + 1], Q[: j + 1])
        if done or beta[j] <= 1e-10 * max(abs(alpha[: j + 1]).max().item(), 1e-30) or j == steps - 1:
            return alpha[: j + 1], beta[: j + 1], Q[: j + 1]
        q = w / beta[j]
    return alpha, beta, Q  # pragma: no cover


def _ritz(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    T = torch.diag(alpha) + torch.diag(beta[:-1], 1) + torch.diag(beta[:-1], -1)
    return torch.linalg.eigh(T)  # ascending theta (j,), S (j, j)


def _lanczos_eigs(op: HessianOperator, k: int, tol: float, atol: float, max_iter: int, which: str,
                  generator: torch.Generator) -> EigenEstimate:
    state: dict[str, object] = {}

    def pick(theta: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(len(theta))
        return idx.flip(0)[:k] if which == "LA" else idx[:k]

    def stop(alpha, beta, Q) -> bool:
        if len(alpha) < k:
            return False
        theta, S = _ritz(alpha, beta)
        idx = pick(theta)
        res = (beta[-1] * S[-1, idx]).abs()
        state.update(theta=theta[idx], S=S[:, idx], res=res)
        return bool((res <= torch.clamp(tol * theta[idx].abs(), min=atol)).all())

    start = op.hvp_count
    alpha, beta, Q = _lanczos(op, _random_unit(op.size, generator, op.w0), max(max_iter, k), stop)
    if "theta" not in state or len(state["S"]) != len(alpha):  # breakdown before k steps
        stop(alpha, beta, Q)
    theta, S, res = state["theta"], state["S"], state["res"]
    vecs = (S.T.to(Q.dtype) @ Q)
    vecs = vecs / vecs.norm(dim=1, keepdim=True)
    converged = bool((res <= torch.clamp(tol * theta.abs(), min=atol)).all())
    return EigenEstimate(theta.to(op.dtype), vecs, res, [len(alpha)], op.hvp_count - start, converged,
                         op.num_samples, "lanczos", which)


def _power_eigs(op: HessianOperator, k: int, tol: float, max_iter: int, shift: float,
                generator: torch.Generator) -> tuple[list[float], list[torch.Tensor], list[float], list[int], bool]:
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


def eigenpairs(model: nn.Module, loss_fn: LossFn, data, k: int = 1, tol: float = 1e-3, *,
               which: Which = "LA", method: Literal["lanczos", "power"] = "lanczos", max_iter: int = 100,
               atol: float = 0.0, params: Sequence[str] | None = None, batch_size: int | None = None,
               hvp_method: Method = "auto", cache_graph: bool = False, seed: int = 0,
               operator: HessianOperator | None = None) -> EigenEstimate:
    """The k extreme eigenpairs of the dataset-loss Hessian, with convergence information.

    which="LA": the k largest (algebraic) eigenvalues, in descending order; which="SA": the k
    smallest, most negative first (for |lambda_min / lambda_max| maps).

    method="lanczos": Lanczos with full reorthogonalization, stopped when every wanted Ritz pair has
    residual ||H u - theta u|| <= max(tol |theta|, atol), or after max_iter steps.
    method="power": the paper's power iteration with deflation, stopped as PyHessian stops, when the
    eigenvalue changes by less than tol relative (at most max_iter steps per pair). Power iteration
    finds the largest |lambda|; which="SA" runs it on the shifted H - lambda_max I, as in the
    loss-landscape code. The seed draws the start vectors. hvp_method and cache_graph choose how
    products are computed (see :class:`HessianOperator`).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if tol <= 0 and atol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    _check_which(which)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    op = operator or HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size, method=hvp_method,
                                     cache_graph=cache_graph)
    if k > op.size:
        raise ValueError(f"k must be <= the number of parameters {op.size}, got {k}")
    gen = torch.Generator().manual_seed(seed)
    if method == "lanczos":
        return _lanczos_eigs(op, k, tol, atol, max_iter, which, gen)
    start = op.hvp_count
    shift, iters0 = 0.0, []
    if which == "SA":
        top, _, _, iters0, _ = _power_eigs(op, 1, tol, max_iter, 0.0, gen)
        shift = top[0]
    vals, vecs, res, iters, converged = _power_eigs(op, k, tol, max_iter, shift, gen)
    order = sorted(range(k), key=lambda i: -vals[i] if which == "LA" else vals[i])
    return EigenEstimate(torch.tensor([vals[i] for i in order], dtype=op.dtype), torch.stack([vecs[i] for i in order]),
                         torch.tensor([res[i] for i in order]), iters0 + iters, op.hvp_count - start, converged,
                         op.num_samples, "power", which)


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, data, k: int = 1, tol: float = 1e-3, *,
                    which: Which = "LA", method: Literal["lanczos", "power"] = "lanczos", max_iter: int = 100,
                    atol: float = 0.0, params: Sequence[str] | None = None, batch_size: int | None = None,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (k,), eigenvectors (k, P)): the k largest (which="LA") or most negative ("SA").

    A shortcut for :func:`eigenpairs` (which also reports residuals, iterations and HVP counts).
    Eigenvectors are flat over the selected parameters, in ``model.named_parameters()`` order.
    """
    est = eigenpairs(model, loss_fn, data, k, tol, which=which, method=method, max_iter=max_iter, atol=atol,
                     params=params, batch_size=batch_size, seed=seed)
    return est.eigenvalues, est.eigenvectors


# ----------------------------------------------------------------------------- trace and density

@dataclass
class TraceEstimate:
    """Hutchinson's estimate of tr(H): value = mean of v^T H v over Rademacher probes v.

    std_error: standard error of that mean (spread over probes); samples: every v^T H v."""

    value: float
    std_error: float
    samples: list[float]
    hvp_count: int
    converged: bool
    num_samples: int


def trace(model: nn.Module, loss_fn: LossFn, data, *, tol: float = 1e-2, max_probes: int = 200,
          min_probes: int = 10, block: int = 10, params: Sequence[str] | None = None,
          batch_size: int | None = None, seed: int = 0, operator: HessianOperator | None = None) -> TraceEstimate:
    """tr(H) by Hutchinson's method, in blocks of `block` Rademacher probes (computed together).

    Stops when the standard error of the mean is below tol * |mean| (after at least min_probes), or
    after max_probes probes.
    """
    if min_probes < 2 or max_probes < min_probes:
        raise ValueError(f"need 2 <= min_probes <= max_probes, got {min_probes}, {max_probes}")
    op = operator or HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size)
    gen = torch.Generator().manual_seed(seed)
    start, samples, converged = op.hvp_count, [], False
    while len(samples) < max_probes:
        m = min(block, max_probes - len(samples))
        V = (torch.randint(0, 2, (m, op.size), generator=gen).to(op.w0) * 2 - 1)
        samples += (V * op.matmat(V)).sum(1).tolist()
        t = torch.tensor(samples, dtype=torch.float64)
        if len(t) >= min_probes and (t.std() / math.sqrt(len(t))).item() <= tol * abs(t.mean().item()):
            converged = True
            break
    t = torch.tensor(samples, dtype=torch.float64)
    return TraceEstimate(t.mean().item(), (t.std() / math.sqrt(len(t))).item(), samples, op.hvp_count - start,
                         converged, op.num_samples)


@dataclass
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

    def trace(self) -> float:
        """tr(H) = P * E[sum_j w_j node_j]: a trace estimate from the same runs."""
        return self.num_params * (self.weights.double() * self.nodes.double()).sum(1).mean().item()


def density(model: nn.Module, loss_fn: LossFn, data, *, steps: int = 80, runs: int = 1,
            params: Sequence[str] | None = None, batch_size: int | None = None, seed: int = 0,
            operator: HessianOperator | None = None) -> SpectralDensity:
    """The Hessian's spectral density by stochastic Lanczos quadrature (`runs` Rademacher starts).

    Each run does `steps` Lanczos steps with full reorthogonalization; its nodes are the Ritz values
    and its weights the squared first components of the Ritz vectors (PyHessian after its PR #23).
    """
    if steps < 1 or runs < 1:
        raise ValueError(f"steps and runs must be >= 1, got {steps}, {runs}")
    op = operator or HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size)
    gen = torch.Generator().manual_seed(seed)
    start, nodes, weights = op.hvp_count, [], []
    steps = min(steps, op.size)
    for _ in range(runs):
        v0 = torch.randint(0, 2, (op.size,), generator=gen).to(op.w0) * 2 - 1
        alpha, beta, _ = _lanczos(op, v0 / v0.norm(), steps)
        theta, S = _ritz(alpha, beta)
        w = S[0] ** 2
        pad = steps - len(theta)  # early breakdown: exact, pad with zero-weight nodes
        nodes.append(torch.cat([theta, theta[-1:].expand(pad)]))
        weights.append(torch.cat([w, torch.zeros(pad, dtype=w.dtype)]))
    return SpectralDensity(torch.stack(nodes), torch.stack(weights), op.size, op.hvp_count - start, op.num_samples)


# ----------------------------------------------------------------------------- per layer, spread

def per_layer(model: nn.Module, loss_fn: LossFn, data, *, blocks: Mapping[str, Sequence[str]] | None = None,
              tol: float = 1e-3, trace_tol: float = 1e-2, max_probes: int = 100, batch_size: int | None = None,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """Top eigenvalue and trace of each diagonal block of H (one block per layer by default).

    blocks: {block name: parameter names} (default :func:`parameter_blocks`). Returns
    {block: {"params", "top_eigenvalue", "top_residual", "trace", "trace_std_error", "hvp_count"}}.
    The traces of the blocks add up to tr(H); their top eigenvalues are each <= lambda_max(H).
    """
    out = {}
    for name, names in (blocks or parameter_blocks(model)).items():
        op = HessianOperator(model, loss_fn, data, params=list(names), batch_size=batch_size)
        eig = eigenpairs(model, loss_fn, data, 1, tol, operator=op, seed=seed)
        tr = trace(model, loss_fn, data, tol=trace_tol, max_probes=max_probes, operator=op, seed=seed)
        out[name] = {"params": op.size, "top_eigenvalue": eig.eigenvalues[0].item(),
                     "top_residual": eig.residuals[0].item(), "trace": tr.value, "trace_std_error": tr.std_error,
                     "hvp_count": op.hvp_count}
    return out


def gradient(model: nn.Module, loss_fn: LossFn, data, *, params: Sequence[str] | None = None,
             batch_size: int | None = None) -> torch.Tensor:
    """The full-dataset gradient, flat (P,) (its norm is the paper's Figure 5 quantity)."""
    return HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size).gradient()


@torch.no_grad()
def loss_along(model: nn.Module, loss_fn: LossFn, data, direction: torch.Tensor, steps: Iterable[float], *,
               params: Sequence[str] | None = None, batch_size: int | None = None) -> list[float]:
    """The dataset loss at w + t * direction for each t in steps (direction flat (P,), like eigenvectors)."""
    op = HessianOperator(model, loss_fn, data, params=params, batch_size=batch_size)
    if direction.shape != (op.size,):
        raise ValueError(f"direction must have shape ({op.size},), got {tuple(direction.shape)}")
    return [op.loss(op.w0 + float(t) * direction.to(op.w0)) for t in steps]


@dataclass
class Spread:
    """An estimate repeated on `repeats` random data subsets of `sample_size` points each."""

    values: list[float]
    sample_size: int
    mean: float = field(init=False)
    std: float = field(init=False)
    min: float = field(init=False)
    max: float = field(init=False)

    def __post_init__(self) -> None:
        t = torch.tensor(self.values, dtype=torch.float64)
        self.mean, self.min, self.max = t.mean().item(), t.min().item(), t.max().item()
        self.std = t.std().item() if len(t) > 1 else 0.0


def spread_over_subsets(estimate: Callable[[tuple[torch.Tensor, torch.Tensor], int], float], x: torch.Tensor,
                        y: torch.Tensor, sample_size: int, repeats: int = 5, seed: int = 0) -> Spread:
    """Run estimate((x_sub, y_sub), seed_r) on `repeats` random subsets of `sample_size` rows.

    Shows how much a Hessian estimate moves with the data it is computed on (and its own seed).
    """
    if not 1 <= sample_size <= len(x):
        raise ValueError(f"sample_size must be in [1, {len(x)}], got {sample_size}")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for r in range(repeats):
        idx = torch.randperm(len(x), generator=gen)[:sample_size].to(x.device)
        values.append(float(estimate((x[idx], y[idx]), seed + r)))
    return Spread(values, sample_size)


def tracker(loss_fn: LossFn, hessian_data, gradient_data=None, *, tol: float = 1e-2, max_iter: int = 50,
            seed: int = 0) -> Callable[[int, nn.Module, object], None]:
    """An epoch callback for `genlens.core.train.train`: appends the top Hessian eigenvalue (on
    `hessian_data`) and the full-gradient norm (on `gradient_data`, default the same data) to
    history.extra["top_eigenvalue"] and history.extra["grad_norm"] (the paper's Figure 5)."""
    def callback(epoch: int, model: nn.Module, history) -> None:
        est = eigenpairs(model, loss_fn, hessian_data, 1, tol, max_iter=max_iter, seed=seed + epoch)
        g = gradient(model, loss_fn, gradient_data if gradient_data is not None else hessian_data)
        history.extra.setdefault("top_eigenvalue", []).append(est.eigenvalues[0].item())
        history.extra.setdefault("grad_norm", []).append(g.norm().item())
    return callback
