"""Benchmark the primitives of the `rethinking` chapter against their usual implementations.

1. One epoch of SGD training (MLP 1x512 on MNIST-5k): genlens.core.train (data resident on the device,
   batches sliced from one tensor) vs the standard torch DataLoader(TensorDataset) loop, fed the same
   permutation, so both must end with the same weights.
2. Random pixels for 4,000 images: genlens.lenses.randomization.random_pixels (one batched argsort and
   gather) vs a Python loop drawing and applying one permutation per image; both must keep each
   image's own pixel values.
The last line is `speedup: <DataLoader loop time / genlens time>` for the training epoch.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from genlens.core import data, models
from genlens.core.device import best_time
from genlens.lenses.randomization import random_pixels
from genlens.core.train import TrainConfig, build_seeded, epoch_generator, train


def dataloader_epoch(model, x, y, order, config):
    """The textbook loop: a DataLoader over a TensorDataset, the given sample order, SGD."""
    loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, sampler=order.tolist())
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    images = data.load("mnist5k")
    config = TrainConfig(epochs=1, batch_size=64, lr=0.1, seed=0)
    build = lambda: build_seeded(lambda: models.build_for("mlp", images.image_shape, 10, hidden=(512,)), 0)  # noqa: E731
    order = torch.randperm(len(images.x_train), generator=epoch_generator(config.seed, 0))  # train's epoch-0 order

    ours, theirs = build(), build()
    train(ours, images, config, progress=False)
    dataloader_epoch(theirs, images.x_train, images.y_train, order, config)
    same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert same, "genlens.core.train and the DataLoader loop disagree after one epoch"

    t_ours = best_time(lambda: train(build(), images, config, progress=False))[0]
    t_loader = best_time(lambda: dataloader_epoch(build(), images.x_train, images.y_train, order, config))[0]
    print(f"train epoch (4000 MNIST, MLP 1x512, incl. test eval): genlens {t_ours * 1e3:.0f} ms, "
          f"DataLoader loop {t_loader * 1e3:.0f} ms (no eval), ratio {t_loader / t_ours:.2f}x")

    x = images.x_train
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731

    def loop():  # one permutation drawn and applied per image, in Python
        g = gen()
        return torch.stack([img.reshape(1, -1)[:, torch.randperm(28 * 28, generator=g)].reshape(1, 28, 28) for img in x])

    ours_px, loop_px = random_pixels(x, gen()), loop()
    same_pixels = torch.equal(ours_px.flatten(1).sort(1).values, loop_px.flatten(1).sort(1).values)
    assert same_pixels, "each image must keep its own pixel values under both implementations"
    t_batched, t_loop = best_time(lambda: random_pixels(x, gen()))[0], best_time(loop)[0]
    print(f"random pixels (4000 images): genlens {t_batched * 1e3:.1f} ms, per-image loop {t_loop * 1e3:.1f} ms, "
          f"ratio {t_loop / t_batched:.1f}x")
    print(f"speedup: {t_loader / t_ours:.2f}")


if __name__ == "__main__":
    main()
