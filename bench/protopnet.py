"""Benchmark genlens.lenses.protopnet.push_prototypes (batches of 500 reduced on the device) against the
reference implementation's push (cfchen-duke/ProtoPNet, push.py): batches of 75 images, the
distances of each batch copied to numpy, and a Python loop over the prototypes that keeps each
one's running best patch among the batch's images of its class.

Model: a ProtoPNet on the quick chapter's CNN backbone (width 16, 5 prototypes of dimension 64 per
class), untrained; push set: the 4,000 mnist5k training digits. Both pushes must pick the same source
image and patch for every prototype. A push changes the prototypes in place, so every timed call
gets its own copy of the model, made before the clock starts (the timed call is the push alone: no
copy inside it). Each side runs once to warm up, then the best of three runs counts. genlens is also
timed with the reference's batches of 75, so that the ratio separates the batch size from the
per-prototype loop. The last line is `speedup: <reference time / genlens time>` at genlens's own
batch size.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch

from genlens.core import data
from genlens.core.device import best_time, describe, pick_device
from genlens.core.nn import eval_mode
from genlens.core.train import build_seeded
from genlens.lenses import protopnet as pp


@torch.no_grad()
def reference_push(model: pp.ProtoPNet, x: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 75) -> tuple[torch.Tensor, torch.Tensor]:
    """push.py's update_prototypes_on_batch over batches of 75; returns (image index (P,), flat patch (P,))."""
    P = model.num_prototypes
    classes = model.prototype_class.cpu().numpy()
    protos = model.prototypes.detach()
    best, where = np.full(P, np.inf), np.zeros((P, 2), np.int64)
    best_latent = np.zeros((P, protos.shape[1]), np.float32)
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            z = model.latent(x[start : start + batch_size])  # (B, D, h, w)
            dist = pp.l2_distances(z, protos).cpu().numpy()  # (B, P, h, w)
            latent, labels = z.cpu().numpy(), y[start : start + batch_size].cpu().numpy()
            by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
            for j in range(P):
                images = by_class.get(int(classes[j]))
                if images is None:
                    continue
                dist_j = dist[images, j]  # (B_c, h, w)
                if dist_j.min() < best[j]:
                    n, u, v = np.unravel_index(np.argmin(dist_j, axis=None), dist_j.shape)
                    best[j], where[j] = dist_j.min(), (start + images[n], u * dist_j.shape[2] + v)
                    best_latent[j] = latent[images[n], :, u, v]
    model.prototypes.data.copy_(torch.from_numpy(best_latent).view_as(model.prototypes))
    return torch.from_numpy(where[:, 0]), torch.from_numpy(where[:, 1])


def main() -> None:
    dev = pick_device("auto")
    images = data.load("mnist5k", dev)
    cfg = pp.ProtoConfig(prototypes_per_class=5, prototype_dim=64)
    build = functools.partial(pp.build, "cnn", images.image_shape, images.num_classes, cfg, width=16)
    model = build_seeded(build, 0).to(dev).eval()
    x, y = images.x_train, images.y_train
    ours, ours75, theirs = ([copy.deepcopy(model) for _ in range(4)] for _ in range(3))
    t_ours, res = best_time(lambda: pp.push_prototypes(ours.pop(), x, y), device=dev)
    t_ours75, res75 = best_time(lambda: pp.push_prototypes(ours75.pop(), x, y, batch_size=75), device=dev)
    t_ref, (idx, flat) = best_time(lambda: reference_push(theirs.pop(), x, y), device=dev)
    w = model.latent(x[:1]).shape[-1]
    assert torch.equal(res.image_index.cpu(), idx), "the two pushes chose different source images"
    assert torch.equal(res75.image_index, res.image_index) and torch.equal(res75.patch, res.patch), "batch size changed the push"
    assert torch.equal((res.patch[:, 0] * w + res.patch[:, 1]).cpu(), flat), "the two pushes chose different patches"
    print(f"push of {model.num_prototypes} prototypes over {len(x)} training images ({describe(dev)}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads):")
    print(f"  genlens (batches of 500, reduced on the device)  {t_ours * 1e3:9.0f} ms")
    print(f"  genlens (batches of 75, reduced on the device)   {t_ours75 * 1e3:9.0f} ms   "
          f"(reference / this: {t_ref / t_ours75:.2f})")
    print(f"  reference (batches of 75, numpy loop over P)     {t_ref * 1e3:9.0f} ms   (same source image and patch)")
    print(f"speedup: {t_ref / t_ours:.2f}")


if __name__ == "__main__":
    main()
