"""Bench: a 21x21 loss surface of one small CNN on 1,000 MNIST test images, genlens vs loss-landscapes.

Both evaluate the same 441 parameter points (the plane spanned by two filter-normalized directions
from genlens, handed to `loss_landscapes.planar_interpolation` as end-point models), in eval mode,
under `torch.no_grad()` for the peer (its in-place parameter walk needs it), in one process, after
a warm-up, timed in GENLENS_BENCH_REPEATS rounds that each time both sides (alternating the order),
the fastest of each side counting.
On the CPU (the default) genlens runs its CPU engine (`engine="loop"`: one forward per point); with
GENLENS_BENCH_DEVICE=cuda both sides run on the GPU and genlens batches 49 points per vmapped pass
(`engine="vmap"`). Prints each side's time, the largest disagreement, and as its last line the speedup.

Parity is the limit on the CPU: both sides do the same floating-point work, one forward pass of the
1,000 images per surface point, so the ratio there measures only per-point overhead (parameter
updates, Python). Landscaper (Vis4SciML/Landscaper 1.3.1 on the registry, the loss-landscape and
topology library the issue names) is not compared in this process: its dependencies (nglpy, topopy)
pin numpy<2 and would downgrade the project's NumPy 2; its `compute_loss_landscape` also calls the
user's loss once per grid point (after O(steps) parameter additions to walk there), so on the CPU it
cannot beat one forward pass per point either.

The loop engine once evaluated the input layer by linearity (once per pass instead of once per
point). Measured with this setup on and off (same losses to 5e-7) it saved nothing: single-thread
CPU time -6% on this CNN (5x5 grid), -7% on the landscape chapter's ResNet-8 and -1% on its
ResNet-20 (14x14 digits, 256 images); it was removed.
"""
from __future__ import annotations

import copy
import os
from importlib.metadata import version

import loss_landscapes
import loss_landscapes.metrics
import numpy as np
import torch
import torch.nn.functional as F

from genlens.core import data, models

from genlens.lenses import landscape
from genlens.core.device import best_time, describe
from genlens.core.train import build_seeded

STEPS = int(os.environ.get("GENLENS_BENCH_STEPS", 21))  # override only for a smoke test
REPEATS = int(os.environ.get("GENLENS_BENCH_REPEATS", 2))
dev = torch.device(os.environ.get("GENLENS_BENCH_DEVICE", "cpu"))
ENGINE, PER_PASS = ("vmap", 49) if dev.type == "cuda" else ("loop", 21)
images = data.load("mnist5k", dev)
x, y = images.x_test[:1000], images.y_test[:1000]
net = build_seeded(lambda: models.build_for("cnn", images.image_shape, images.num_classes, width=16), 0).to(dev).eval()
d1, d2 = (landscape.random_direction(net, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
coords = torch.arange(STEPS, dtype=torch.float32) / STEPS  # the peer's grid: k / steps, k = 0..steps-1


def end_model(direction):  # theta* + steps/steps * d: the peer walks from theta* towards it in 21 steps
    m = copy.deepcopy(net)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(direction[name])
    return m


def peer():
    start = copy.deepcopy(net)
    with torch.no_grad():
        metric = loss_landscapes.metrics.Loss(F.cross_entropy, x, y)
        return loss_landscapes.planar_interpolation(start, end_model(d1), end_model(d2), metric, steps=STEPS)


def ours():
    return landscape.surface(net, (x, y), [d1, d2], [coords, coords], points_per_pass=PER_PASS, engine=ENGINE).loss


# warm-up on a 3x3 corner of each, then time the full grids
landscape.surface(net, (x, y), [d1, d2], [coords[:3], coords[:3]], engine=ENGINE)
with torch.no_grad():
    loss_landscapes.planar_interpolation(copy.deepcopy(net), end_model(d1), end_model(d2),
                                         loss_landscapes.metrics.Loss(F.cross_entropy, x, y), steps=3)
def interleaved(repeats: int):
    """Best seconds of ours() and peer() over `repeats` rounds that time both (alternating the order), and
    each side's last result: load from other processes hits both sides alike."""
    times, out = {ours: [], peer: []}, {}
    for r in range(repeats):
        for fn in ((ours, peer) if r % 2 == 0 else (peer, ours)):
            t, out[fn] = best_time(fn, repeats=1, warmup=0, device=dev)
            times[fn].append(t)
    return min(times[ours]), out[ours], min(times[peer]), out[peer]


t_ours, z_ours, t_peer, z_peer = interleaved(REPEATS)
z_ours = z_ours.cpu()
z_peer = torch.as_tensor(np.asarray(z_peer), dtype=torch.float32)

# The peer's grid: row i is at i/steps along d1; even rows are at (j+1)/steps along d2, odd rows at
# j/steps (its serpentine walk adds the d2 step before the first evaluation of an even row).
odd = (z_peer[1::2] - z_ours[1::2]).abs().max().item()
even = (z_peer[0::2, :-1] - z_ours[0::2, 1:]).abs().max().item()
err = max(odd, even)
print(f"device: {describe(dev)}, torch {torch.__version__}, loss-landscapes {version('loss-landscapes')}")
print(f"{STEPS}x{STEPS} surface, SmallCNN(width=16) ({models.count_parameters(net)} parameters), 1000 images")
print(f"genlens.lenses.landscape.surface (engine={ENGINE}):  {t_ours:8.2f} s")
print(f"loss_landscapes.planar_interpolation:    {t_peer:8.2f} s")
print("Landscaper: not compared (its dependencies pin numpy<2); on the CPU parity (one forward pass per point) is the limit")
print(f"max |loss difference| over shared points: {err:.2e} (loss range {z_ours.min():.3f}..{z_ours.max():.3f})")
assert err < 1e-3 * max(1.0, z_ours.abs().max().item()), f"genlens and loss-landscapes disagree by {err}"
print(f"speedup: {t_peer / t_ours:.2f}")
