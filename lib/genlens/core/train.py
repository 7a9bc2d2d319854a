"""One training loop for every chapter: data resident on the device, batches sliced from it.

In the spirit of airbench: the whole training set lives on the device as one tensor, each epoch draws
a permutation from a generator seeded by (seed, epoch), augmentation is batched tensor ops, and on
CUDA the forward pass runs under bf16 autocast with channels-last memory. Because every epoch's
randomness is derived from (seed, epoch), a run resumed from an epoch checkpoint continues exactly
as the uninterrupted run would have; the caller's global RNG is left as it was.

A run is a sequence of `Phase`s (one by default): each trains chosen parameter groups with its own
optimizer settings and objective, so schedules such as ProtoPNet's warm-up / joint / last-layer
epochs run on this same loop. `train_cached` is the one cached fit: it seeds the model's
initialisation with `TrainConfig.seed`, trains once per specification and reuses the result.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cache import Cache, config_key
from .nn import check_model, eval_mode, model_device

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, nn.Module, "History"], None]
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]]"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (learning rate per step, weight decay is L2 in the optimizer)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    layer_weight_decay: tuple[float, ...] = ()  # one weight decay per layer with parameters (Linear, Conv, ...),
    # in model order, replacing `weight_decay` there (Szegedy et al.'s 1e-5, 1e-5, 1e-6); () = `weight_decay` everywhere
    schedule: Literal["constant", "exponential", "cosine", "step"] = "constant"
    lr_decay: float = 0.95  # per epoch for "exponential" (Zhang et al. 2017 decay 0.95 per epoch)
    lr_steps: tuple[int, ...] = ()  # epochs at which "step" multiplies the lr by 0.1
    augment: bool = False  # random crop (pad 4 px) + horizontal flip, batched on the device
    augment_flip: bool = True  # False: crops only (digits should not be mirrored)
    seed: int = 0  # drives the initialisation (in train_cached), batch order, augmentation and dropout
    stop_at_train_acc: float | None = None  # stop once an epoch's train accuracy reaches this
    stop_at_train_loss: float | None = None  # stop once an epoch's train loss falls to this (with
    # exact_train_metrics: the eval-mode loss of the whole training set), e.g. to compare runs at matched loss
    exact_train_metrics: bool = False  # record train loss/accuracy of the whole set in eval mode after
    # each epoch (one extra forward pass) instead of the running average over the epoch's batches
    mixup: float = 0.0  # mixup (Zhang et al. 2018) with lambda ~ Beta(mixup, mixup) per batch and an in-batch
    # permutation, as in HaohanWang/HFC (Beta(1, 1)); 0 = off

    def lr_factor(self, epoch: int) -> float:
        """The schedule's multiplier of the base learning rate during `epoch` (0-based)."""
        if self.schedule == "exponential":
            return self.lr_decay**epoch
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if self.schedule == "step":
            return 0.1 ** sum(epoch >= s for s in self.lr_steps)
        return 1.0

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during `epoch` (0-based)."""
        return self.lr * self.lr_factor(epoch)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what a cache key needs: new options stay out while off)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The default objective: (mean cross-entropy in nats, logits (B, K), no extra parts)."""
    logits = model(x)
    return F.cross_entropy(logits.float(), y), logits, {}


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs that trains chosen parameters with one objective (e.g. ProtoPNet's warm-up).

    config: the phase's epochs, batch size, optimizer, base lr and schedule, weight decay, augmentation
    and mixup (the run's config gives the seed, `stop_at_train_acc`, `stop_at_train_loss` and `exact_train_metrics`).
    groups(module) -> optimizer parameter groups (dicts with "params" and optionally "lr" and
    "weight_decay", else the config's); only these parameters train, every other one is frozen for
    the phase. Default: every parameter that requires grad. Phases with the same name share one
    optimizer: a phase that recurs (ProtoPNet's joint epochs between pushes) continues its
    optimizer's state, and its schedule counts the epochs of all its recurrences.
    objective(module, x, y) -> (loss, logits (B, K), parts): named scalar parts are averaged over each
    epoch into `History.extra` (they must have the same names in every epoch). Default: cross-entropy.
    module(model) -> the submodule that trains, on inputs(model, x) computed once per stretch in eval
    mode (a frozen prefix: ProtoPNet's last layer trains on the frozen network's similarities).
    after(model, data, history) runs after the phase's last epoch (ProtoPNet's push).
    """

    name: str
    config: TrainConfig
    groups: Callable[[nn.Module], list[dict]] | None = None
    objective: Objective | None = None
    module: Callable[[nn.Module], nn.Module] | None = None
    inputs: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    after: Callable[[nn.Module, Any, "History"], None] | None = None

    def key(self) -> list:
        """What a cache key records of the phase (its callables must be named by the caller's spec)."""
        return [self.name, self.config.changed()]


@dataclass
class History:
    """Per-epoch curves: losses are mean objective values (nats for cross-entropy), accuracies fractions in [0, 1].

    Train metrics are running averages over the epoch's batches, or exact eval-mode values of the
    whole training set when `TrainConfig.exact_train_metrics` is set. `phase` names each epoch's
    phase; `snapshots` holds the named parameters (CPU copies) at initialisation and after each
    epoch when the run asked for them (`snapshots=True`, for loss-landscape trajectories).
    """

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch's training steps
    extra: dict[str, list] = field(default_factory=dict)  # curves and records added by objectives, callbacks, hooks
    phase: list[str] = field(default_factory=list)
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "History":
        return cls(**{k: (dict(v) if k == "extra" else list(v)) for k, v in d.items()})

    def epochs_to_reach(self, train_acc: float) -> int | None:
        """First epoch (1-based count) whose train accuracy is >= `train_acc`, else None."""
        return next((e + 1 for e, a in zip(self.epoch, self.train_acc) if a >= train_acc), None)

    def images_per_second(self, n_train: int) -> float:
        """Training throughput: images processed per second of training steps."""
        return n_train * len(self.seconds) / max(sum(self.seconds), 1e-9)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of `epoch` (0-based) in a run seeded by `seed`: `train` draws the epoch's batch
    order from it first (``torch.randperm(n_train, generator=...)``), then augmentation and mixup partners.

    Derived from (seed, epoch) alone, so a resumed run continues as the uninterrupted one, and a
    reference loop can replay the same batch order (``bench/rethinking.py``).

    >>> a, b = epoch_generator(0, 1), epoch_generator(0, 1)
    >>> torch.equal(torch.randperm(5, generator=a), torch.randperm(5, generator=b))
    True
    """
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop after zero-padding by `pad` pixels, and (if `flip`) random horizontal flip. x: (B, C, H, W)."""
    B, C, H, W = x.shape
    shifts = torch.randint(0, 2 * pad + 1, (2, B), generator=generator).to(x.device)
    flips = (torch.rand(B, generator=generator) < (0.5 if flip else 0.0)).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    rows = shifts[0][:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = shifts[1][:, None] + torch.arange(W, device=x.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def _mixup_draw(alpha: float, batch: int, generator: torch.Generator,
                device: torch.device) -> tuple[float, torch.Tensor]:
    """lambda ~ Beta(alpha, alpha) (from two Gamma draws on the global RNG, reseeded each epoch) and a
    permutation of the batch drawn from `generator`."""
    a = torch.tensor([float(alpha), float(alpha)])
    g1, g2 = torch._standard_gamma(a).tolist()
    partner = torch.randperm(batch, generator=generator).to(device)
    return g1 / (g1 + g2), partner


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (if `enabled`), a no-op elsewhere: the mixed precision of every forward pass here."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@contextmanager
def _own_rng(device: torch.device) -> Iterator[None]:
    """Fork the CPU RNG (and the CUDA device's) for the block: the caller's global RNG stays as it was."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        yield


def build_seeded(build_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build_model()` with the CPU RNG seeded by `seed` (the initialisation), the global RNG left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return build_model()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, *,
            forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
            mixed_precision: bool = True) -> torch.Tensor:
    """Outputs of forward(model, batch) (default: logits (N, K)) in float32 for inputs x (N, ...), batched,
    in eval mode under `autocast` (if `mixed_precision`); every submodule's mode is restored."""
    check_model(model)
    outs = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            with autocast(x.device, mixed_precision):
                xb = x[i : i + batch_size]
                outs.append((model(xb) if forward is None else forward(model, xb)).float())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y)."""
    logits = predict(model, x, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def _make_optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD or Adam over parameter groups; a group without its own lr or weight decay takes the config's."""
    for group in groups:
        group["base_lr"] = group.get("lr", config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")


def layer_groups(module: nn.Module, decays: Sequence[float], flags: Mapping[nn.Parameter, bool] | None = None
                 ) -> list[dict]:
    """Optimizer groups with one weight decay per layer: the leaf modules that own parameters, in model order.

    `flags` (parameter -> requires_grad) keeps only trainable parameters. Raises ValueError unless there
    is exactly one decay per such layer.
    """
    layers = [m for m in module.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    if len(layers) != len(decays):
        raise ValueError(f"layer_weight_decay needs one value per layer with parameters ({len(layers)}), got {len(decays)}")
    return [{"params": [p for p in m.parameters(recurse=False) if flags is None or flags[p]], "weight_decay": float(wd)}
            for m, wd in zip(layers, decays)]


@dataclass
class _Stretch:
    """The state of the phase being run: what trains, on which tensors, with which optimizer."""

    module: nn.Module
    x: torch.Tensor
    x_test: torch.Tensor
    optimizer: torch.optim.Optimizer


def _begin(model: nn.Module, data: Any, phase: Phase, optimizers: dict, saved: dict, flags: dict) -> _Stretch:
    """Start a stretch of `phase`: its module and inputs, its optimizer (created once per name, restored from
    `saved` on resume), and only the optimizer's parameters trainable."""
    module = phase.module(model) if phase.module else model
    x, x_test = data.x_train, data.x_test
    if phase.inputs is not None:
        x, x_test = (predict(model, t, forward=phase.inputs) for t in (x, x_test))
    if phase.name not in optimizers:
        if phase.groups:
            groups = phase.groups(module)
        elif phase.config.layer_weight_decay:
            groups = layer_groups(module, phase.config.layer_weight_decay, flags)
        else:
            groups = [{"params": [p for p in module.parameters() if flags[p]]}]
        optimizers[phase.name] = _make_optimizer(phase.config, groups)
        if phase.name in saved:
            optimizers[phase.name].load_state_dict(saved[phase.name])
    model.requires_grad_(False)
    for group in optimizers[phase.name].param_groups:
        for p in group["params"]:
            p.requires_grad_(True)
    return _Stretch(module, x, x_test, optimizers[phase.name])


def _epoch(stretch: _Stretch, y: torch.Tensor, phase: Phase, k: int, gen: torch.Generator,
           perturb: Perturb | None) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One pass over the training set; returns the summed loss, the number correct and the summed parts."""
    config, module, x, optimizer = phase.config, stretch.module, stretch.x, stretch.optimizer
    objective = phase.objective or cross_entropy
    device = x.device
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * config.lr_factor(k)
    order = torch.randperm(len(x), generator=gen).to(device)
    module.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    names, parts_sum = [], torch.zeros(0, device=device)
    for i in range(0, len(x), config.batch_size):
        idx = order[i : i + config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb = augment_batch(xb, gen, flip=config.augment_flip)
        if perturb is not None:
            xb = perturb(module, xb, yb)
            module.train()
        if config.mixup > 0:
            lam, partner = _mixup_draw(config.mixup, len(idx), gen, device)
            xb = lam * xb + (1 - lam) * xb[partner]
        if device.type == "cuda" and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss, logits, parts = objective(module, xb, yb)
            if config.mixup > 0:  # cross-entropy against the mixed one-hot targets
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits.float(), yb[partner])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
        if parts:  # one stacked accumulation for all parts
            names, batch_parts = list(parts), torch.stack([v.detach().float() for v in parts.values()]) * len(idx)
            parts_sum = batch_parts if not len(parts_sum) else parts_sum + batch_parts
    return loss_sum, correct, dict(zip(names, parts_sum))


def _plan(phases: Sequence[Phase]) -> list[tuple[int, int]]:
    """(phase index, epoch count within the phase's name) for every epoch of the run."""
    seen: dict[str, int] = {}
    plan = []
    for i, phase in enumerate(phases):
        for _ in range(phase.config.epochs):
            plan.append((i, seen.get(phase.name, 0)))
            seen[phase.name] = seen.get(phase.name, 0) + 1
    return plan


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters()}


def train(
    model: nn.Module,
    data: Any,
    config: TrainConfig,
    *,
    phases: Sequence[Phase] | None = None,
    perturb: Perturb | None = None,
    callback: EpochCallback | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    progress: bool = True,
    snapshots: bool = False,
    checkpoint_every: float = 0.0,
) -> History:
    """Train `model` in place on `data` (x_train, y_train, x_test, y_test on one device).

    phases: the run's `Phase`s in order (default: one phase "train" with `config`); config gives the
    seed of every epoch's batch order, augmentation and dropout. perturb(model, x, y) -> x' replaces
    each training batch (e.g. adversarial training); callback(epoch, model, history) runs after each
    epoch (add curves to history.extra); checkpoint(state) receives a resumable state after each
    epoch, or after the first epoch that ends `checkpoint_every` seconds or more after the last
    checkpoint (and after the last epoch), and `resume` takes such a state back. snapshots: keep the named parameters at
    initialisation and after each epoch in `History.snapshots`. Parameters' requires_grad flags are
    restored at the end; the model ends in eval mode.
    """
    check_model(model)
    x, y = data.x_train, data.y_train
    device = x.device
    if model_device(model) != device:
        raise ValueError(f"model is on {model_device(model)} but data is on {device}")
    phases = tuple(phases) if phases else (Phase("train", config),)
    if any(p.config.mixup > 0 and p.objective is not None for p in phases):
        raise ValueError("mixup needs the default cross-entropy objective")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    plan = _plan(phases)
    history, start, saved = History(), 0, {}
    if resume is not None:
        model.load_state_dict(resume["model"])
        history, start, saved = History.from_dict(resume["history"]), int(resume["epoch"]), dict(resume["optimizers"])
    if snapshots and start == 0:
        history.snapshots.append(_snapshot(model))
    flags = {p: p.requires_grad for p in model.parameters()}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    last_checkpoint = time.perf_counter()
    bar = None
    if progress and not os.environ.get("TQDM_DISABLE"):
        from tqdm import tqdm

        bar = tqdm(total=len(plan), initial=start, desc="train", leave=False)
    try:
        with _own_rng(device):
            for epoch in range(start, len(plan)):
                index, k = plan[epoch]
                phase = phases[index]
                if epoch == start or plan[epoch - 1][0] != index:
                    stretch = _begin(model, data, phase, optimizers, saved, flags)
                gen = epoch_generator(config.seed, epoch)
                torch.manual_seed(config.seed * 100_003 + epoch)  # dropout and other global-RNG layers
                t0 = time.perf_counter()
                loss_sum, correct, parts = _epoch(stretch, y, phase, k, gen, perturb)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                history.seconds.append(time.perf_counter() - t0)
                _record(history, stretch, data, y, config, phase, epoch, k, loss_sum, correct, parts)
                if snapshots:
                    history.snapshots.append(_snapshot(model))
                if callback is not None:
                    callback(epoch, model, history)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{history.train_acc[-1]:.3f}")
                if phase.after is not None and (epoch == len(plan) - 1 or plan[epoch + 1][0] != index):
                    phase.after(model, data, history)
                done = ((config.stop_at_train_acc is not None and history.train_acc[-1] >= config.stop_at_train_acc)
                        or (config.stop_at_train_loss is not None and history.train_loss[-1] <= config.stop_at_train_loss))
                if checkpoint is not None and (done or epoch == len(plan) - 1 or checkpoint_every <= 0
                                               or time.perf_counter() - last_checkpoint >= checkpoint_every):
                    last_checkpoint = time.perf_counter()
                    states = {**saved, **{name: opt.state_dict() for name, opt in optimizers.items()}}
                    checkpoint({"model": model.state_dict(), "optimizers": states, "history": history.to_dict(),
                                "epoch": len(plan) if done else epoch + 1})
                if done:
                    break
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        if bar is not None:
            bar.close()
    model.eval()
    return history


def _record(history: History, stretch: _Stretch, data: Any, y: torch.Tensor, config: TrainConfig, phase: Phase,
            epoch: int, k: int, loss_sum: torch.Tensor, correct: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
    """Append the epoch's metrics (test metrics, and exact train metrics if asked, in eval mode)."""
    n = len(y)
    test_loss, test_acc = evaluate(stretch.module, stretch.x_test, data.y_test)
    if config.exact_train_metrics:
        train_loss, train_acc = evaluate(stretch.module, stretch.x, y)
    else:
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n
    history.epoch.append(epoch)
    history.lr.append(phase.config.lr_at(k))
    history.phase.append(phase.name)
    history.train_loss.append(train_loss)
    history.train_acc.append(train_acc)
    history.test_loss.append(test_loss)
    history.test_acc.append(test_acc)
    for name, total in parts.items():
        history.extra.setdefault(name, []).append(total.item() / n)


def run_spec(spec: Mapping[str, Any], config: TrainConfig, device: torch.device, *,
             phases: Sequence[Phase] | None = None, snapshots: bool = False) -> dict[str, Any]:
    """The full specification `train_cached` hashes into its key: the caller's spec, the options that
    differ from their defaults, the phases (names and settings), the device type."""
    full = {"spec": dict(spec), "train": config.changed(), "device": device.type, "format": 2}
    if phases:
        full["phases"] = [p.key() for p in phases]
    if snapshots:
        full["snapshots"] = True
    return full


def train_cached(
    build_model: Callable[[], nn.Module],
    data: Any,
    config: TrainConfig,
    *,
    spec: Mapping[str, Any],
    cache: Cache | None = None,
    perturb: Perturb | None = None,
    callback: EpochCallback | None = None,
    progress: bool = True,
    phases: Sequence[Phase] | None = None,
    snapshots: bool = False,
    checkpoint_every: float | None = None,
) -> tuple[nn.Module, History]:
    """Build (initialisation seeded by `config.seed`), train once per (spec, config, phases, device type)
    and reuse the result from the cache afterwards.

    `spec` names everything else the result depends on (model name and arguments, dataset and its
    randomization, perturbation, the phases' objectives); it is hashed with `run_spec` into the cache
    key. An interrupted run resumes from its last epoch checkpoint. `checkpoint_every` (seconds between
    checkpoints, `train`): None is every epoch on a CPU and every 10 s on CUDA, where an epoch of a
    small network takes milliseconds and a checkpoint (a copy to the host and an fsync) takes longer. The model is returned in eval
    mode on the data's device; `History.snapshots` holds its trajectory when `snapshots` is set.
    """
    cache = cache or Cache()
    device = data.x_train.device
    full_spec = run_spec(spec, config, device, phases=phases, snapshots=snapshots)
    key = config_key(full_spec)
    model = build_seeded(build_model, config.seed).to(device)
    with cache.lock("models", key):
        hit = cache.load("models", key)
        if hit is None:
            resume = cache.load_checkpoint("models", key)
            history = train(model, data, config, phases=phases, perturb=perturb, callback=callback, resume=resume,
                            checkpoint=lambda state: cache.save_checkpoint("models", key, state), progress=progress,
                            snapshots=snapshots,
                            checkpoint_every=(10.0 if device.type == "cuda" else 0.0) if checkpoint_every is None
                            else checkpoint_every)
            hit = {"model": model.state_dict(), "history": history.to_dict()}
            cache.save("models", key, hit, full_spec)
            cache.clear_checkpoint("models", key)
    model.load_state_dict(hit["model"])
    model.eval()
    return model, History.from_dict(hit["history"])
