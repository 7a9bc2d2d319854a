"""Prototypical part networks: "This looks like that" (Chen, Li, Tao, Barnett, Su, Rudin, NeurIPS 2019,
arXiv:1806.10574). Shown in the chapter `protopnet`.

A ProtoPNet puts a head on a convolutional backbone f. Add-on 1x1 convolutions with a sigmoid map
the backbone's output to a latent grid z = f(x) of shape (D, h, w). Each of the m prototypes per
class, p_j of shape (D, 1, 1), is compared with every latent patch by the squared L2 distance

    d_j(x)[u, v] = ||z[:, u, v] - p_j||^2 = ||z[:, u, v]||^2 - 2 <z[:, u, v], p_j> + ||p_j||^2,

computed for all patches and prototypes at once (the expanded norm: one 1x1 convolution). The best
patch gives the similarity g_j(x) = log((min d_j + 1) / (min d_j + eps)), and the class scores are
a last linear layer without bias, h(x) = W g(x), initialised to +1 for a prototype's own class and
-0.5 for the others. Symbols: z -> `latent`, p -> `prototypes`, d -> `distances`, g -> `similarity`,
W -> `last_layer.weight`, m -> `ProtoConfig.prototypes_per_class`, D -> `ProtoConfig.prototype_dim`.

Training (cfchen-duke/ProtoPNet, settings.py and main.py): warm-up epochs train the add-on layers
and prototypes only; joint epochs train the backbone too; at the push epochs every prototype is
projected onto its nearest latent training patch of its own class, and then the last layer alone is
trained (20 passes in the paper) with cross-entropy and an L1 penalty on wrong-class connections.
The loss is CE + 0.8 cluster - 0.08 separation + 1e-4 L1 (the repository's coefficients).
"""
from __future__ import annotations

import io
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.cache import Cache, atomic_write_bytes, cache_root, config_key
from ..core.data import DatasetError, DatasetNotFound, ImageData, data_root
from ..core.data import load as _load_data
from ..core.train import _epoch_generator, augment_batch

__all__ = ["ProtoConfig", "ProtoPNet", "l2_distances", "log_similarity", "last_layer_init", "protopnet_loss",
           "backbone", "PushResult", "push_prototypes", "train_protopnet", "fit_cached", "Explanation", "explain",
           "nearest_patches", "activation_box", "source_patches", "plain_classifier", "load_cub200", "load_data", "accuracy"]

_TORCHVISION = ("vgg11", "vgg13", "vgg16", "vgg19", "resnet18_tv", "resnet34", "resnet50", "resnet101", "resnet152",
                "densenet121", "densenet161", "densenet169", "densenet201")


@dataclass(frozen=True)
class ProtoConfig:
    """Schedule and loss weights of ProtoPNet training; defaults from cfchen-duke/ProtoPNet settings.py."""

    prototypes_per_class: int = 10  # m: 2000 prototypes for 200 classes
    prototype_dim: int = 128  # D: prototype_shape (2000, 128, 1, 1)
    epochs: int = 11  # warm-up + joint epochs (the repository's default runs 1000)
    warm_epochs: int = 5  # num_warm_epochs
    push_epochs: tuple[int, ...] = (10,)  # 0-based epochs after which prototypes are pushed (every 10th from 10)
    last_layer_epochs: int = 20  # passes of last-layer-only training after each push
    batch_size: int = 80  # train_batch_size
    lr_features: float = 1e-4  # joint lr of the backbone (pretrained in the paper)
    lr_add_on: float = 3e-3  # joint and warm lr of the add-on layers
    lr_prototypes: float = 3e-3  # joint and warm lr of the prototypes
    lr_last_layer: float = 1e-4  # last-layer-only lr
    lr_step: int = 5  # StepLR step (joint epochs) with gamma 0.1
    weight_decay: float = 1e-3  # Adam weight decay on backbone and add-on layers (not prototypes)
    coef_cross_entropy: float = 1.0
    coef_cluster: float = 0.8
    coef_separation: float = -0.08
    coef_l1: float = 1e-4
    incorrect_strength: float = -0.5  # last-layer init for wrong-class connections
    epsilon: float = 1e-4  # in log((d + 1) / (d + eps))
    augment: bool = False  # random crop (pad 4) + flip, batched (genlens.core.train.augment_batch)
    seed: int = 0


# ----------------------------------------------------------------------------- primitives

