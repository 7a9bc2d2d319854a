"""Benchmark genlens.lenses.intrinsic.twonn against scikit-dimension's TwoNN on the same points.

5,000 points in 512 dimensions (a 12-dimensional Gaussian, rotated into 512-D and bent by a tanh,
so the manifold is curved), float32. Both estimators use the paper's rule with discard_fraction 0.1;
on data without duplicates or ties they fit the same points, so the estimates must agree to 2%.
Each side runs once to warm up, then the best of three runs counts. The last line is
`speedup: <scikit-dimension time / genlens time>`.
"""
from __future__ import annotations

import warnings

import torch

from genlens.lenses import intrinsic
from genlens.core.device import best_time, describe, pick_device


def main() -> None:
    import skdim

    dev = pick_device("auto")
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(512, 12, generator=g))  # (512, 12) orthonormal columns
    x = torch.tanh(torch.randn(5000, 12, generator=g) @ q.T * 8)  # (5000, 512), a curved 12-D manifold
    x_np = x.numpy()
    x_dev = x.to(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no duplicates may be dropped on either side
        t_ours, d_ours = best_time(lambda: intrinsic.twonn(x_dev), device=dev)
        t_peer, d_peer = best_time(lambda: skdim.id.TwoNN(discard_fraction=0.1).fit(x_np).dimension_)
    rel = abs(d_ours - d_peer) / abs(d_peer)
    assert rel < 0.02, f"estimates disagree: genlens {d_ours:.4f}, scikit-dimension {d_peer:.4f}"
    print(f"TwoNN on {x.shape[0]} points in {x.shape[1]}-D ({describe(dev)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; skdim {skdim.__version__} on the CPU):")
    print(f"  genlens          {t_ours * 1e3:8.0f} ms   ID {d_ours:.4f}")
    print(f"  scikit-dimension {t_peer * 1e3:8.0f} ms   ID {d_peer:.4f}   (relative difference {rel:.1e})")
    print(f"speedup: {t_peer / t_ours:.2f}")


if __name__ == "__main__":
    main()
