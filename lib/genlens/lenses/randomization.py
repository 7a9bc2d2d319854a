"""The randomization tests of Zhang et al. (2017, arXiv:1611.03530), Section 2.

Each function returns new tensors (never modifies its input) and draws all of its randomness from
an explicit `torch.Generator` (CPU), so a test is repeatable for a given seed. Only a training set
is ever randomized; the test set keeps its true labels and pixels.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Callable, Literal

import torch
from torch import nn

Kind = Literal["true", "corrupt", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"]
KINDS: tuple[str, ...] = ("true", "corrupt", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")


def corrupt_labels(y: torch.Tensor, fraction: float, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each label, independently with probability `fraction`, by a uniform random class.

    As in the paper (and its authors' code), the drawn class may equal the true one, so about
    fraction * (1 - 1/num_classes) of the labels end up wrong. y: (N,) int64 -> (N,) int64.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    N = y.shape[0]
    replace_mask = torch.rand(N, generator=generator) < fraction
    drawn = torch.randint(0, num_classes, (N,), generator=generator)
    return torch.where(replace_mask.to(y.device), drawn.to(y.device), y)


def shuffle_pixels(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply one random permutation of pixel positions to every image. x: (N, C, H, W)."""
    N, C, H, W = x.shape
    perm = torch.randperm(H * W, generator=generator).to(x.device)
    return x.reshape(N, C, H * W)[:, :, perm].reshape(N, C, H, W)


def random_pixels(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply an independent random permutation of pixel positions to each image. x: (N, C, H, W)."""
    N, C, H, W = x.shape
    perms = torch.rand(N, H * W, generator=generator).argsort(dim=1).to(x.device)  # (N, HW), one per image
    index = perms[:, None, :].expand(N, C, H * W)
    return x.reshape(N, C, H * W).gather(2, index).reshape(N, C, H, W)


def gaussian_pixels(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Replace every image by Gaussian noise with the data set's per-channel mean and std. x: (N, C, H, W)."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    return mean + std * noise


def randomize(data: Any, kind: Kind, *, fraction: float = 1.0, seed: int = 0) -> Any:
    """A copy of `data` (an `ImageData`) whose training set is randomized by `kind`.

    kind: "true" (unchanged), "corrupt" (labels corrupted with probability `fraction`),
    "random_labels", "shuffled_pixels", "random_pixels", "gaussian". The test set is unchanged.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    g = torch.Generator().manual_seed(seed)
    x, y = data.x_train, data.y_train
    if kind == "corrupt":
        y = corrupt_labels(y, fraction, data.num_classes, g)
    elif kind == "random_labels":
        y = corrupt_labels(y, 1.0, data.num_classes, g)
    elif kind == "shuffled_pixels":
        x = shuffle_pixels(x, g)
    elif kind == "random_pixels":
        x = random_pixels(x, g)
    elif kind == "gaussian":
        x = gaussian_pixels(x, g)
    return replace(data, x_train=x, y_train=y)


def canonical(kind: Kind, fraction: float = 1.0) -> tuple[str, float]:
    """One name per distinct randomization: label tests become ("corrupt", p), pixel tests keep theirs."""
    if kind == "true":
        return "corrupt", 0.0
    if kind == "random_labels":
        return "corrupt", 1.0
    return kind, float(fraction) if kind == "corrupt" else 1.0


def builder(data: Any, model: str = "mlp", model_kwargs: dict | None = None) -> Callable[[], nn.Module]:
    """The function that builds a fresh `model` for `data`'s images and classes: the one `train_randomized`
    initialises (under its seed) and trains."""
    from ..core.models import build_for

    return functools.partial(build_for, model, data.image_shape, data.num_classes, **dict(model_kwargs or {}))


def train_randomized(data: Any, kind: Kind, config: Any, *, model: str = "mlp", model_kwargs: dict | None = None,
                     fraction: float = 1.0, data_seed: int = 0, cache: Any = None, progress: bool = False,
                     snapshots: bool = False):
    """Train `model` on the training set of `data` randomized by (kind, fraction, data_seed).

    Returns (trained model in eval mode, History, randomized data). Results are cached by the full
    specification, so every chapter asking for the same network on the same randomization shares it;
    `config.seed` drives the initialisation (`genlens.core.train.train_cached`). `snapshots`: the
    History also holds the parameters at initialisation and after each epoch (a separate cache entry).
    """
    from ..core.train import train_cached

    kind_c, fraction_c = canonical(kind, fraction)
    randomized = randomize(data, kind_c, fraction=fraction_c, seed=data_seed)
    kwargs = dict(model_kwargs or {})
    spec = {"data": data.name, "n_train": len(data.x_train), "n_test": len(data.x_test),
            "randomization": [kind_c, fraction_c, data_seed], "model": model, "model_kwargs": kwargs}
    build = builder(data, model, kwargs)
    net, history = train_cached(build, randomized, config, spec=spec, cache=cache, progress=progress,
                                snapshots=snapshots)
    return net, history, randomized
