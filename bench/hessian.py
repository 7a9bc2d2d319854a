"""Top Hessian eigenvalue: genlens against PyHessian on the same model, the same 1,000 samples, and
the same relative tolerance, timed in one process after a warm-up.

PyHessian runs power iteration (stop when the eigenvalue moves by < tol relative) with one cached
double-backward graph; genlens runs Lanczos (stop when the Ritz residual ||Hu - theta u|| is below
tol * theta, a stricter test) with forward-over-reverse HVPs. Both HVP counts are printed, and
genlens' own power iteration (the paper's method) is shown beside them, and a secondary comparison
for the top 20 eigenvalues. Last line: the primary speedup (top eigenvalue).
Usage: python bench/hessian.py [mlp|cnn]
"""
from __future__ import annotations

import sys
import time

import torch
from torch import nn

from genlens.core import data, models

from genlens.lenses import hessian
from genlens.core.device import best_time
from genlens.core.train import TrainConfig, train


MODEL = sys.argv[1] if len(sys.argv) > 1 else "mlp"  # "mlp" (the chapter's, default) or "cnn"


def main() -> None:
    torch.manual_seed(0)
    images = data.load("mnist5k", "cpu")
    if MODEL == "mlp":  # the chapter's quick model
        model = models.build_for("mlp", images.image_shape, images.num_classes, hidden=[128])
    else:  # a small CNN without BatchNorm (M1-like)
        model = models.build_for("cnn", images.image_shape, images.num_classes, width=8, batchnorm=False)
    train(model, images, TrainConfig(epochs=5, batch_size=128, lr=0.05, seed=0), progress=False)
    x, y = images.x_train[:1000], images.y_train[:1000]
    tol = 1e-3

    from pyhessian import hessian as PyHessian

    counter = {"hvp": 0}

    def peer():
        torch.manual_seed(0)
        model.zero_grad(set_to_none=True)
        h = PyHessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        mod = sys.modules["pyhessian.hessian"]  # the package re-exports the class under the module's name

        original = mod.hessian_vector_product

        def counted(*args, **kwargs):
            counter["hvp"] += 1
            return original(*args, **kwargs)

        mod.hessian_vector_product = counted
        try:
            counter["hvp"] = 0
            values, _ = h.eigenvalues(maxIter=100, tol=tol, top_n=1)
        finally:
            mod.hessian_vector_product = original
            model.zero_grad(set_to_none=True)
        return values[0]

    def ours(method="lanczos", cache_graph=True):
        return hessian.eigenpairs(model, (x, y), tol=tol, method=method, cache_graph=cache_graph,
                                  generator=torch.Generator().manual_seed(0))

    peer(), ours(), ours("power")  # warm-up
    t_peer, peer_value = best_time(peer, repeats=2, warmup=0)
    peer_hvps = counter["hvp"]
    t_ours, est = best_time(ours, repeats=2, warmup=0)
    t_power, est_power = best_time(lambda: ours("power"), repeats=2, warmup=0)
    t_fwd, est_fwd = best_time(lambda: ours(cache_graph=False), repeats=2, warmup=0)
    value = est.eigenvalues[0].item()
    rel = abs(value - peer_value) / abs(peer_value)
    print(f"model: {MODEL}, {est.num_samples} MNIST samples, {sum(p.numel() for p in model.parameters())} "
          f"parameters, tol={tol} (relative), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"pyhessian  power iteration : {t_peer:7.3f} s  {peer_hvps:3d} HVPs  lambda_max = {peer_value:.5f}")
    print(f"genlens    power iteration : {t_power:7.3f} s  {est_power.hvp_count:3d} HVPs  lambda_max = "
          f"{est_power.eigenvalues[0].item():.5f}")
    print(f"genlens    Lanczos         : {t_ours:7.3f} s  {est.hvp_count:3d} HVPs  lambda_max = {value:.5f}  "
          f"residual/lambda = {est.residuals[0].item() / value:.1e}")
    print(f"genlens    Lanczos, forward-over-reverse HVPs (no cached graph): {t_fwd:7.3f} s  {est_fwd.hvp_count:3d} HVPs")
    print(f"agreement: relative difference {rel:.1e}")
    # secondary: the top 20 eigenvalues (the chapter's Figure 3), deflated power iteration vs Lanczos
    torch.manual_seed(0)
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    peer20, _ = PyHessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(maxIter=100, tol=tol,
                                                                                           top_n=20)
    t_peer20 = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    est20 = hessian.eigenpairs(model, (x, y), k=20, tol=tol, max_iter=300, cache_graph=True,
                               generator=torch.Generator().manual_seed(0))
    t_ours20 = time.perf_counter() - t0
    gap20 = max(abs(a - b) / abs(b) for a, b in zip(sorted(peer20, reverse=True), est20.eigenvalues.tolist()))
    print(f"top 20 eigenvalues: pyhessian {t_peer20:.2f} s, genlens Lanczos {t_ours20:.2f} s ({est20.hvp_count} HVPs, "
          f"converged {est20.converged}); largest relative difference {gap20:.1e}; ratio {t_peer20 / t_ours20:.2f}")
    if rel > 1e-2:
        raise SystemExit(f"genlens and pyhessian disagree: {value} vs {peer_value}")
    print(f"speedup: {t_peer / t_ours:.2f}")


if __name__ == "__main__":
    main()
