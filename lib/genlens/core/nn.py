"""Small helpers every lens needs: evaluation mode, input checks, layer activations, flat parameters.

One way to do each: a lens that evaluates a model wraps the work in `eval_mode(model)` (every submodule's
train/eval flag is restored afterwards, also on an exception); a lens that takes a model and data
checks them with `check_model` / `check_pair` (one line naming the argument and what arrived);
a lens that reads hidden layers calls `activations`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

__all__ = ["eval_mode", "eval_mode_batch_stats", "model_device", "check_model", "check_tensor", "check_pair", "activations",
           "flat_parameters"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block; afterwards restore each submodule's own train flag.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()); _ = net[1].eval()
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training, net[1].training
    (True, False)
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.train(mode)


_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@contextmanager
def eval_mode_batch_stats(model: nn.Module) -> Iterator[nn.Module]:
    """`eval_mode`, except that every BatchNorm layer normalizes with the statistics of the batch it sees.

    This is how some papers' code evaluates (e.g. HaohanWang/HFC normalizes with ``tf.nn.moments`` of the
    current batch at test time too): predictions then depend on the batch, so evaluate in the batches the
    paper used. The running averages (and ``num_batches_tracked``) are left exactly as they were, and
    every submodule's train flag is restored afterwards, also on an exception. Use `eval_mode` unless a
    chapter needs this protocol.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    >>> with eval_mode_batch_stats(net):
    ...     out = net(torch.randn(8, 2))
    >>> bool(out.mean(0).abs().max() < 1e-5), net[1].running_mean.abs().max().item(), net.training
    (True, 0.0, True)
    """
    with eval_mode(model):
        norms = [m for m in model.modules() if isinstance(m, _BATCHNORM)]
        saved = [{k: b.detach().clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
        for m in norms:
            m.train()
        try:
            yield model
        finally:
            with torch.no_grad():
                for m, buffers in zip(norms, saved):
                    for k, b in buffers.items():
                        getattr(m, k).copy_(b)


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (None for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


def check_model(model: object, name: str = "model") -> nn.Module:
    """`model` if it is an nn.Module; else TypeError naming what arrived."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_tensor(x: object, name: str = "x", *, ndim: int | Sequence[int] | None = None,
                 floating: bool = False, device: torch.device | None = None) -> torch.Tensor:
    """`x` if it is a tensor of the given rank(s) (and floating point, and on `device`); else one-line error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim or ())
    if ranks and x.ndim not in ranks:
        raise ValueError(f"{name} must have {' or '.join(map(str, ranks))} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if device is not None and x.device != device:
        raise ValueError(f"model is on {device} but {name} is on {x.device}")
    return x


def check_pair(model: nn.Module, data: object, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """An (inputs, targets) pair of tensors with as many rows, on the model's device; else one-line error."""
    check_model(model)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be an (inputs, targets) pair of tensors, got {type(data).__name__}")
    device = model_device(model)
    x = check_tensor(data[0], f"{name}[0]", device=device)
    y = check_tensor(data[1], f"{name}[1]", device=device)
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y)} targets")
    return x, y


@torch.no_grad()
def activations(model: nn.Module, x: torch.Tensor, layers: Sequence[str] | Mapping[str, str], *,
                batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Flattened outputs of named submodules on inputs x (N, ...): label -> (N, D_layer) float32, in eval mode.

    layers: module names from ``model.named_modules()``, or a mapping label -> module name; a name
    ending in ``:in`` takes the module's (first) input instead of its output. Forward hooks copy each
    chosen tensor batch by batch; they are removed and every submodule's mode restored afterwards.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> {k: tuple(v.shape) for k, v in activations(net, torch.zeros(5, 3), ["1", "2:in"]).items()}
    {'1': (5, 4), '2:in': (5, 4)}
    """
    check_model(model)
    check_tensor(x, "x", device=model_device(model))
    named = dict(model.named_modules())
    wanted = dict(layers) if isinstance(layers, Mapping) else {name: name for name in layers}
    missing = [m for m in wanted.values() if m.removesuffix(":in") not in named]
    if missing:
        raise ValueError(f"layers {missing} are not modules of the model; known: {', '.join(n for n in named if n)}")
    chunks: dict[str, list[torch.Tensor]] = {label: [] for label in wanted}

    def hook_for(label: str, take_input: bool):
        def hook(_module, inputs, output):
            t = inputs[0] if take_input else output
            chunks[label].append(t.detach().flatten(1).float().clone())  # clone: a later ReLU may be in place
        return hook

    handles = [named[m.removesuffix(":in")].register_forward_hook(hook_for(label, m.endswith(":in")))
               for label, m in wanted.items()]
    try:
        with eval_mode(model):
            for s in range(0, len(x), batch_size):
                model(x[s:s + batch_size])
    finally:
        for h in handles:
            h.remove()
    return {label: torch.cat(parts) for label, parts in chunks.items()}


def flat_parameters(model: nn.Module, *, trainable_only: bool = True) -> torch.Tensor:
    """All (trainable) parameters of `model` concatenated into one detached vector (P,).

    >>> flat_parameters(nn.Linear(3, 2)).shape
    torch.Size([8])
    """
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad or not trainable_only])
