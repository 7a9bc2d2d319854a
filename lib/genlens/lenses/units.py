"""Unit analysis and layer stability (Szegedy et al., ICLR 2014, Sections 3 and 4.3).

Section 3 asks whether the single units of a hidden layer mean more than arbitrary directions of the
same layer: for a direction v of the layer's activation space phi(x), it finds the held-out images
that maximize <phi(x), v>, for natural-basis directions v = e_i (one unit) and for random ones.
Section 4.3 bounds how far a perturbation can move each layer's output: the upper Lipschitz constant
of a linear layer is its operator norm (largest singular value), and the network's is at most the
product over layers.

Activations are read with forward hooks (`genlens.core.nn.activations`, in eval mode), so any
module of any model can be probed; the model's train/eval flags are restored and nothing is
differentiated.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.nn import activations, check_model


def natural_directions(dim: int, units: list[int] | torch.Tensor) -> torch.Tensor:
    """Basis vectors e_u of R^dim for the given unit indices. -> (len(units), dim)."""
    units = torch.as_tensor(units, dtype=torch.long)
    if units.numel() and (units.min() < 0 or units.max() >= dim):
        raise ValueError(f"units must lie in [0, {dim}), got {units.tolist()}")
    return torch.eye(dim)[units]


def random_directions(dim: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n directions drawn uniformly on the unit sphere of R^dim (normalized Gaussians). -> (n, dim)."""
    v = torch.randn(n, dim, generator=generator)
    return v / v.norm(dim=1, keepdim=True)


def top_images(activations: torch.Tensor, directions: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k images with the largest <phi(x), v>, best first, for each direction v.

    activations: (N, D); directions: (M, D). -> (M, k) int64.
    """
    if activations.shape[1] != directions.shape[1]:
        raise ValueError(f"directions must have {activations.shape[1]} columns, got {tuple(directions.shape)}")
    scores = directions.to(activations) @ activations.T  # (M, N)
    return scores.topk(k, dim=1).indices


def label_purity(indices: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of each row's images that carry the row's most common label. indices (M, k) -> (M,) in (0, 1]."""
    rows = labels[indices]  # (M, k)
    counts = torch.nn.functional.one_hot(rows, int(labels.max()) + 1).sum(1)  # (M, classes)
    return counts.max(1).values.float() / indices.shape[1]


@dataclass(frozen=True)
class UnitAnalysis:
    """Top images of natural-basis and random directions of one layer.

    natural_top, random_top: (M, k) indices into the probed images; *_purity: (M,) label purity of
    those top-k images; natural, random: the directions (M, D).
    """

    natural: torch.Tensor
    random: torch.Tensor
    natural_top: torch.Tensor
    random_top: torch.Tensor
    natural_purity: torch.Tensor
    random_purity: torch.Tensor


def _module_name(model: nn.Module, layer: nn.Module | str) -> str:
    """The name of `layer` (a submodule of `model`, or its name) in ``model.named_modules()``."""
    if isinstance(layer, str):
        return layer
    name = next((n for n, m in check_model(model).named_modules() if m is layer), None)
    if name is None:
        raise ValueError(f"layer must be a submodule of model, got {type(layer).__name__}")
    return name


def unit_analysis(model: nn.Module, layer: nn.Module | str, x: torch.Tensor, y: torch.Tensor, *, units: list[int],
                  n_random: int, k: int, generator: torch.Generator | None = None) -> UnitAnalysis:
    """Top-k images of x (N, ...) for the given units and for n_random random directions of `layer`
    (a submodule of `model` or its name), whose output is read in eval mode."""
    name = _module_name(model, layer)
    acts = activations(model, x, [name])[name]  # (N, D)
    natural = natural_directions(acts.shape[1], units)
    rand = random_directions(acts.shape[1], n_random, generator)
    nat_top, rand_top = top_images(acts, natural, k), top_images(acts, rand, k)
    y = y.to(nat_top.device)
    return UnitAnalysis(natural, rand, nat_top, rand_top, label_purity(nat_top, y), label_purity(rand_top, y))


_ONE_LIPSCHITZ = (nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout, nn.Tanh)


def lipschitz_bounds(model: nn.Module) -> dict[str, float]:
    """Upper Lipschitz constant (L2 to L2) of each leaf module of a fully connected model, in order.

    Linear: its operator norm ||W||_2 (largest singular value); Sigmoid: 1/4 (its steepest slope);
    ReLU, Tanh, flatten, identity, dropout (in eval mode): 1. The product of all values bounds the
    whole network: ||f(x + r) - f(x)|| <= prod * ||r||. Raises ValueError for any other module (a
    Conv2d's norm depends on the input size; Upsample, GELU or overlapping pooling exceed 1).
    """
    bounds: dict[str, float] = {}
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        if isinstance(module, nn.Linear):
            bounds[name] = torch.linalg.matrix_norm(module.weight.detach().double(), ord=2).item()
        elif isinstance(module, nn.Sigmoid):
            bounds[name] = 0.25
        elif isinstance(module, _ONE_LIPSCHITZ):
            bounds[name] = 1.0
        else:
            raise ValueError(f"lipschitz_bounds supports Linear, Sigmoid, ReLU, Tanh, Flatten, Identity and "
                             f"Dropout, got {type(module).__name__} ({name})")
    return bounds


def amplification(model: nn.Module, x: torch.Tensor, x_perturbed: torch.Tensor) -> torch.Tensor:
    """Per-image gain ||f(x') - f(x)|| / ||x' - x|| of the logits f (L2 norms): (N,), in eval mode.

    Section 4.3 of Szegedy et al. (2014) bounds it by the product of the layers' Lipschitz constants
    (`lipschitz_bounds`). The logits are computed in float32 (no bf16 autocast on a GPU): bf16 rounding of
    the inputs and logits could move a gain by a percent, past the bound it is compared with.
    """
    from ..core.train import predict

    change = (predict(model, x_perturbed, mixed_precision=False) - predict(model, x, mixed_precision=False)).norm(dim=1)
    return change / (x_perturbed - x).flatten(1).norm(dim=1).clamp_min(1e-12)
