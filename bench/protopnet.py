"""Benchmark genlens.lenses.protopnet.push_prototypes (batched over the training set on the device) against a
naive push in the style of the reference implementation's loop: one image at a time, for every
prototype a Python loop over the images of its class.

Model: a ProtoPNet on the quick chapter's CNN backbone (width 16, 5 prototypes of dimension 64 per
class), untrained; push set: the 4,000 mnist5k training digits. Both pushes must pick the same source
image and patch for every prototype. Each side runs once to warm up, then the best of three runs
counts (the naive side, which is slow, runs once after its warm-up). The last line is
`speedup: <naive time / genlens time>`.
"""
from __future__ import annotations

import copy

import torch

from genlens.core import data
from genlens.lenses import protopnet as pp
from genlens.core.device import best_time, describe, pick_device


@torch.no_grad()
def naive_push(model: pp.ProtoPNet, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: latent grid, distances to each own-class prototype, running best; (image, flat patch)."""
    model.eval()
    P = model.num_prototypes
    best = [float("inf")] * P
    where = [(0, 0)] * P
    protos = model.prototypes.detach().clone()
    for n in range(len(x)):
        z = model.latent(x[n : n + 1])[0]  # (D, h, w)
        D, h, w = z.shape
        c = int(y[n])
        for j in range(P):
            if int(model.prototype_class[j]) != c:
                continue
            d = ((z - protos[j, :, 0, 0][:, None, None]) ** 2).sum(0)  # (h, w)
            v, flat = d.flatten().min(0)
            if v.item() < best[j]:
                best[j], where[j] = v.item(), (n, int(flat))
    return torch.tensor([n for n, _ in where]), torch.tensor([f for _, f in where])


def main() -> None:
    dev = pick_device("auto")
    images = data.load("mnist5k", dev)
    cfg = pp.ProtoConfig(prototypes_per_class=5, prototype_dim=64)
    torch.manual_seed(0)
    model = pp.build("cnn", images.image_shape, images.num_classes, cfg, width=16).to(dev).eval()
    x, y = images.x_train, images.y_train
    t_ours, res = best_time(lambda: pp.push_prototypes(copy.deepcopy(model), x, y), device=dev)
    t_naive, (idx, flat) = best_time(lambda: naive_push(model, x, y), repeats=1, device=dev)
    w = model.latent(x[:1]).shape[-1]
    assert torch.equal(res.image_index.cpu(), idx), "the two pushes chose different source images"
    assert torch.equal((res.patch[:, 0] * w + res.patch[:, 1]).cpu(), flat), "the two pushes chose different patches"
    print(f"push of {model.num_prototypes} prototypes over {len(x)} training images ({describe(dev)}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads):")
    print(f"  genlens (batched)  {t_ours * 1e3:9.0f} ms")
    print(f"  naive per image    {t_naive * 1e3:9.0f} ms   (same source image and patch for every prototype)")
    print(f"speedup: {t_naive / t_ours:.2f}")


if __name__ == "__main__":
    main()
