"""The zoo's grid: training configurations that vary one factor at a time around a base model.

Jiang et al. (2020) vary hyperparameters over a grid and compare models that differ in one of them;
here the grid is a *star* around a base model (each factor takes its values with every other factor
at the base's), plus crossed pairs where a factor means little alone (depth with and without
shortcuts) and seed replicates of the base (the noise floor of every measure).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

import torch

from ..core import data as data_mod
from ..core.train import TrainConfig, build_seeded
from ..lenses.randomization import builder, train_randomized

__all__ = ["FACTORS", "ZooModel", "grid", "zoo_data", "train_model", "initial_model"]

# The factors of a zoo model, in the table's order (`seed` is a replicate, not a hyperparameter: the
# analysis leaves it out of Psi and the CMI and reports it as the noise floor).
FACTORS: tuple[str, ...] = ("batchnorm", "batch_size", "width", "blocks", "shortcut", "weight_decay", "augment",
                            "label_noise", "lr", "seed")


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: a `ZooCNN` architecture, its SGD recipe and the training labels' noise."""

    batchnorm: bool = True
    batch_size: int = 64
    width: int = 16  # channels of every conv (the last hidden layer has `width` units)
    blocks: int = 2  # residual blocks (two 3x3 convs each)
    shortcut: bool = True
    weight_decay: float = 0.0  # L2 in the optimizer
    augment: bool = False  # random crops (no flips: digits)
    label_noise: float = 0.0  # fraction of training labels replaced at random (`randomization.corrupt_labels`)
    lr: float = 0.05  # SGD learning rate per step (momentum 0.9, cosine schedule)
    seed: int = 0  # initialisation, batch order, augmentation

    def factors(self) -> dict[str, Any]:
        """The factor columns of the zoo's table."""
        return {f: getattr(self, f) for f in FACTORS}

    def differs(self, base: "ZooModel") -> tuple[str, ...]:
        """The factors in which this model differs from `base`."""
        return tuple(f for f in FACTORS if getattr(self, f) != getattr(base, f))

    def name(self, base: "ZooModel") -> str:
        """'base' or the differing factors, e.g. 'blocks=3,shortcut=False'."""
        diff = self.differs(base)
        return ",".join(f"{f}={getattr(self, f)}" for f in diff) if diff else "base"

    def architecture(self) -> dict[str, Any]:
        """`ZooCNN` arguments."""
        return {"width": self.width, "blocks": self.blocks, "batchnorm": self.batchnorm, "shortcut": self.shortcut}

    def config(self, max_epochs: int) -> TrainConfig:
        """The recipe: SGD with momentum, cosine over `max_epochs`, stopped once an epoch fits every training label."""
        return TrainConfig(epochs=max_epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           schedule="cosine", augment=self.augment, augment_flip=False, seed=self.seed,
                           stop_at_train_acc=1.0)


def grid(base: ZooModel, variations: Mapping[str, Sequence], *, crossed: Sequence[tuple[str, str]] = (),
         seeds: Sequence[int] = (), replicated: Sequence[str] = ()) -> tuple[ZooModel, ...]:
    """The base, then each factor of `variations` at each of its values (the others at the base's), then the
    full product of each `crossed` pair's values, then the base at each of `seeds`, then every model that varies
    a `replicated` factor at each of `seeds` too (the spread of a claim about that factor); duplicates once, in order.

    >>> zoo = grid(ZooModel(), {"width": [8, 16, 32], "blocks": [1, 2], "shortcut": [True, False]},
    ...            crossed=[("blocks", "shortcut")], seeds=[1])
    >>> [m.name(ZooModel()) for m in zoo]  # doctest: +NORMALIZE_WHITESPACE
    ['base', 'width=8', 'width=32', 'blocks=1', 'shortcut=False', 'blocks=1,shortcut=False', 'seed=1']
    >>> [m.name(ZooModel()) for m in grid(ZooModel(), {"width": [8, 16]}, seeds=[1], replicated=["width"])]
    ['base', 'width=8', 'seed=1', 'width=8,seed=1']
    """
    known = {f.name for f in fields(ZooModel)}
    for name in list(variations) + [f for pair in crossed for f in pair]:
        if name not in known:
            raise ValueError(f"unknown zoo factor {name!r}; known: {', '.join(FACTORS)}")
    for pair in crossed:
        for name in pair:
            if name not in variations:
                raise ValueError(f"crossed factor {name!r} has no values in `variations`")
    models = [base]
    for name, values in variations.items():
        models += [replace(base, **{name: v}) for v in values]
    for a, b in crossed:
        models += [replace(base, **{a: va, b: vb}) for va, vb in itertools.product(variations[a], variations[b])]
    models += [replace(base, seed=s) for s in seeds]
    for name in replicated:
        if name not in variations:
            raise ValueError(f"replicated factor {name!r} has no values in `variations`")
        models += [replace(base, **{name: v}, seed=s) for s in seeds for v in variations[name]]
    return tuple(dict.fromkeys(models))


def zoo_data(dataset: str, n_train: int | None, n_test: int | None, pool: int, *, seed: int = 0,
             device: str | torch.device = "cpu") -> data_mod.ImageData:
    """The zoo's images: a stratified subset of `dataset`, average-pooled by `pool` (2: 28x28 -> 14x14)."""
    images = data_mod.load(dataset, device=device)
    if n_train is not None or n_test is not None:
        images = images.subset(n_train, n_test, seed=seed)
    return data_mod.avg_pool(images, pool)


def train_model(model: ZooModel, images: data_mod.ImageData, max_epochs: int, *, cache=None, progress: bool = False,
                snapshots: bool = False):
    """Train one zoo model through the book's training path (cached, resumable): (network in eval mode,
    History, the training data it saw: labels noised by `label_noise`, test set unchanged). `snapshots`: the
    History holds the parameters at initialisation and after each epoch (`train_randomized`)."""
    kind = "corrupt" if model.label_noise > 0 else "true"
    return train_randomized(images, kind, model.config(max_epochs), model="zoo_cnn",
                            model_kwargs=model.architecture(), fraction=model.label_noise, data_seed=model.seed,
                            cache=cache, progress=progress, snapshots=snapshots)


def initial_model(model: ZooModel, images: data_mod.ImageData, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The network at its initialisation (the same draw `train_model` starts from), in eval mode."""
    return build_seeded(builder(images, "zoo_cnn", model.architecture()), model.seed).to(device).eval()
