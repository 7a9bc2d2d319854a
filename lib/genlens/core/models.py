"""Small image classifiers used throughout genlens.

Every model maps an ``(N, C, H, W)`` float batch (values roughly in ``[0, 1]``) to
``(N, num_classes)`` logits. Input normalisation is *not* baked in; wrap a model with
:func:`with_normalization` when an attack or probe must work in raw ``[0, 1]`` pixel space.

The Zhang et al. (ICLR 2017, appendix A) networks reproduce the parameter counts of their
Table 1 exactly: ``SmallInception`` 1,649,402, ``SmallAlexNet`` 1,387,786,
``MLP(hidden=(512,)*3, in_channels=3)`` 1,735,178 and ``MLP(hidden=(512,), in_channels=3)`` 1,209,866.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "Normalize", "with_normalization", "MLP", "SmallCNN", "BasicBlock", "CifarResNet",
    "resnet20", "resnet56", "resnet110", "ResNet18", "SmallVGG", "SmallInception",
    "SmallAlexNet", "MnistCNN", "MODELS", "build", "build_for", "count_parameters", "backbone", "plain_classifier",
]


# ----------------------------------------------------------------------------- utilities

class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on an ``(N, C, H, W)`` batch; mean/std are buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def with_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """Return ``Sequential(Normalize(mean, std), model)`` so the result eats ``[0, 1]`` pixels."""
    return nn.Sequential(Normalize(mean, std), model)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- MLP / CNN

class MLP(nn.Module):
    """Fully connected ReLU (or ``activation="sigmoid"``) net on flattened ``(N, C, H, W)`` (or ``(N, in_features)``) input."""

    def __init__(self, in_features: int | None = None, hidden: Sequence[int] = (512,),
                 num_classes: int = 10, *, in_channels: int = 1, image_size: int = 28,
                 dropout: float = 0.0, batchnorm: bool = False, activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        d = in_features if in_features is not None else in_channels * image_size * image_size
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(d, h)] + ([nn.BatchNorm1d(h)] if batchnorm else []) + [nn.ReLU(inplace=True) if activation == "relu" else nn.Sigmoid()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_bn_relu(cin: int, cout: int, batchnorm: bool) -> list[nn.Module]:
    bn = [nn.BatchNorm2d(cout)] if batchnorm else []
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm), *bn, nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three 3x3 conv layers (w, 2w, 4w channels), two max-pools, global average pool, linear.

    Input ``(N, in_channels, H, W)``; any ``H, W >= 4`` works (``image_size`` is informational).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, width: int = 32,
                 batchnorm: bool = True, dropout: float = 0.0, image_size: int = 28):
        super().__init__()
        w = width
        self.image_size = image_size
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w, batchnorm), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w, batchnorm), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w, batchnorm),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


# ----------------------------------------------------------------------------- ResNets

class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; ``relu(F(x) + shortcut(x))``, or ``relu(F(x))`` if ``shortcut=False``.

    On a change of shape the shortcut is a 1x1 conv + BN projection (option B).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, shortcut: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.has_shortcut = shortcut
        self.shortcut: nn.Module | None = None
        if shortcut:
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


def _init_resnet(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _ResidualStack(nn.Module):
    """3x3 stem, stages of BasicBlocks (the first block of each later stage halves the size), global pool, fc."""

    def __init__(self, in_channels: int, widths: list[int], per_stage: int, num_classes: int, shortcut: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(per_stage):
                blocks.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1, shortcut))
                cin = w
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        _init_resnet(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CifarResNet(_ResidualStack):
    """He et al. (2016) CIFAR ResNet with ``depth = 6n + 2`` layers; input ``(N, C, 32, 32)``.

    Three stages of ``n`` BasicBlocks with ``16, 32, 64`` (times ``width``) channels.
    ``shortcut=False`` drops every skip connection (the "noshort" nets of Li et al., 2018).
    """

    def __init__(self, depth: int = 20, *, shortcut: bool = True, width: int = 1,
                 in_channels: int = 3, num_classes: int = 10):
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got depth={depth}")
        super().__init__(in_channels, [16 * width, 32 * width, 64 * width], (depth - 2) // 6, num_classes, shortcut)
        self.depth, self.shortcut = depth, shortcut


def resnet20(**kw) -> CifarResNet:
    return CifarResNet(20, **kw)


def resnet56(**kw) -> CifarResNet:
    return CifarResNet(56, **kw)


def resnet110(**kw) -> CifarResNet:
    return CifarResNet(110, **kw)


class ResNet18(_ResidualStack):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool; as in kuangliu/pytorch-cifar)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__(in_channels, [width, 2 * width, 4 * width, 8 * width], 2, num_classes)


# ----------------------------------------------------------------------------- VGG

class SmallVGG(nn.Module):
    """VGG-style net: ``cfg`` lists conv widths (3x3) and ``'M'`` (2x2 max-pool); then one linear.

    Input ``(N, in_channels, image_size, image_size)``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, *,
                 cfg: Sequence[int | str] = (64, "M", 128, "M", 256, "M"),
                 batchnorm: bool = True, image_size: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, image_size
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                s //= 2
            else:
                layers += _conv_bn_relu(c, int(v), batchnorm)
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * s * s, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


