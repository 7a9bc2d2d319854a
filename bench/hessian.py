"""Top Hessian eigenvalue at EQUAL ACCURACY: genlens against PyHessian,
hessian-eigenthings and curvlinops (+ SciPy's ARPACK) on the same model and the same 1,000 samples.

Reference: the eigenvalues of the float64 copy of the model by two independent solvers, genlens
Lanczos to a Ritz residual of 1e-9 (a rigorous error bound) and curvlinops' float64 operator with
ARPACK at tol 1e-10; they must agree to 1e-6 relative, or the bench stops.

Equal accuracy: every method runs in float32 and is given the cheapest setting of its own knob
(a tolerance from a ladder of 10^(-e/4), or a Lanczos step count) at which its answer is within
`TARGET` of the reference (relative error of each wanted eigenvalue) from each of three start vectors
(the same three at every setting, so the error shrinks along the ladder and a galloping + bisection
search finds the setting); a method's time is that of its three runs.
Only then are the methods timed: interleaved in a shuffled order, best of `REPEATS` rounds, each timed call building its
own operator (PyHessian's and genlens' cached gradient graph included). genlens stops on the estimated
eigenvalue error (stop_on="eigenvalue": min(r, r^2 / gap) <= tol theta, r the Ritz residual); it is
also shown with its residual rule (r <= tol theta, a bound on the error) and with the a-priori
setting tol = TARGET, the one a user picks without a reference (its error is printed beside it).

Headline: speedup = min(time of PyHessian, time of the fastest hessian-eigenthings method) / time of
genlens, at the same error, for the top eigenvalue (the issue asks >= 2x PyHessian, >= 1x eigenthings), or for
the top K eigenvalues together when K is given.
Usage: python bench/hessian.py [mlp|cnn] [K]   (K: the top K eigenvalues, default 1)

Trace (python bench/hessian.py trace): tr(H) of the MLP by genlens' Hutchinson (probes in blocks),
PyHessian's Hutchinson, and hessian-eigenthings' Hutchinson and Hutch++, at EQUAL ACCURACY: each method's
number of Hessian-vector products is the cheapest of a doubling ladder at which its root-mean-square
relative error over TRACE_SEEDS seeds is within TRACE_TARGET of the exact trace. Exact trace: for a ReLU
MLP every single weight enters the logits linearly where the ReLU pattern is fixed, so the Hessian's
diagonal is the Gauss-Newton matrix's, tr(H) = mean_n tr(S_n J_n J_n^T) (S_n the softmax Hessian,
J_n the logits' Jacobian), computed in float64 and checked first against a dense Hessian of a tiny MLP.
Headline: speedup = min over the peers of (peer time / genlens time) at that accuracy.
"""
from __future__ import annotations

import copy
import math
import random
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from genlens.core import data, models
from genlens.core.train import TrainConfig, train
from genlens.lenses import hessian

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
TRACE = ARGS[:1] == ["trace"]  # the trace bench instead (on the MLP)
MODEL = "mlp" if TRACE or not ARGS else ARGS[0]  # "mlp" (the hessian chapter's quick model, default) or "cnn"
TOP = int(ARGS[1]) if len(ARGS) > 1 and not TRACE else 1  # how many of the largest eigenvalues (headline: the top one)
TARGET = 1e-3  # relative error of each wanted eigenvalue against the float64 reference
REPEATS = 5
SEEDS = (0, 1, 2)  # start vectors: a setting must reach the target from each; a timed call runs all three
TOLS = [10 ** (-e / 4) for e in range(4, 33)]  # 1e-1 ... 1e-8, cheapest first
STEPS = list(range(1, 301))


@dataclass
class Run:
    """One method's answer: eigenvalues (k,) descending and the dataset-wide HVPs it used."""

    values: list[float]
    hvps: int


@dataclass
class Method:
    """A method with a ladder of settings ordered from cheapest to dearest; run(setting) -> Run."""

    name: str
    knob: str
    ladder: Sequence
    run_one: Callable[[object, int], Run]  # (setting, seed) -> Run
    required: bool = False  # counts for the headline

    def run(self, setting: object) -> list[Run]:
        """One run per start vector (seed in SEEDS)."""
        return [self.run_one(setting, seed) for seed in SEEDS]