def l2_distances(latent: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance of every latent patch to every prototype, by the expanded norm.

    Shapes: latent (N, D, h, w), prototypes (P, D, 1, 1) or (P, D) -> distances (N, P, h, w), >= 0.
    """
    if latent.ndim != 4:
        raise ValueError(f"latent must be (N, D, h, w), got shape {tuple(latent.shape)}")
    protos = prototypes.reshape(prototypes.shape[0], -1)  # (P, D)
    if protos.shape[1] != latent.shape[1]:
        raise ValueError(f"prototypes have dimension {protos.shape[1]} but latent has {latent.shape[1]} channels")
    z2 = (latent**2).sum(1, keepdim=True)  # (N, 1, h, w)
    zp = F.conv2d(latent, protos[:, :, None, None])  # (N, P, h, w)
    p2 = (protos**2).sum(1).view(1, -1, 1, 1)  # (1, P, 1, 1)
    return F.relu(z2 - 2 * zp + p2)


def log_similarity(distances: torch.Tensor, epsilon: float = 1e-4) -> torch.Tensor:
    """g = log((d + 1) / (d + eps)): large for a close patch, 0 as d grows. Any shape."""
    return torch.log((distances + 1) / (distances + epsilon))


def last_layer_init(prototype_class: torch.Tensor, num_classes: int, incorrect_strength: float = -0.5) -> torch.Tensor:
    """W (K, P): 1 where prototype p belongs to class k, `incorrect_strength` elsewhere."""
    own = F.one_hot(prototype_class, num_classes).T.float()  # (K, P)
    return own + incorrect_strength * (1 - own)


@dataclass(frozen=True)
class LossTerms:
    """Loss of one batch: total and its parts (cluster, separation: mean squared latent distances)."""

    total: torch.Tensor
    cross_entropy: torch.Tensor
    cluster: torch.Tensor
    separation: torch.Tensor
    l1: torch.Tensor


def protopnet_loss(logits: torch.Tensor, min_distances: torch.Tensor, y: torch.Tensor, prototype_class: torch.Tensor,
                   last_weight: torch.Tensor, config: ProtoConfig = ProtoConfig()) -> LossTerms:
    """CE + c_clst * cluster + c_sep * separation + c_l1 * ||W * (1 - own-class mask)||_1.

    cluster = mean over the batch of the smallest distance to a prototype of the image's class;
    separation = the same to prototypes of the other classes (its coefficient is negative).
    Shapes: logits (N, K), min_distances (N, P), y (N,), prototype_class (P,), last_weight (K, P).
    """
    own = prototype_class[None, :] == y[:, None]  # (N, P)
    inf = torch.full_like(min_distances, float("inf"))
    cluster = torch.where(own, min_distances, inf).min(1).values.mean()
    separation = torch.where(own, inf, min_distances).min(1).values.mean()
    wrong = 1 - F.one_hot(prototype_class, last_weight.shape[0]).T.to(last_weight.dtype)  # (K, P)
    l1 = (last_weight * wrong).abs().sum()
    ce = F.cross_entropy(logits, y)
    total = (config.coef_cross_entropy * ce + config.coef_cluster * cluster + config.coef_separation * separation
             + config.coef_l1 * l1)
    return LossTerms(total, ce, cluster, separation, l1)


# ----------------------------------------------------------------------------- backbones

def _pretrained_state(name: str) -> dict[str, torch.Tensor]:
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).IMAGENET1K_V1
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.exists():
        raise FileNotFoundError(f"pretrained {name}: missing weight file {path} (no download here; copy "
                                f"{weights.url} there, or set TORCH_HOME)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}


def backbone(name: str, in_channels: int = 3, *, pretrained: bool = False, width: int | None = None) -> tuple[nn.Module, int]:
    """(convolutional feature extractor, its output channels) for ProtoPNet.

    genlens backbones trained from scratch: "cnn" (SmallCNN without its pooling head; 28x28 -> 7x7),
    "resnet18" (CIFAR ResNet-18 without pooling; 32x32 -> 4x4). torchvision ImageNet backbones as
    in the paper ("vgg19", "resnet34", "densenet121", ...; 224x224 -> 7x7), with `weights=None`, or
    with the ImageNet weights read from torch's hub cache when `pretrained` (never downloaded).
    """
    from ..core import models

    if name == "cnn":
        net = models.SmallCNN(in_channels, width=width or 32)
        return nn.Sequential(*list(net.features)[:-2]), 4 * (width or 32)
    if name == "resnet18":
        net = models.ResNet18(in_channels, width=width or 64)
        return nn.Sequential(net.conv1, net.bn1, nn.ReLU(inplace=True), net.layers), 8 * (width or 64)
    if name not in _TORCHVISION:
        raise ValueError(f"backbone must be one of cnn, resnet18, {', '.join(_TORCHVISION)}; got {name!r}")
    import torchvision

    tv_name = name.removesuffix("_tv")
    net = torchvision.models.get_model(tv_name, weights=None)
    if pretrained:
        net.load_state_dict(_pretrained_state(tv_name))
    if in_channels != 3:
        raise ValueError(f"torchvision backbone {name!r} needs in_channels=3, got {in_channels}")
    if tv_name.startswith("vgg"):
        feats = net.features
        channels = [m for m in feats.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    elif tv_name.startswith("resnet"):
        feats = nn.Sequential(*list(net.children())[:-2])
        channels = net.fc.in_features
    else:  # densenet: features end in norm5; the classifier applies the ReLU
        feats = nn.Sequential(net.features, nn.ReLU(inplace=True))
        channels = net.classifier.in_features
    return feats, channels


# ----------------------------------------------------------------------------- the model

class ProtoPNet(nn.Module):
    """Backbone -> add-on (1x1 conv, ReLU, 1x1 conv, sigmoid) -> prototype layer -> last layer.

    `forward(x)` returns logits (N, K); `forward_all(x)` returns (logits (N, K), min distances (N, P),
    distances (N, P, h, w)). Prototypes of class k are rows k*m ... (k+1)*m - 1.
    """

    def __init__(self, features: nn.Module, feature_channels: int, num_classes: int, *, prototypes_per_class: int = 10,
                 prototype_dim: int = 128, incorrect_strength: float = -0.5, epsilon: float = 1e-4,
                 generator: torch.Generator | None = None):
        super().__init__()
        if prototypes_per_class < 1 or num_classes < 2:
            raise ValueError(f"need prototypes_per_class >= 1 and num_classes >= 2, got "
                             f"{prototypes_per_class} and {num_classes}")
        P, D = prototypes_per_class * num_classes, prototype_dim
        self.num_classes, self.epsilon = num_classes, epsilon
        self.features = features
        self.add_on = nn.Sequential(nn.Conv2d(feature_channels, D, 1), nn.ReLU(), nn.Conv2d(D, D, 1), nn.Sigmoid())
        for m in self.add_on:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.prototypes = nn.Parameter(torch.rand(P, D, 1, 1, generator=generator))  # uniform [0, 1), as the repo
        self.register_buffer("prototype_class", torch.arange(num_classes).repeat_interleave(prototypes_per_class))
        self.last_layer = nn.Linear(P, num_classes, bias=False)
        with torch.no_grad():
            self.last_layer.weight.copy_(last_layer_init(self.prototype_class, num_classes, incorrect_strength))

    @property
    def num_prototypes(self) -> int:
        return self.prototypes.shape[0]

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """z = add_on(f(x)): (N, C, H, W) -> (N, D, h, w) in float32, values in (0, 1)."""
        return self.add_on(self.features(x)).float()

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, h, w) squared distances, computed in float32 outside autocast."""
        z = self.latent(x)
        with torch.autocast(z.device.type, enabled=False):
            return l2_distances(z, self.prototypes.float())

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.distances(x)  # (N, P, h, w)
        min_d = d.flatten(2).min(2).values  # (N, P)
        with torch.autocast(d.device.type, enabled=False):
            logits = self.last_layer(log_similarity(min_d, self.epsilon))
        return logits, min_d, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def build(backbone_name: str, image_shape: tuple[int, int, int], num_classes: int, config: ProtoConfig = ProtoConfig(),
          *, pretrained: bool = False, width: int | None = None) -> ProtoPNet:
    """A ProtoPNet on `backbone(backbone_name)` for images (C, H, W); prototypes drawn from `config.seed`."""
    feats, channels = backbone(backbone_name, image_shape[0], pretrained=pretrained, width=width)
    return ProtoPNet(feats, channels, num_classes, prototypes_per_class=config.prototypes_per_class,
                     prototype_dim=config.prototype_dim, incorrect_strength=config.incorrect_strength,
                     epsilon=config.epsilon, generator=torch.Generator().manual_seed(config.seed))


def plain_classifier(backbone_name: str, image_shape: tuple[int, int, int], num_classes: int, *,
                     pretrained: bool = False, width: int | None = None) -> nn.Sequential:
    """The same backbone as a black-box classifier: features -> global average pool -> linear.

    For "cnn" this is exactly `genlens.core.models.SmallCNN`; the paper's baselines are the torchvision
    networks with a new last layer.
    """
    feats, channels = backbone(backbone_name, image_shape[0], pretrained=pretrained, width=width)
    return nn.Sequential(feats, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


# ----------------------------------------------------------------------------- push

@dataclass(frozen=True)
class PushResult:
    """Where each prototype came from: image_index (P,) into the push set, patch (P, 2) latent (row,
    col), distance (P,) from the old prototype to its new value, seconds spent."""

    image_index: torch.Tensor
    patch: torch.Tensor
    distance: torch.Tensor
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"image_index": self.image_index, "patch": self.patch, "distance": self.distance, "seconds": self.seconds}


def _check_xy(x: torch.Tensor, y: torch.Tensor, model: nn.Module) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise TypeError(f"x must be an (N, C, H, W) tensor, got {type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    dev = next(model.parameters()).device
    if x.device != dev or y.device != dev:
        raise ValueError(f"model is on {dev} but x, y are on {x.device}, {y.device}")


@torch.no_grad()
def push_prototypes(model: ProtoPNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500) -> PushResult:
    """Project each prototype onto its nearest latent patch among training images of its own class.

    One batched pass: for every batch, distances (B, P, h, w) are masked to images of each
    prototype's class and reduced to the best (image, row, col) per prototype; the running best is
    kept on the device. The prototypes are then replaced in place. Runs in eval mode (restored).
    """
    _check_xy(x, y, model)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    P = model.num_prototypes
    best = torch.full((P,), float("inf"), device=x.device)
    best_index = torch.zeros(P, dtype=torch.long, device=x.device)
    best_flat = torch.zeros(P, dtype=torch.long, device=x.device)
    best_latent = torch.zeros_like(model.prototypes.reshape(P, -1))  # (P, D)
    for i in range(0, len(x), batch_size):
        z = model.latent(x[i : i + batch_size])  # (B, D, h, w)
        B, D, h, w = z.shape
        d = l2_distances(z, model.prototypes.float())  # (B, P, h, w)
        own = (y[i : i + batch_size, None] == model.prototype_class[None, :])  # (B, P)
        d = torch.where(own[:, :, None, None], d, torch.full_like(d, float("inf")))
        d = d.permute(1, 0, 2, 3).reshape(P, -1)  # (P, B*h*w)
        value, where = d.min(1)
        better = value < best
        img, flat = where // (h * w), where % (h * w)
        latents = z.permute(0, 2, 3, 1).reshape(B, h * w, D)[img, flat]  # (P, D)
        best = torch.where(better, value, best)
        best_index = torch.where(better, img + i, best_index)
        best_flat = torch.where(better, flat, best_flat)
        best_latent = torch.where(better[:, None], latents, best_latent)
    if torch.isinf(best).any():
        missing = sorted(set(model.prototype_class[torch.isinf(best)].tolist()))
        raise ValueError(f"y has no image of class(es) {missing}: their prototypes cannot be pushed")
    model.prototypes.data.copy_(best_latent.view_as(model.prototypes))
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    model.train(was_training)
    patch = torch.stack([best_flat // w, best_flat % w], 1)
    return PushResult(best_index, patch, best, time.perf_counter() - start)


# ----------------------------------------------------------------------------- training

@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction) in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=x.device)
    for i in range(0, len(x), batch_size):
        with _autocast(x.device):
            correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return correct.item() / max(len(x), 1)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


@torch.no_grad()
def _similarities(model: ProtoPNet, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch_size):
        with _autocast(x.device):
            out.append(log_similarity(model.forward_all(x[i : i + batch_size])[1], model.epsilon))
    return torch.cat(out)  # (N, P)


def _set_trainable(model: ProtoPNet, phase: str) -> None:
    for p in model.features.parameters():
        p.requires_grad_(phase == "joint")
    for p in model.add_on.parameters():
        p.requires_grad_(phase in ("warm", "joint"))
    model.prototypes.requires_grad_(phase in ("warm", "joint"))
    model.last_layer.weight.requires_grad_(phase == "last")


def train_protopnet(model: ProtoPNet, data: ImageData, config: ProtoConfig = ProtoConfig(), *,
                    progress: bool = False) -> tuple[dict[str, list], list[PushResult]]:
    """Train in the repository's phases; return (history, one PushResult per push).

    history: per step of the schedule, "phase" (warm, joint, push, last), "epoch", "train_loss",
    "cross_entropy", "cluster", "separation" (batch means, NaN where not trained), "test_acc".
    Batches come from a permutation seeded by (seed, epoch). Last-layer passes run with the frozen
    network in eval mode, so the similarities are computed once per push. Ends in eval mode.
    """
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    _check_xy(x, y, model)
    if x.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    wd = config.weight_decay
    warm = torch.optim.Adam([{"params": model.add_on.parameters(), "lr": config.lr_add_on, "weight_decay": wd},
                             {"params": [model.prototypes], "lr": config.lr_prototypes}])
    joint = torch.optim.Adam([{"params": model.features.parameters(), "lr": config.lr_features, "weight_decay": wd},
                              {"params": model.add_on.parameters(), "lr": config.lr_add_on, "weight_decay": wd},
                              {"params": [model.prototypes], "lr": config.lr_prototypes}])
    joint_lrs = [group["lr"] for group in joint.param_groups]
    last = torch.optim.Adam([model.last_layer.weight], lr=config.lr_last_layer)
    hist: dict[str, list] = {k: [] for k in ("phase", "epoch", "train_loss", "cross_entropy", "cluster",
                                             "separation", "test_acc")}
    pushes: list[PushResult] = []
    nan = float("nan")

    def log(phase, epoch, sums=None, n=1, test_acc=None):
        sums = sums if sums is not None else {}
        hist["phase"].append(phase)
        hist["epoch"].append(epoch)
        for k in ("train_loss", "cross_entropy", "cluster", "separation"):
            hist[k].append(sums[k] / n if k in sums else nan)
        hist["test_acc"].append(accuracy(model, x_test, y_test) if test_acc is None else test_acc)

    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="protopnet")
    for epoch in epochs:
        phase = "warm" if epoch < config.warm_epochs else "joint"
        _set_trainable(model, phase)
        if phase == "joint":  # StepLR(step, 0.1) stepped before each joint epoch, as in the repository's main.py
            decay = 0.1 ** ((epoch - config.warm_epochs + 1) // config.lr_step)
            for group, lr in zip(joint.param_groups, joint_lrs):
                group["lr"] = lr * decay
        opt = warm if phase == "warm" else joint
        model.train()
        g = _epoch_generator(config.seed, epoch)
        order = torch.randperm(len(x), generator=g).to(x.device)
        sums = {k: torch.zeros((), device=x.device) for k in ("train_loss", "cross_entropy", "cluster", "separation")}
        n = 0
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            xb, yb = x[idx], y[idx]
            if config.augment:
                xb = augment_batch(xb, g)
            with _autocast(x.device):
                logits, min_d, _ = model.forward_all(xb)
            terms = protopnet_loss(logits.float(), min_d, yb, model.prototype_class, model.last_layer.weight, config)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()
            for k, v in (("train_loss", terms.total), ("cross_entropy", terms.cross_entropy),
                         ("cluster", terms.cluster), ("separation", terms.separation)):
                sums[k] += v.detach()
            n += 1
        log(phase, epoch, {k: v.item() for k, v in sums.items()}, n)
        if epoch in config.push_epochs:
            pushes.append(push_prototypes(model, x, y))
            log("push", epoch)
            _train_last_layer(model, data, config, last, epoch, log)
    _set_trainable(model, "none")
    model.eval()
    return hist, pushes


def _train_last_layer(model: ProtoPNet, data: ImageData, config: ProtoConfig, opt, epoch: int, log) -> None:
    model.eval()
    x, y = data.x_train, data.y_train
    sim = _similarities(model, x, 1000)  # (N, P): the network below the last layer is frozen
    sim_test = _similarities(model, data.x_test, 1000)
    _set_trainable(model, "last")
    wrong = 1 - F.one_hot(model.prototype_class, model.num_classes).T.float()  # (K, P)
    for k in range(config.last_layer_epochs):
        g = _epoch_generator(config.seed, 10_000 + 100 * epoch + k)
        order = torch.randperm(len(x), generator=g).to(x.device)
        total, n = torch.zeros((), device=x.device), 0
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            ce = F.cross_entropy(model.last_layer(sim[idx]), y[idx])
            loss = config.coef_cross_entropy * ce + config.coef_l1 * (model.last_layer.weight * wrong).abs().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += ce.detach()
            n += 1
        with torch.no_grad():
            acc = (model.last_layer(sim_test).argmax(1) == data.y_test).float().mean().item()
        log("last", epoch, {"cross_entropy": total.item(), "train_loss": total.item()}, n, test_acc=acc)
    _set_trainable(model, "none")


def fit_cached(build_model, data: ImageData, config: ProtoConfig, *, spec: dict[str, Any], cache: Cache | None = None,
               progress: bool = False) -> tuple[ProtoPNet, dict[str, list], list[PushResult]]:
    """`train_protopnet` once per (spec, config, device type); later calls load the stored result.

    The model comes back in eval mode with every parameter frozen (requires_grad False).
    """
    cache = cache or Cache()
    device = data.x_train.device
    full = {"spec": dict(spec), "config": asdict(config), "device": device.type, "kind": "protopnet", "format": 1}
    model = build_model().to(device)

    def compute():
        hist, pushes = train_protopnet(model, data, config, progress=progress)
        return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist,
                "pushes": [{k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in p.to_dict().items()}
                           for p in pushes]}

    hit = cache.get_or_compute("protopnet", full, compute, map_location=device)
    model.load_state_dict(hit["model"])
    model.eval().requires_grad_(False)
    return model, hit["history"], [PushResult(**p) for p in hit["pushes"]]


# ----------------------------------------------------------------------------- explanations

@dataclass(frozen=True)
class Explanation:
    """Why a ProtoPNet classified x as it did.

    logits (N, K); similarity (N, P) = g_p(x); similarity_maps (N, P, h, w) = log-similarity of every
    patch; patch (N, P, 2) the (row, col) of each prototype's best patch; points (N, K, P) =
    W[k, p] * g_p(x), so that logits[n, k] = points[n, k].sum().
    """

    logits: torch.Tensor
    similarity: torch.Tensor
    similarity_maps: torch.Tensor
    patch: torch.Tensor
    points: torch.Tensor

    def top(self, n: int, k: int, count: int = 3) -> torch.Tensor:
        """Indices of the `count` prototypes that add the most points to class k for image n."""
        return self.points[n, k].topk(count).indices

    def upsampled(self, n: int, p: int, size: tuple[int, int]) -> torch.Tensor:
        """Similarity map of prototype p on image n, bilinearly upsampled to the image (H, W)."""
        return F.interpolate(self.similarity_maps[n, p][None, None], size=size, mode="bilinear",
                             align_corners=False)[0, 0]


@torch.no_grad()
def explain(model: ProtoPNet, x: torch.Tensor) -> Explanation:
    """Similarities, best patches and per-prototype points for a batch x (N, C, H, W), in eval mode."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise TypeError(f"x must be an (N, C, H, W) tensor, got {type(x).__name__}")
    was_training = model.training
    model.eval()
    logits, min_d, d = model.forward_all(x)
    model.train(was_training)
    N, P, h, w = d.shape
    flat = d.flatten(2).argmin(2)  # (N, P)
    sim = log_similarity(min_d, model.epsilon)
    points = model.last_layer.weight[None] * sim[:, None, :]  # (N, K, P)
    return Explanation(logits, sim, log_similarity(d, model.epsilon), torch.stack([flat // w, flat % w], -1), points)


@torch.no_grad()
def nearest_patches(model: ProtoPNet, x: torch.Tensor, *, k: int = 5, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """For each prototype, the k images of x whose closest patch is nearest to it (one patch per image).

    Returns (indices (P, k) into x, distances (P, k)), nearest first; batched on x's device.
    """
    if k < 1 or k > len(x):
        raise ValueError(f"k must be in 1..{len(x)}, got {k}")
    was_training = model.training
    model.eval()
    mins = torch.cat([model.distances(x[i : i + batch_size]).flatten(2).min(2).values
                      for i in range(0, len(x), batch_size)])  # (N, P)
    model.train(was_training)
    dist, idx = mins.T.topk(k, dim=1, largest=False)
    return idx, dist


@torch.no_grad()
def source_patches(model: ProtoPNet, x: torch.Tensor, image_index: torch.Tensor, *, percentile: float = 95.0
                   ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int, int]]]:
    """Each prototype's source image, its upsampled similarity map there and the box of its patch.

    image_index (P,) from `PushResult`; returns images (P, C, H, W), heat (P, H, W) and P boxes
    (top, bottom, left, right) of the pixels at or above `percentile` of the map (the repository's
    95th-percentile crop).
    """
    e = explain(model, x[image_index])
    P, (H, W) = len(image_index), x.shape[-2:]
    heat = torch.stack([e.upsampled(j, j, (H, W)) for j in range(P)])
    return x[image_index], heat, [activation_box(h, percentile) for h in heat]


def activation_box(heat: torch.Tensor, percentile: float = 95.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the pixels of `heat` (H, W) at or above `percentile`."""
    if heat.ndim != 2 or not 0 <= percentile <= 100:
        raise ValueError(f"heat must be (H, W) and percentile in [0, 100], got {tuple(heat.shape)}, {percentile}")
    mask = heat >= torch.quantile(heat.float().flatten(), percentile / 100)
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


# ----------------------------------------------------------------------------- CUB-200-2011

_CUB_FILES = ("images.txt", "train_test_split.txt", "bounding_boxes.txt", "image_class_labels.txt", "classes.txt")


def _cub_table(path: Path) -> dict[int, list[str]]:
    return {int(parts[0]): parts[1:] for parts in (line.split() for line in path.read_text().splitlines()) if parts}


def load_cub200(root: str | Path | None = None, *, size: int = 224, device: str | torch.device = "cpu") -> ImageData:
    """CUB-200-2011 cropped to its bounding boxes and resized to size x size, split by train_test_split.txt.

    `root` is the CUB_200_2011 folder (default $GENLENS_DATA/CUB_200_2011) with images.txt,
    train_test_split.txt, bounding_boxes.txt, image_class_labels.txt, classes.txt and images/. The
    decoded uint8 tensors are cached under the genlens cache.
    """
    from PIL import Image

    root = Path(root).expanduser() if root else data_root() / "CUB_200_2011"
    missing = [f for f in _CUB_FILES if not (root / f).is_file()] + ([] if (root / "images").is_dir() else ["images/"])
    if missing:
        raise DatasetNotFound(f"cub200: missing {', '.join(missing)} under {root} (the CUB_200_2011 folder)")
    key = config_key({"cub": str(root.resolve()), "size": size, "stat": (root / "images.txt").stat().st_mtime_ns})
    cache = cache_root() / "datasets" / f"cub200-{key[:24]}.pt"
    if cache.exists():
        obj = torch.load(cache, map_location="cpu", weights_only=True)
    else:
        images, split = _cub_table(root / "images.txt"), _cub_table(root / "train_test_split.txt")
        boxes, labels = _cub_table(root / "bounding_boxes.txt"), _cub_table(root / "image_class_labels.txt")
        classes = [v[0] for _, v in sorted(_cub_table(root / "classes.txt").items())]
        obj = {"classes": classes}
        for name, flag in (("train", "1"), ("test", "0")):
            ids = [i for i in sorted(images) if split[i][0] == flag]
            xs = np.empty((len(ids), size, size, 3), np.uint8)
            for j, i in enumerate(ids):
                left, top, w, h = (float(v) for v in boxes[i])
                try:
                    with Image.open(root / "images" / images[i][0]) as im:
                        crop = im.convert("RGB").crop((int(left), int(top), int(left + w), int(top + h)))
                        xs[j] = np.asarray(crop.resize((size, size), Image.BILINEAR))
                except OSError as exc:
                    raise DatasetError(f"cub200: cannot read images/{images[i][0]} ({exc})") from exc
            obj[f"x_{name}"] = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
            obj[f"y_{name}"] = torch.tensor([int(labels[i][0]) - 1 for i in ids], dtype=torch.int64)
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        atomic_write_bytes(cache, buffer.getvalue())
    f = lambda t: t.to(device).float().div_(255)  # noqa: E731
    return ImageData(f"cub200[{size}]", f(obj["x_train"]), obj["y_train"].to(device), f(obj["x_test"]),
                     obj["y_test"].to(device), tuple(obj["classes"]))


def load_data(name: str, device: str | torch.device = "cpu") -> ImageData:
    """`genlens.core.data.load(name)`, plus "cub200" and "cub200:<CUB_200_2011 folder>"."""
    if name == "cub200" or name.startswith("cub200:"):
        return load_cub200(name.partition(":")[2] or None, device=device)
    return _load_data(name, device)