# ----------------------------------------------------------------------------- Zhang et al. (2017)

class _ShiftBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm with a learned shift (beta) but no scale (gamma): TF-slim's default batch_norm."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-3, affine=False)
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.shift.view(1, -1, 1, 1)


class _ConvModule(nn.Sequential):
    """Conv -> BN -> ReLU. With BN the conv has no bias and BN has a shift only, so the
    parameter count equals that of a plain biased conv (and the count is the same either way)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, batchnorm: bool = True):
        norm = [_ShiftBatchNorm2d(cout)] if batchnorm else []
        super().__init__(nn.Conv2d(cin, cout, k, stride, padding, bias=not batchnorm), *norm, nn.ReLU(inplace=True))


class _Inception(nn.Module):
    """Concat of a 1x1 conv module (``ch1``) and a 3x3 'same' conv module (``ch3``)."""

    def __init__(self, cin: int, ch1: int, ch3: int, batchnorm: bool):
        super().__init__()
        self.b1 = _ConvModule(cin, ch1, 1, batchnorm=batchnorm)
        self.b3 = _ConvModule(cin, ch3, 3, padding=1, batchnorm=batchnorm)
        self.out_channels = ch1 + ch3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x)], 1)


class _Downsample(nn.Module):
    """Concat of a 3x3 stride-2 'valid' conv module (``ch3``) and a 3x3 stride-2 max-pool."""

    def __init__(self, cin: int, ch3: int, batchnorm: bool):
        super().__init__()
        self.conv = _ConvModule(cin, ch3, 3, stride=2, batchnorm=batchnorm)
        self.pool = nn.MaxPool2d(3, 2)
        self.out_channels = cin + ch3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], 1)


class SmallInception(nn.Module):
    """Small Inception of Zhang et al. (2017), Fig. 3; input ``(N, C, 28, 28)``, 1,649,402 params.

    Conv96 -> I(32,32) -> I(32,48) -> D(80) -> I(112,48) -> I(96,64) -> I(80,80) -> I(48,96)
    -> D(96) -> I(176,160) -> I(176,160) -> global mean pool -> FC. With 'valid' downsampling
    the feature map goes 28 -> 13 -> 6 before the global pool.
    """

    SPEC = (("I", 32, 32), ("I", 32, 48), ("D", 80), ("I", 112, 48), ("I", 96, 64), ("I", 80, 80),
            ("I", 48, 96), ("D", 96), ("I", 176, 160), ("I", 176, 160))

    def __init__(self, in_channels: int = 3, num_classes: int = 10, *, batchnorm: bool = True):
        super().__init__()
        layers: list[nn.Module] = [_ConvModule(in_channels, 96, 3, padding=1, batchnorm=batchnorm)]
        c = 96
        for kind, *ch in self.SPEC:
            m = _Inception(c, *ch, batchnorm) if kind == "I" else _Downsample(c, *ch, batchnorm)
            layers.append(m)
            c = m.out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class SmallAlexNet(nn.Module):
    """Small AlexNet of Zhang et al. (2017); input ``(N, C, image_size, image_size)``.

    Two (conv 5x5 -> ReLU -> max-pool 3x3/2 -> LRN) modules, then FC 384 -> FC 192 -> FC.
    ``width=64`` (the TensorFlow CIFAR-10 tutorial net it is based on) gives Table 1's 1,387,786
    parameters on 28x28x3 inputs. Pooling pads like TF 'SAME', so 28 -> 14 -> 7. ``dropout > 0``
    adds dropout before the last layer (the rethinking chapter's dropout regime); 0 adds no module.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, *, image_size: int = 28, width: int = 64,
                 dropout: float = 0.0):
        super().__init__()

        def block(cin: int) -> list[nn.Module]:  # LRN as tf.nn.lrn(depth_radius=4, bias=1, alpha=1e-3/9)
            return [nn.Conv2d(cin, width, 5, padding=2), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2, padding=1), nn.LocalResponseNorm(9, alpha=1e-3, beta=0.75, k=1.0)]

        s = (image_size - 1) // 2 + 1
        s = (s - 1) // 2 + 1
        self.features = nn.Sequential(*block(in_channels), *block(width), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(width * s * s, 384), nn.ReLU(inplace=True),
            nn.Linear(384, 192), nn.ReLU(inplace=True),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(192, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MnistCNN(nn.Module):
    """Ansuini et al.'s (NeurIPS 2019) MNIST network (after F. Chollet): conv32-conv64-fc128.

    Two unpadded 3x3 convolutions (32 and 64 channels), each followed by a 2x2 max-pool and a ReLU,
    then a fully connected hidden layer of 128 ReLU units (the last hidden layer) and a linear output.
    ``features`` ends with the flattened conv output; ``hidden`` is the 128-unit layer. On 28x28
    images the flattened conv output has 64 * 5 * 5 = 1600 features (their ``fc1`` is 1600 -> 128).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, image_size: int = 28,
                 widths: tuple[int, int] = (32, 64), hidden: int = 128):
        super().__init__()
        a, b = widths
        side = ((image_size - 2) // 2 - 2) // 2
        if side < 1:
            raise ValueError(f"MnistCNN needs images of at least 10 pixels a side, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, a, 3), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(a, b, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(b * side * side, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden(self.features(x)))


# ----------------------------------------------------------------------------- the zoo's family

class _ZooBlock(nn.Module):
    """Two 3x3 convs of `width` channels (each with BatchNorm if `batchnorm`); ``relu(F(x) + x)``, or ``relu(F(x))``."""

    def __init__(self, width: int, batchnorm: bool, shortcut: bool):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(width, width, batchnorm)[:-1], nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1, bias=not batchnorm),
                                  *([nn.BatchNorm2d(width)] if batchnorm else []))
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return F.relu(out + x if self.shortcut else out)


class ZooCNN(nn.Module):
    """The zoo chapter's family: one knob per factor of Jiang et al.'s (2020) grids.

    A 3x3 stem of `width` channels and a 2x2 max-pool, `blocks` residual blocks (`_ZooBlock`, with or
    without `shortcut`, with or without `batchnorm`) at that resolution, a 2x2 max-pool, global average
    pooling (the last hidden layer: `width` features) and a linear output. Input ``(N, C, H, W)``, H, W >= 4.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, width: int = 16, blocks: int = 2,
                 batchnorm: bool = True, shortcut: bool = True):
        super().__init__()
        if width < 1 or blocks < 0:
            raise ValueError(f"ZooCNN needs width >= 1 and blocks >= 0, got width={width}, blocks={blocks}")
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width, batchnorm), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(*[_ZooBlock(width, batchnorm, shortcut) for _ in range(blocks)])
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.blocks(self.stem(x))))