def rel_error(runs: Sequence[Run], ref: torch.Tensor) -> float:
    """max_i |values_i - ref_i| / |ref_i| over the k wanted eigenvalues, worst over the runs (inf if fewer than k)."""
    worst = 0.0
    for r in runs:
        if len(r.values) < len(ref):
            return math.inf
        v = torch.tensor(sorted(r.values, reverse=True)[: len(ref)], dtype=torch.float64)
        worst = max(worst, ((v - ref).abs() / ref.abs()).max().item())
    return worst


def cheapest(method: Method, ref: torch.Tensor) -> tuple[object, list[Run], float, bool]:
    """(setting, run, error, reached): the first setting of the ladder whose error is <= TARGET, found by
    galloping then bisection (the error falls along the ladder for a fixed start vector); if none
    reaches it, the dearest setting with reached=False."""
    tried: dict[int, tuple[list[Run], float]] = {}

    def ok(i: int) -> bool:
        if i not in tried:
            r = method.run(method.ladder[i])
            tried[i] = (r, rel_error(r, ref))
        return tried[i][1] <= TARGET

    last = len(method.ladder) - 1
    lo, hi, step = -1, 0, 1
    while not ok(hi):
        if hi == last:
            return method.ladder[last], *tried[last], False
        lo, hi, step = hi, min(hi + step, last), step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return method.ladder[hi], *tried[hi], True


# ----------------------------------------------------------------------------- the methods

