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

Training (cfchen-duke/ProtoPNet, settings.py and main.py) runs on the one loop of
`genlens.core.train` as a sequence of phases (`schedule`): warm-up epochs train the add-on layers
and prototypes only; joint epochs train the backbone too; at the push epochs every prototype is
projected onto its nearest latent training patch of its own class, and then the last layer alone is
trained (20 passes in the paper) with cross-entropy and an L1 penalty on wrong-class connections.
The loss is CE + 0.8 cluster - 0.08 separation + 1e-4 L1 (the repository's coefficients).
"""
from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.cache import Cache
from ..core.models import backbone
from ..core.nn import check_model, check_pair, check_tensor, eval_mode, model_device
from ..core.train import History, Phase, TrainConfig, evaluate, predict, train_cached

__all__ = ["ProtoConfig", "ProtoPNet", "build", "l2_distances", "log_similarity", "last_layer_init", "wrong_class_mask",
           "protopnet_loss", "PushResult", "push_prototypes", "schedule", "fit", "pushes", "Explanation", "explain",
           "nearest_patches", "nearest_prototypes", "last_layer_gradient", "SourcePatches", "source_patches",
           "activation_box", "activation_boxes"]


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
    check_tensor(latent, "latent", ndim=4)
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


def wrong_class_mask(prototype_class: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, P) float: 1 where prototype p does not belong to class k (the connections the L1 term penalizes)."""
    return 1 - F.one_hot(prototype_class, num_classes).T.float()


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
    l1 = (last_weight * wrong_class_mask(prototype_class, last_weight.shape[0])).abs().sum()
    ce = F.cross_entropy(logits, y)
    total = (config.coef_cross_entropy * ce + config.coef_cluster * cluster + config.coef_separation * separation
             + config.coef_l1 * l1)
    return LossTerms(total, ce, cluster, separation, l1)


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
    """A ProtoPNet on `genlens.core.models.backbone(backbone_name)` for images (C, H, W); prototypes drawn
    from `config.seed`."""
    feats, channels = backbone(backbone_name, image_shape[0], pretrained=pretrained, width=width)
    return ProtoPNet(feats, channels, num_classes, prototypes_per_class=config.prototypes_per_class,
                     prototype_dim=config.prototype_dim, incorrect_strength=config.incorrect_strength,
                     epsilon=config.epsilon, generator=torch.Generator().manual_seed(config.seed))


# ----------------------------------------------------------------------------- push

@dataclass(frozen=True)
class PushResult:
    """Where each prototype came from: image_index (P,) into the push set, patch (P, 2) latent (row,
    col), distance (P,) from the old prototype to its new value, seconds spent. Read back from a
    training `History` (`pushes`), also: epoch, the index of the epoch after which it ran, and the
    test accuracy just before it, just after it and after the last-layer passes that followed."""

    image_index: torch.Tensor
    patch: torch.Tensor
    distance: torch.Tensor
    seconds: float
    epoch: int = -1
    test_acc_before: float = float("nan")
    test_acc_after: float = float("nan")
    test_acc_after_last_layer: float = float("nan")


@torch.no_grad()
def push_prototypes(model: ProtoPNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500) -> PushResult:
    """Project each prototype onto its nearest latent patch among training images of its own class.

    One batched pass: for every batch, distances (B, P, h, w) are masked to images of each
    prototype's class and reduced to the best (image, row, col) per prototype; the running best is
    kept on the device. The prototypes are then replaced in place. Runs in eval mode (restored).
    """
    x, y = check_pair(model, (x, y), "(x, y)")
    check_tensor(x, "x", ndim=4)
    start = time.perf_counter()
    P = model.num_prototypes
    best = torch.full((P,), float("inf"), device=x.device)
    best_index = torch.zeros(P, dtype=torch.long, device=x.device)
    best_flat = torch.zeros(P, dtype=torch.long, device=x.device)
    best_latent = torch.zeros_like(model.prototypes.reshape(P, -1))  # (P, D)
    with eval_mode(model):
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
    patch = torch.stack([best_flat // w, best_flat % w], 1)
    return PushResult(best_index, patch, best, time.perf_counter() - start)


# ----------------------------------------------------------------------------- training (on genlens.core.train)

def _wrong_class_abs(weight: torch.Tensor) -> torch.Tensor:
    """Mean |W[k, p]| over the wrong-class connections of a last layer (K, P) whose class k owns rows k*m ... (k+1)*m - 1."""
    K, P = weight.shape
    W = weight.detach().abs()
    own = W.view(K, K, P // K).diagonal(dim1=0, dim2=1)  # (m, K)
    return (W.sum() - own.sum()) / (K * P - P)


def _objective(model: ProtoPNet, x: torch.Tensor, y: torch.Tensor, *, config: ProtoConfig):
    """Warm-up and joint epochs: `protopnet_loss`, with its terms as the epoch's parts."""
    logits, min_d, _ = model.forward_all(x)
    t = protopnet_loss(logits.float(), min_d, y, model.prototype_class, model.last_layer.weight, config)
    return t.total, logits, {"cross_entropy": t.cross_entropy, "cluster": t.cluster, "separation": t.separation,
                             "wrong_class_abs": _wrong_class_abs(model.last_layer.weight)}


def _last_layer_objective(layer: nn.Linear, s: torch.Tensor, y: torch.Tensor, *, config: ProtoConfig):
    """Last-layer passes on similarities s (B, P): CE + c_l1 * L1 of the wrong-class weights, in float32.

    Its parts include `wrong_class_abs`, the mean |W| of the wrong-class connections (before each step,
    averaged over the pass), which the L1 term is meant to drive towards zero."""
    K, P = layer.weight.shape
    with torch.autocast(s.device.type, enabled=False):
        logits = layer(s.float())
    ce = F.cross_entropy(logits, y)
    W = layer.weight.abs()
    own = W.view(K, K, P // K).diagonal(dim1=0, dim2=1)  # (m, K): class k's own prototypes are rows k*m ... (k+1)*m - 1
    nan = ce.detach().new_full((), float("nan"))
    return (config.coef_cross_entropy * ce + config.coef_l1 * (W.sum() - own.sum()), logits,
            {"cross_entropy": ce, "cluster": nan, "separation": nan, "wrong_class_abs": _wrong_class_abs(layer.weight)})


def _groups(model: ProtoPNet, *, joint: bool, config: ProtoConfig) -> list[dict]:
    wd = config.weight_decay
    features = [{"params": list(model.features.parameters()), "lr": config.lr_features, "weight_decay": wd}]
    return (features if joint else []) + [
        {"params": list(model.add_on.parameters()), "lr": config.lr_add_on, "weight_decay": wd},
        {"params": [model.prototypes], "lr": config.lr_prototypes, "weight_decay": 0.0}]


def _similarity(model: ProtoPNet, x: torch.Tensor) -> torch.Tensor:
    return log_similarity(model.forward_all(x)[1], model.epsilon)  # (B, P)


def _last_layer(model: ProtoPNet) -> nn.Module:
    return model.last_layer


def _push(model: ProtoPNet, data: Any, history: History) -> None:
    """After a push epoch: push, and record where each prototype came from and the test accuracy."""
    res = push_prototypes(model, data.x_train, data.y_train)
    history.extra.setdefault("push", []).append({
        "epoch": len(history.epoch) - 1, "test_acc": evaluate(model, data.x_test, data.y_test)[1],
        "seconds": res.seconds, "image_index": res.image_index.cpu(), "patch": res.patch.cpu(),
        "distance": res.distance.cpu()})


def schedule(config: ProtoConfig) -> list[Phase]:
    """The repository's training schedule as phases of `genlens.core.train.train`.

    Warm-up epochs ("warm": add-on layers and prototypes), joint epochs ("joint": the backbone too,
    StepLR(lr_step, 0.1) over the joint epochs), and after each push epoch the push and
    `last_layer_epochs` passes of the last layer alone ("last") on the similarities of the frozen
    network in eval mode (computed once per push). Adam throughout; each phase keeps its optimizer's
    state across pushes, as the repository's main.py does.
    """
    objective = functools.partial(_objective, config=config)
    base = TrainConfig(batch_size=config.batch_size, optimizer="adam", lr=config.lr_add_on, augment=config.augment)
    n_joint = max(config.epochs - config.warm_epochs, 0)
    joint = replace(base, schedule="step", lr_steps=tuple(range(config.lr_step - 1, n_joint, config.lr_step)))
    last = Phase("last", TrainConfig(epochs=config.last_layer_epochs, batch_size=config.batch_size, optimizer="adam",
                                     lr=config.lr_last_layer), module=_last_layer, inputs=_similarity,
                 objective=functools.partial(_last_layer_objective, config=config))
    phases, begin = [], 0
    for e in range(config.epochs):
        pushed, is_joint = e in config.push_epochs, e >= config.warm_epochs
        if pushed or e + 1 in (config.warm_epochs, config.epochs):
            phases.append(Phase("joint" if is_joint else "warm", replace(joint if is_joint else base, epochs=e + 1 - begin),
                                groups=functools.partial(_groups, joint=is_joint, config=config), objective=objective,
                                after=_push if pushed else None))
            if pushed and config.last_layer_epochs:
                phases.append(last)
            begin = e + 1
    return phases


def pushes(history: History) -> list[PushResult]:
    """The pushes recorded in a training history, each with the test accuracy around it."""
    out = []
    for rec in history.extra.get("push", []):
        i = end = rec["epoch"]
        while end + 1 < len(history.phase) and history.phase[end + 1] == "last":
            end += 1
        out.append(PushResult(rec["image_index"], rec["patch"], rec["distance"], rec["seconds"], i,
                              history.test_acc[i], rec["test_acc"], history.test_acc[end] if end > i else rec["test_acc"]))
    return out


def fit(build_model: Callable[[], ProtoPNet], data: Any, config: ProtoConfig, *, spec: dict[str, Any],
        cache: Cache | None = None, progress: bool = False) -> tuple[ProtoPNet, History, list[PushResult]]:
    """Train in the repository's phases (`schedule`) with `genlens.core.train.train_cached`: once per
    (spec, config, device type); later calls load the stored result.

    Returns (model in eval mode with every parameter frozen, History with each epoch's phase, the
    loss terms in `extra` and the test accuracy, the pushes).
    """
    model, history = train_cached(build_model, data, TrainConfig(seed=config.seed), spec={**spec, "protopnet": asdict(config)},
                                  cache=cache, progress=progress, phases=schedule(config))
    model.requires_grad_(False)
    return model, history, pushes(history)


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
        return _upsample(self.similarity_maps[n, p][None], size)[0]


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of maps (N, h, w) to (N, H, W)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def explain(model: ProtoPNet, x: torch.Tensor) -> Explanation:
    """Similarities, best patches and per-prototype points for a batch x (N, C, H, W), in eval mode."""
    check_model(model)
    check_tensor(x, "x", ndim=4, device=model_device(model))
    with eval_mode(model):
        logits, min_d, d = model.forward_all(x)
    N, P, h, w = d.shape
    flat = d.flatten(2).argmin(2)  # (N, P)
    sim = log_similarity(min_d, model.epsilon)
    points = model.last_layer.weight[None] * sim[:, None, :]  # (N, K, P)
    return Explanation(logits, sim, log_similarity(d, model.epsilon), torch.stack([flat // w, flat % w], -1), points)


def _min_distances(model: ProtoPNet, x: torch.Tensor) -> torch.Tensor:
    return model.distances(x).flatten(2).min(2).values  # (B, P)


@torch.no_grad()
def nearest_patches(model: ProtoPNet, x: torch.Tensor, *, k: int = 5, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """For each prototype, the k images of x whose closest patch is nearest to it (one patch per image).

    Returns (indices (P, k) into x, distances (P, k)), nearest first; batched on x's device.
    """
    check_model(model)
    check_tensor(x, "x", ndim=4, device=model_device(model))
    if k < 1 or k > len(x):
        raise ValueError(f"k must be in 1..{len(x)}, got {k}")
    mins = predict(model, x, batch_size, forward=_min_distances, mixed_precision=False)  # (N, P)
    dist, idx = mins.T.topk(k, dim=1, largest=False)
    return idx, dist


@torch.no_grad()
def nearest_prototypes(model: ProtoPNet, x: torch.Tensor, *, k: int = 3,
                       batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image of x, the k prototypes that come nearest to any of its patches ("this looks like that"
    from the image's side; the paper's Figure 3 lists them with their points).

    Returns (prototype indices (N, k), squared latent distances (N, k)), nearest first; batched on x's device.
    """
    check_model(model)
    check_tensor(x, "x", ndim=4, device=model_device(model))
    if k < 1 or k > model.num_prototypes:
        raise ValueError(f"k must be in 1..{model.num_prototypes}, got {k}")
    mins = predict(model, x, batch_size, forward=_min_distances, mixed_precision=False)  # (N, P)
    dist, idx = mins.topk(k, dim=1, largest=False)
    return idx, dist


@torch.no_grad()
def last_layer_gradient(model: ProtoPNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Gradient of the mean cross-entropy over (x, y) with respect to the last layer's weight, (K, P).

    In closed form, (softmax(h) - onehot(y))^T g / N on the similarities g (N, P) of the frozen network
    in eval mode. A wrong-class weight can rest at zero under the L1 term c_l1 * |w| only where this
    gradient is at most c_l1 in magnitude (the subgradient condition), so comparing it with c_l1 says
    how hard cross-entropy pulls the wrong-class connections away from zero.
    """
    x, y = check_pair(model, (x, y), "(x, y)")
    check_tensor(x, "x", ndim=4)
    s = predict(model, x, batch_size, forward=_similarity, mixed_precision=False)  # (N, P)
    logits = s @ model.last_layer.weight.float().T  # (N, K)
    residual = logits.softmax(1) - F.one_hot(y, logits.shape[1]).float()  # (N, K)
    return residual.T @ s / len(s)


@dataclass(frozen=True)
class SourcePatches:
    """Each prototype's source image and the patch it stands for, after a push.

    images (P, C, H, W); distance (P,) squared latent distance from each prototype to its recorded
    source patch (0 right after the push); similarity (P,) = log((distance + 1) / (distance + eps));
    heat (P, H, W) the prototype's log-similarity map on its source image, upsampled; boxes (P, 4)
    (top, bottom, left, right), inclusive, of the pixels at or above the map's percentile.
    """

    images: torch.Tensor
    distance: torch.Tensor
    similarity: torch.Tensor
    heat: torch.Tensor
    boxes: torch.Tensor


@torch.no_grad()
def source_patches(model: ProtoPNet, x: torch.Tensor, push: PushResult, *, percentile: float = 95.0,
                   batch_size: int = 500) -> SourcePatches:
    """Each prototype on its own source image only (P maps, not P x P), from the push set x (N, C, H, W).

    The box is the repository's 95th-percentile crop of the upsampled similarity map.
    """
    check_model(model)
    check_tensor(x, "x", ndim=4, device=model_device(model))
    images = x[push.image_index.to(x.device)]
    z = predict(model, images, batch_size, forward=ProtoPNet.latent, mixed_precision=False)  # (P, D, h, w)
    d = ((z - model.prototypes.float()) ** 2).sum(1)  # (P, h, w): prototype j against its own source image
    rows = torch.arange(len(d), device=d.device)
    at_patch = d[rows, push.patch[:, 0].to(d.device), push.patch[:, 1].to(d.device)]  # (P,)
    heat = _upsample(log_similarity(d, model.epsilon), tuple(x.shape[-2:]))
    return SourcePatches(images, at_patch, log_similarity(at_patch, model.epsilon), heat,
                         activation_boxes(heat, percentile))


def activation_boxes(heat: torch.Tensor, percentile: float = 95.0) -> torch.Tensor:
    """(N, 4) long: (top, bottom, left, right), inclusive, of the pixels of each map of heat (N, H, W) at
    or above the map's `percentile`, batched."""
    check_tensor(heat, "heat", ndim=3)
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    level = torch.quantile(heat.float().flatten(1), percentile / 100, dim=1)  # (N,)
    mask = heat >= level[:, None, None]
    rows, cols = mask.any(2).float(), mask.any(1).float()  # (N, H), (N, W)
    H, W = heat.shape[1:]
    # argmax returns the first maximal index: the first and (on the flipped mask) the last marked row/column
    return torch.stack([rows.argmax(1), H - 1 - rows.flip(1).argmax(1), cols.argmax(1), W - 1 - cols.flip(1).argmax(1)], 1)


def activation_box(heat: torch.Tensor, percentile: float = 95.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the pixels of `heat` (H, W) at or above `percentile`."""
    check_tensor(heat, "heat", ndim=2)
    top, bottom, left, right = activation_boxes(heat[None], percentile)[0].tolist()
    return top, bottom, left, right