# ----------------------------------------------------------------------------- registry

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet": CifarResNet,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet18": ResNet18,
    "vgg": SmallVGG,
    "inception": SmallInception,
    "alexnet": SmallAlexNet,
    "mnist_cnn": MnistCNN,
    "zoo_cnn": ZooCNN,
}


def build(name: str, **kwargs) -> nn.Module:
    """Construct a model by registry name, e.g. ``build("resnet56", shortcut=False)``."""
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[key](**kwargs)


def build_for(name: str, image_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """`build(name, **kwargs)` sized for images of shape (C, H, W) and `num_classes` classes."""
    C, H, _ = image_shape
    accepted = inspect.signature(MODELS.get(name.lower(), build)).parameters
    sizing = {"in_channels": C, "num_classes": num_classes}
    if "image_size" in accepted:
        sizing["image_size"] = H
    return build(name, **sizing, **kwargs)


# ----------------------------------------------------------------------------- convolutional backbones

_TORCHVISION = ("vgg11", "vgg13", "vgg16", "vgg19", "resnet18_tv", "resnet34", "resnet50", "resnet101", "resnet152",
                "densenet121", "densenet161", "densenet169", "densenet201")


def _pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of torchvision model `name`, read from torch's hub cache (never downloaded)."""
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
    """(convolutional feature extractor, its output channels), e.g. for ProtoPNet (`genlens.lenses.protopnet`).

    genlens backbones trained from scratch: "cnn" (SmallCNN without its pooling head; 28x28 -> 7x7),
    "resnet18" (CIFAR ResNet-18 without pooling; 32x32 -> 4x4). torchvision ImageNet backbones as
    in Chen et al. (2019) ("vgg19", "resnet34", "densenet121", ...; 224x224 -> 7x7), with `weights=None`,
    or with the ImageNet weights read from torch's hub cache when `pretrained` (never downloaded).

    >>> feats, c = backbone("cnn", 1, width=8); tuple(feats(torch.zeros(1, 1, 28, 28)).shape), c
    ((1, 32, 7, 7), 32)
    """
    if name == "cnn":
        net = SmallCNN(in_channels, width=width or 32)
        return nn.Sequential(*list(net.features)[:-2]), 4 * (width or 32)
    if name == "resnet18":
        res = ResNet18(in_channels, width=width or 64)
        return nn.Sequential(res.conv1, res.bn1, nn.ReLU(inplace=True), res.layers), 8 * (width or 64)
    if name not in _TORCHVISION:
        raise ValueError(f"backbone must be one of cnn, resnet18, {', '.join(_TORCHVISION)}; got {name!r}")
    if in_channels != 3:
        raise ValueError(f"torchvision backbone {name!r} needs in_channels=3, got {in_channels}")
    import torchvision

    tv_name = name.removesuffix("_tv")
    tv = torchvision.models.get_model(tv_name, weights=None)
    if pretrained:
        tv.load_state_dict(_pretrained_state(tv_name))
    if tv_name.startswith("vgg"):
        return tv.features, [m for m in tv.features.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    if tv_name.startswith("resnet"):
        return nn.Sequential(*list(tv.children())[:-2]), tv.fc.in_features
    return nn.Sequential(tv.features, nn.ReLU(inplace=True)), tv.classifier.in_features  # densenet ends in norm5


def plain_classifier(backbone_name: str, image_shape: Sequence[int], num_classes: int, *,
                     pretrained: bool = False, width: int | None = None) -> nn.Sequential:
    """A backbone as a black-box classifier: features -> global average pool -> linear.

    For "cnn" this is exactly `SmallCNN`; Chen et al.'s baselines are the torchvision networks with a
    new last layer.
    """
    feats, channels = backbone(backbone_name, image_shape[0], pretrained=pretrained, width=width)
    return nn.Sequential(feats, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
