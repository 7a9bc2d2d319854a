"""Benchmark genlens.lenses.intrinsic.twonn against scikit-dimension and DADApy at equal estimate.

5,000 points in 512 dimensions (a 12-dimensional Gaussian, rotated into 512-D and bent by a tanh,
so the manifold is curved), float32. Every estimator uses the paper's rule (discard_fraction 0.1:
the line through the origin fitted to the smallest 90% of the ratios mu = r2 / r1).

Equal accuracy: the reference is the exact TwoNN on float64 distances (float64 matrix-product
candidates, the best 10 of each point re-measured as ||x_i - x_j|| in float64, the paper's fit);
each side's estimate must lie within REL_TOL of it, a margin far above float32 rounding (about
1e-7 here) and far below any real disagreement (a dropped point or a wrong neighbour moves the
estimate by more), so a change of processor cannot break it.

Peers: scikit-dimension (TwoNN, its chunked distance matrix for D > 25) and DADApy (the TwoNN
authors' group; IdEstimation with maxk=2, scikit-learn's neighbour search). torchid is not on the
package registry and is not compared. DADApy 0.3.4 pins numpy<2 and its compiled Cython modules do
not load under NumPy 2; its TwoNN path is pure NumPy / scikit-learn, so when the package's
``__init__`` fails the bench loads ``dadapy.id_estimation`` without it (said in the output).

Timing: a warm-up call of each side, then `--repeats` rounds, each round timing every side once
(interleaved, so that load from other processes hits all sides alike); each side's best counts.
The last line is `speedup: <the worse of scikit-dimension / genlens and DADApy / genlens>`
(targets: >= 5 and >= 1).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import sys
import time
import types
import warnings
from importlib.metadata import version
from typing import Callable

import numpy as np
import torch

from genlens.lenses import intrinsic

REL_TOL = 1e-3  # |estimate - reference| / reference allowed for every side


def curved_points(n: int = 5000, dim: int = 512, intrinsic_dim: int = 12, seed: int = 0) -> torch.Tensor:
    """(n, dim) float32 points on a curved intrinsic_dim-dimensional manifold (rotated Gaussian, tanh)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, intrinsic_dim, generator=g))  # (dim, intrinsic_dim) orthonormal
    return torch.tanh(torch.randn(n, intrinsic_dim, generator=g) @ q.T * 8)


def reference_twonn(x: torch.Tensor, candidates: int = 10, block: int = 500) -> float:
    """The exact TwoNN of x (N, D) on float64 distances: float64 matrix-product candidates, each point's
    best `candidates` re-measured directly in float64, then the paper's fit (discard_fraction 0.1)."""
    x64 = x.double()
    x64 = x64 - x64.mean(0)
    sq = (x64 * x64).sum(1)  # (N,)
    r = torch.empty(len(x64), 2, dtype=torch.float64)
    for s in range(0, len(x64), block):
        rows = torch.arange(s, min(s + block, len(x64)))
        d2 = torch.addmm(sq[None], x64[rows], x64.T, alpha=-2).add_(sq[rows, None])  # (b, N)
        d2[torch.arange(len(rows)), rows] = float("inf")
        cand = d2.topk(candidates, dim=1, largest=False).indices  # (b, candidates)
        exact = torch.linalg.vector_norm(x64[rows, None] - x64[cand], dim=2).sort(dim=1).values
        r[rows] = exact[:, :2]
    return intrinsic.twonn_from_distances(r[:, 0], r[:, 1], 0.1).dimension


def load_dadapy_id_estimation() -> tuple[type, str]:
    """DADApy's IdEstimation class and a note on how it was loaded."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # NumPy prints the failed import's stack here
            from dadapy import IdEstimation
        return IdEstimation, "imported normally"
    except ImportError as err:  # dadapy 0.3.4 wheels: Cython modules built for NumPy 1.x
        for name in [m for m in sys.modules if m == "dadapy" or m.startswith("dadapy.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("dadapy")
        pkg = types.ModuleType("dadapy")
        pkg.__path__ = list(spec.submodule_search_locations)  # a bare package: its __init__ is not run
        sys.modules["dadapy"] = pkg
        module = importlib.import_module("dadapy.id_estimation")
        return module.IdEstimation, (f"package __init__ failed under NumPy {np.__version__} ({type(err).__name__}: "
                                     f"compiled Cython modules); dadapy.id_estimation (pure NumPy/scikit-learn) loaded alone")


def interleaved_best(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (best seconds over `repeats` interleaved rounds, the last result), after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, float] = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(times[k]), out[k]) for k in fns}


def main() -> None:
    import skdim

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    x = curved_points()  # (5000, 512) float32, on the CPU: all three sides run there
    x_np = x.numpy()
    IdEstimation, dadapy_note = load_dadapy_id_estimation()
    ref = reference_twonn(x)

    def ours() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no duplicate or tied point may be dropped
            return intrinsic.twonn(x)

    def skdim_twonn() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            return float(skdim.id.TwoNN(discard_fraction=0.1).fit(x_np).dimension_)

    def dadapy_twonn() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(IdEstimation(coordinates=x_np, maxk=2, verbose=False).compute_id_2NN(mu_fraction=0.9)[0])

    res = interleaved_best({"genlens": ours, "scikit-dimension": skdim_twonn, "dadapy": dadapy_twonn}, args.repeats)
    print(f"TwoNN on {x.shape[0]} points in {x.shape[1]}-D float32, CPU, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; scikit-dimension {skdim.__version__}, dadapy {version('dadapy')} "
          f"({dadapy_note}); torchid: not on the package registry, not compared")
    print(f"  reference (exact, float64 distances)  ID {ref:.6f}; tolerance {REL_TOL:.0e} relative")
    t_ours = res["genlens"][0]
    for name, (t, d) in res.items():
        rel = abs(d - ref) / abs(ref)
        print(f"  {name:17s} {t * 1e3:8.0f} ms   ID {d:.6f}   |error| {rel:.1e}"
              + ("" if name == "genlens" else f"   {name} / genlens {t / t_ours:.2f}"))
    bad = {k: d for k, (_, d) in res.items() if not abs(d - ref) <= REL_TOL * abs(ref)}
    assert not bad, f"estimates off the float64 reference {ref:.6f} by more than {REL_TOL:.0e}: {bad}"
    r_skdim, r_dadapy = res["scikit-dimension"][0] / t_ours, res["dadapy"][0] / t_ours
    print(f"  targets: scikit-dimension / genlens >= 5 ({r_skdim:.2f}), dadapy / genlens >= 1 ({r_dadapy:.2f})")
    print(f"speedup: {min(r_skdim, r_dadapy):.2f}")


if __name__ == "__main__":
    main()
