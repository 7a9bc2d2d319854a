"""One training loop for every chapter: data resident on the device, batches sliced from it.

In the spirit of airbench: the whole training set lives on the device as one tensor, each epoch draws
a permutation from a generator seeded by (seed, epoch), augmentation is batched tensor ops, and on
CUDA the forward pass runs under bf16 autocast with channels-last memory. Because every epoch's
randomness is derived from (seed, epoch), a run resumed from an epoch checkpoint continues exactly
as the uninterrupted run would have.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .cache import Cache, config_key

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, nn.Module, "History"], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (learning rate per step, weight decay is L2 in the optimizer)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["constant", "exponential", "cosine", "step"] = "constant"
    lr_decay: float = 0.95  # per epoch for "exponential" (Zhang et al. 2017 decay 0.95 per epoch)
    lr_steps: tuple[int, ...] = ()  # epochs at which "step" multiplies the lr by 0.1
    augment: bool = False  # random crop (pad 4 px) + horizontal flip, batched on the device
    augment_flip: bool = True  # False: crops only (digits should not be mirrored)
    seed: int = 0
    stop_at_train_acc: float | None = None  # stop once an epoch's train accuracy reaches this
    exact_train_metrics: bool = False  # record train loss/accuracy of the whole set in eval mode after
    # each epoch (one extra forward pass) instead of the running average over the epoch's batches
    mixup: float = 0.0  # mixup (Zhang et al. 2018) with lambda ~ Beta(mixup, mixup) per batch and an in-batch
    # permutation, as in HaohanWang/HFC (Beta(1, 1)); 0 = off. Left out of cache keys while 0.

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during `epoch` (0-based)."""
        if self.schedule == "exponential":
            return self.lr * self.lr_decay**epoch
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if self.schedule == "step":
            return self.lr * 0.1 ** sum(epoch >= s for s in self.lr_steps)
        return self.lr


@dataclass
class History:
    """Per-epoch curves: losses are mean cross-entropy (nats), accuracies are fractions in [0, 1].

    Train metrics are running averages over the epoch's batches, or exact eval-mode values of the
    whole training set when `TrainConfig.exact_train_metrics` is set.
    """

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch's training steps
    extra: dict[str, list[float]] = field(default_factory=dict)  # curves added by callbacks

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


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
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


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, K) in float32 for inputs x (N, ...), in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            with _autocast(x.device):
                outs.append(model(x[i : i + batch_size]).float())
        return torch.cat(outs) if outs else torch.empty(0)
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y)."""
    logits = predict(model, x, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")


def train(
    model: nn.Module,
    data: Any,
    config: TrainConfig,
    *,
    perturb: Perturb | None = None,
    callback: EpochCallback | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> History:
    """Train `model` in place with SGD/Adam on `data` (x_train, y_train, x_test, y_test on one device).

    perturb(model, x, y) -> x' replaces each training batch (e.g. adversarial training); callback
    (epoch, model, history) runs after each epoch (add curves to history.extra); checkpoint(state)
    receives a resumable state after each epoch, and `resume` takes such a state back.
    """
    x, y = data.x_train, data.y_train
    device = x.device
    if next(model.parameters()).device != device:
        raise ValueError(f"model is on {next(model.parameters()).device} but data is on {device}")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config)
    history, start = History(), 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        history, start = History.from_dict(resume["history"]), int(resume["epoch"])
    bar = None
    if progress and not os.environ.get("TQDM_DISABLE"):
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, initial=start, desc="train", leave=False)
    n = len(x)
    for epoch in range(start, config.epochs):
        gen = _epoch_generator(config.seed, epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout and other global-RNG layers
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(epoch)
        order = torch.randperm(n, generator=gen).to(device)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        t0 = time.perf_counter()
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            xb, yb = x[idx], y[idx]
            if config.augment:
                xb = augment_batch(xb, gen, flip=config.augment_flip)
            if perturb is not None:
                xb = perturb(model, xb, yb)
                model.train()
            if config.mixup > 0:
                lam, partner = _mixup_draw(config.mixup, len(idx), gen, device)
                xb = lam * xb + (1 - lam) * xb[partner]
            if device.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            with _autocast(device):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
                if config.mixup > 0:  # cross-entropy against the mixed one-hot targets
                    loss = lam * loss + (1 - lam) * F.cross_entropy(logits.float(), yb[partner])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        history.seconds.append(time.perf_counter() - t0)
        test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
        history.epoch.append(epoch)
        history.lr.append(config.lr_at(epoch))
        if config.exact_train_metrics:
            train_loss, train_acc = evaluate(model, x, y)
        else:
            train_loss, train_acc = loss_sum.item() / n, correct.item() / n
        history.train_loss.append(train_loss)
        history.train_acc.append(train_acc)
        history.test_loss.append(test_loss)
        history.test_acc.append(test_acc)
        if callback is not None:
            callback(epoch, model, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{history.train_acc[-1]:.3f}")
        done = config.stop_at_train_acc is not None and history.train_acc[-1] >= config.stop_at_train_acc
        if checkpoint is not None:
            checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "history": history.to_dict(), "epoch": config.epochs if done else epoch + 1})
        if done:
            break
    if bar is not None:
        bar.close()
    model.eval()
    return history


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
) -> tuple[nn.Module, History]:
    """Train once per (spec, config, device type) and reuse the result from the cache afterwards.

    `spec` names everything else the result depends on (model name and arguments, dataset and its
    randomization, perturbation); it is hashed with `config` into the cache key. An interrupted run
    resumes from its last epoch checkpoint. The model is returned in eval mode on the data's device.
    """
    cache = cache or Cache()
    device = data.x_train.device
    train_spec = asdict(config)
    if train_spec.get("mixup") == 0.0:  # options added later stay out of the key while off
        del train_spec["mixup"]
    full_spec = {"spec": dict(spec), "train": train_spec, "device": device.type, "format": 1}
    key = config_key(full_spec)
    model = build_model().to(device)
    with cache.lock("models", key):
        hit = cache.load("models", key, map_location=device)
        if hit is None:
            resume = cache.load_checkpoint("models", key, map_location=device)
            history = train(model, data, config, perturb=perturb, callback=callback, resume=resume,
                            checkpoint=lambda state: cache.save_checkpoint("models", key, state), progress=progress)
            hit = {"model": model.state_dict(), "history": history.to_dict()}
            cache.save("models", key, hit, full_spec)
            cache.clear_checkpoint("models", key)
    model.load_state_dict(hit["model"])
    model.eval()
    return model, History.from_dict(hit["history"])