def genlens_methods(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> list[Method]:
    def lanczos(tol: float, seed: int, stop_on: str = "eigenvalue") -> Run:
        est = hessian.eigenpairs(model, (x, y), k=k, tol=tol, max_iter=300, cache_graph=True, stop_on=stop_on,
                                 generator=torch.Generator().manual_seed(seed))
        return Run(est.eigenvalues.tolist(), est.hvp_count)

    def lanczos_residual(tol: float, seed: int) -> Run:
        return lanczos(tol, seed, "residual")

    def power(tol: float, seed: int) -> Run:
        est = hessian.eigenpairs(model, (x, y), k=k, tol=tol, method="power", max_iter=1000, cache_graph=True,
                                 generator=torch.Generator().manual_seed(seed))
        return Run(est.eigenvalues.tolist(), est.hvp_count)

    out = [Method("genlens Lanczos (cached graph)", "tol", TOLS, lanczos),
           Method("genlens Lanczos, residual rule", "tol", TOLS, lanczos_residual)]
    if k == 1:
        out.append(Method("genlens power iteration", "tol", TOLS, power))
    return out


def pyhessian_method(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> Method:
    from pyhessian import hessian as PyHessian

    mod = sys.modules["pyhessian.hessian"]  # the package re-exports the class under the module's name

    def run(tol: float, seed: int) -> Run:
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        original, count = mod.hessian_vector_product, [0]

        def counted(*args, **kwargs):
            count[0] += 1
            return original(*args, **kwargs)

        mod.hessian_vector_product = counted
        try:
            values, _ = PyHessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(
                maxIter=1000, tol=tol, top_n=k)
        finally:
            mod.hessian_vector_product = original
            model.zero_grad(set_to_none=True)
        return Run(list(values), count[0])

    return Method("pyhessian power iteration", "tol", TOLS, run, required=True)


def eigenthings_methods(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> list[Method]:
    import hessian_eigenthings as he

    def operator():
        op = he.HessianOperator(model, [(x, y)], he.supervised_loss(nn.CrossEntropyLoss()))
        count = [0]

        def matvec(v: torch.Tensor) -> torch.Tensor:
            count[0] += 1
            return op.matvec(v)

        return he.LambdaOperator(matvec, size=op.size, device=op.device, dtype=op.dtype), count

    def lanczos(steps: int, seed: int) -> Run:
        op, count = operator()
        res = he.lanczos(op, k=k, max_iter=steps, which="LA", reorthogonalize=True, seed=seed, tol=TARGET)
        return Run(res.eigenvalues.tolist(), count[0])

    def power(tol: float, seed: int) -> Run:
        op, count = operator()
        res = he.deflated_power_iteration(op, k=k, max_iter=1000, tol=tol, seed=seed)
        return Run(res.eigenvalues.tolist(), count[0])

    out = [Method("hessian-eigenthings Lanczos", "steps", [s for s in STEPS if s >= k], lanczos, required=True)]
    if k == 1:
        out.append(Method("hessian-eigenthings power iteration", "tol", TOLS, power, required=True))
    return out


def curvlinops_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """curvlinops' Hessian as a SciPy LinearOperator, and its HVP counter."""
    from curvlinops import HessianLinearOperator
    from scipy.sparse.linalg import LinearOperator

    H = HessianLinearOperator(model, nn.CrossEntropyLoss(), [p for p in model.parameters() if p.requires_grad],
                              [(x, y)], check_deterministic=False, num_data=len(x))
    A, count = H.to_scipy(), [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return A.matvec(v)

    return LinearOperator(A.shape, matvec=matvec, dtype=np.float64), count


def curvlinops_method(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> Method:
    from scipy.sparse.linalg import eigsh

    def run(tol: float, seed: int) -> Run:
        A, count = curvlinops_operator(model, x, y)
        v0 = np.random.default_rng(seed).standard_normal(A.shape[0])
        values = eigsh(A, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
        return Run(sorted(values.tolist(), reverse=True), count[0])

    return Method("curvlinops + scipy eigsh (ARPACK)", "tol", TOLS, run)


# ----------------------------------------------------------------------------- reference and timing

def reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The top k eigenvalues (k,) float64 of the float64 model by two solvers that must agree to 1e-6."""
    from scipy.sparse.linalg import eigsh

    m64, x64 = copy.deepcopy(model).double(), x.double()
    est = hessian.eigenpairs(m64, (x64, y), k=k, tol=1e-9, max_iter=400, cache_graph=True,
                             generator=torch.Generator().manual_seed(1))
    A, _ = curvlinops_operator(m64, x64, y)
    arpack = torch.tensor(sorted(eigsh(A, k=k, which="LA", tol=1e-10, return_eigenvectors=False), reverse=True),
                          dtype=torch.float64)
    ours = est.eigenvalues.double()
    gap = ((ours - arpack).abs() / arpack.abs()).max().item()
    if not est.converged or gap > 1e-6:
        raise SystemExit(f"the float64 references disagree (relative {gap:.1e}, genlens converged {est.converged}): "
                         f"{ours.tolist()} vs {arpack.tolist()}")
    return ours


def timed(methods: list[Method], settings: list[object]) -> list[float]:
    """Best of REPEATS interleaved rounds: each round calls every method once at its setting, in a shuffled
    order (a method timed right after a slow one can run 1.5x slower: caches, allocator, clock)."""
    best = [math.inf] * len(methods)
    for r in range(REPEATS):
        order = list(range(len(methods)))
        random.Random(r).shuffle(order)
        for i in order:
            t0 = time.perf_counter()
            methods[i].run(settings[i])
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def compare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[float, float]:
    """Print the equal-accuracy table for the top k eigenvalues; return (worst required ratio, ratio vs pyhessian)."""
    ref = reference(model, x, y, k)
    methods = genlens_methods(model, x, y, k) + [pyhessian_method(model, x, y, k)]
    methods += eigenthings_methods(model, x, y, k) + [curvlinops_method(model, x, y, k)]
    for m in methods:  # warm-up: every code path once
        m.run(m.ladder[0])
    found = [cheapest(m, ref) for m in methods]
    apriori = Method("genlens Lanczos, a-priori tol = target", "tol", [TARGET], methods[0].run_one)
    a_run = apriori.run(TARGET)
    times = timed(methods + [apriori], [f[0] for f in found] + [TARGET])
    print(f"\ntop {k} eigenvalue{'s' if k > 1 else ''}: reference {ref[0].item():.6f}"
          f"{'' if k == 1 else f' ... {ref[-1].item():.6f}'} (float64, two solvers); target relative error {TARGET:g}")
    print(f"{len(SEEDS)} start vectors per method: HVPs per start (mean), time for all {len(SEEDS)} (best of "
          f"{REPEATS} interleaved rounds), worst error")
    print(f"{'method':38s} {'setting':>14s} {'HVPs':>5s} {'time (s)':>9s} {'rel. error':>10s}")
    a_err = rel_error(a_run, ref)
    rows = [(m, f) for m, f in zip(methods, found)] + [(apriori, (TARGET, a_run, a_err, a_err <= TARGET))]
    for (m, (setting, runs, err, reached)), t in zip(rows, times):
        s = f"{m.knob}={setting:.1e}" if m.knob == "tol" else f"{m.knob}={setting}"
        hvps = sum(r.hvps for r in runs) / len(runs)
        print(f"{m.name:38s} {s:>14s} {hvps:5.1f} {t:9.3f} {err:10.1e}{'' if reached else '  (target not reached)'}")
    ours = times[0]
    if not found[0][3]:
        raise SystemExit("genlens Lanczos did not reach the target error")
    peers = {}
    for m, f, t in zip(methods, found, times):
        if m.required:
            group = m.name.split()[0]
            peers[group] = min(peers.get(group, math.inf), t)
    for group, t in peers.items():
        print(f"ratio {group} / genlens: {t / ours:.2f} (a-priori genlens: {t / times[-1]:.2f})")
    return min(t / ours for t in peers.values()), peers["pyhessian"] / ours


TRACE_TARGET = 0.05  # root-mean-square relative error of the trace over the seeds
TRACE_SEEDS = tuple(range(12))
PROBES = [6 * 2 ** i for i in range(9)]  # Hessian-vector products: 6 ... 1536


def gauss_newton_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 20) -> float:
    """tr(H) of the mean cross-entropy of a ReLU MLP over (x, y), in float64 (see the module docstring):
    mean_n sum_cc' S_n[c, c'] <J_nc, J_nc'>, S_n = diag(p_n) - p_n p_n^T. x (N, ...), y (N,)."""
    from torch.func import functional_call, jacrev, vmap

    kinds = {type(m) for m in model.modules()} - {type(model), nn.Sequential}
    if not kinds <= {nn.Flatten, nn.Linear, nn.ReLU}:
        raise SystemExit(f"the exact trace needs a ReLU MLP, got layers {sorted(k.__name__ for k in kinds)}")
    net = copy.deepcopy(model).double().eval()
    params = {k: v.detach() for k, v in net.named_parameters()}

    def logits(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(net, p, (xi[None],))[0]  # (C,)

    total = torch.zeros((), dtype=torch.float64)
    for xb in x.double().split(chunk):
        jac = vmap(jacrev(logits), in_dims=(None, 0))(params, xb)  # name -> (b, C, *shape)
        gram = sum(j.flatten(2) @ j.flatten(2).transpose(1, 2) for j in jac.values())  # (b, C, C)
        prob = torch.softmax(functional_call(net, params, (xb,)), dim=1)  # (b, C)
        s_mat = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]
        total += (s_mat * gram).sum()
    return total.item() / len(x)


def check_gauss_newton_trace() -> None:
    """The exact-trace formula against the trace of a dense float64 Hessian, on a tiny ReLU MLP."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x, y = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (40,), generator=g)
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])

    def loss(w: torch.Tensor) -> torch.Tensor:
        parts, i = [], 0
        for sh in shapes:
            parts.append(w[i:i + sh.numel()].view(sh))
            i += sh.numel()
        h = torch.relu(x @ parts[0].T + parts[1])
        return nn.functional.cross_entropy(h @ parts[2].T + parts[3], y)

    dense = torch.autograd.functional.hessian(loss, flat).diagonal().sum().item()
    ours = gauss_newton_trace(net, x, y)
    if not abs(ours - dense) <= 1e-10 * abs(dense):
        raise SystemExit(f"the exact trace formula disagrees with a dense Hessian: {ours} vs {dense}")


def trace_methods(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, Callable[[int, int], float]]]:
    """(name, run(hvps, seed) -> estimate) of every trace method, each building its own operator per call."""
    import hessian_eigenthings as he
    from pyhessian import hessian as pyh_hessian

    def ours(m: int, seed: int) -> float:
        return hessian.trace(model, (x, y), tol=0.0, min_probes=m, max_probes=m, block=min(m, 16),
                             generator=torch.Generator().manual_seed(seed)).value

    def pyhessian_trace(m: int, seed: int) -> float:
        torch.manual_seed(seed)  # PyHessian draws its probes from the global generator
        try:
            comp = pyh_hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
            return float(np.mean(comp.trace(maxIter=m, tol=0.0)))  # tol 0: exactly maxIter probes
        finally:
            model.zero_grad(set_to_none=True)

    def eigenthings(method: str) -> Callable[[int, int], float]:
        def run(m: int, seed: int) -> float:
            op = he.HessianOperator(model, [(x, y)], he.supervised_loss(nn.CrossEntropyLoss()))
            return he.trace(op, num_matvecs=m, method=method, seed=seed).estimate
        return run

    return [("genlens Hutchinson (blocks of 16)", ours), ("pyhessian Hutchinson", pyhessian_trace),
            ("hessian-eigenthings Hutchinson", eigenthings("hutchinson")),
            ("hessian-eigenthings Hutch++", eigenthings("hutch++"))]


def trace_bench(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Print the equal-accuracy trace table; return min over the peers of (peer time / genlens time)."""
    check_gauss_newton_trace()
    ref = gauss_newton_trace(model, x, y)
    methods = trace_methods(model, x, y)
    needed = []
    for name, run in methods:
        run(PROBES[0], 0)  # warm-up
        for m in PROBES:
            errors = torch.tensor([(run(m, s) - ref) / ref for s in TRACE_SEEDS], dtype=torch.float64)
            rms = errors.square().mean().sqrt().item()
            if rms <= TRACE_TARGET:
                break
        needed.append((m, rms, rms <= TRACE_TARGET))
    best = [math.inf] * len(methods)
    for r in range(REPEATS):  # interleaved, shuffled: each timed call is one estimate at its needed HVPs
        order = list(range(len(methods)))
        random.Random(r).shuffle(order)
        for i in order:
            t0 = time.perf_counter()
            methods[i][1](needed[i][0], 100 + r)
            best[i] = min(best[i], time.perf_counter() - t0)
    print(f"\ntrace: exact {ref:.6f} (Gauss-Newton trace of the ReLU MLP, float64, checked against a dense "
          f"Hessian); target: RMS relative error <= {TRACE_TARGET:g} over {len(TRACE_SEEDS)} seeds")
    print(f"{'method':38s} {'HVPs':>5s} {'RMS error':>10s} {'time (s)':>9s}")
    for (name, _), (m, rms, reached), t in zip(methods, needed, best):
        print(f"{name:38s} {m:5d} {rms:10.3f} {t:9.3f}{'' if reached else '  (target not reached)'}")
    if not needed[0][2]:
        raise SystemExit("genlens did not reach the target error")
    ratios = {name: t / best[0] for (name, _), (_, _, ok), t in zip(methods[1:], needed[1:], best[1:]) if ok}
    for name, ratio in ratios.items():
        print(f"ratio {name} / genlens: {ratio:.2f}")
    return min(ratios.values())


def main() -> None:
    torch.manual_seed(0)
    images = data.load("mnist5k", "cpu")
    if MODEL == "mlp":  # the chapter's quick model
        model = models.build_for("mlp", images.image_shape, images.num_classes, hidden=[128])
    else:  # a small CNN without BatchNorm (M1-like)
        model = models.build_for("cnn", images.image_shape, images.num_classes, width=8, batchnorm=False)
    train(model, images, TrainConfig(epochs=5, batch_size=128, lr=0.05, seed=0), progress=False)
    model.eval()
    x, y = images.x_train[:1000], images.y_train[:1000]
    print(f"model: {MODEL}, {len(x)} MNIST samples, {sum(p.numel() for p in model.parameters())} parameters, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    headline = trace_bench(model, x, y) if TRACE else compare(model, x, y, TOP)[0]
    print(f"speedup: {headline:.2f}")


if __name__ == "__main__":
    main()
