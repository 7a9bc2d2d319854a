"""Profile settings of the `protopnet` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..lenses.protopnet import ProtoConfig


@dataclass(frozen=True)
class Settings:
    """What a profile of the protopnet chapter trains: data, backbone, baseline and ProtoPNet schedule."""

    dataset: str  # a genlens.core.data.load name
    backbone: str  # a genlens.core.models.backbone name
    width: int | None  # backbone width; None: the architecture's own
    pretrained: bool  # ImageNet weights from torch's hub cache
    baseline_lr: float  # Adam learning rate of the plain classifier
    augment: bool  # random crop and flip (both models)
    config: ProtoConfig  # schedule and loss of the ProtoPNet (the seed is the chapter's)
    n_seeds: int = 3  # both models are trained with seeds seed * 10 + k, k < n_seeds (findings: mean +- interval)


# The repository's last-layer phase: 20 passes over the offline-augmented training set (img_aug.py writes 30
# copies of each image: 10 rotated, 10 skewed, 10 sheared), i.e. about 20 * 30 * 5994 / 80 = 45,000 Adam steps
# at lr 1e-4 on CUB. Over a data set without those copies the same number of steps is 30 times the passes.
OFFICIAL_LAST_LAYER_PASSES = 20 * 30


PROFILES = {
    # CPU, from scratch: 10 epochs with pushes after epochs 6 and 10; larger backbone and last-layer lrs. After each
    # push 90 last-layer passes of 50 steps at lr 1e-3: 4,500 steps that can move a weight as far as the repository's
    # 45,000 at lr 1e-4 (an Adam step moves a weight by at most about lr), in a tenth of the steps
    "quick": Settings("mnist5k", "cnn", 16, False, 1e-3, False, ProtoConfig(
        prototypes_per_class=5, prototype_dim=64, epochs=10, warm_epochs=1, push_epochs=(5, 9), last_layer_epochs=90,
        batch_size=80, lr_features=1e-3, lr_step=100, lr_last_layer=1e-3), n_seeds=4),
    # the paper's setting: CUB-200-2011, ImageNet-pretrained VGG-19, the repository's schedule to 31 epochs, with
    # the repository's number of last-layer steps (CUB here is not augmented offline, so 30 times the passes)
    "full": Settings("cub200", "vgg19", None, True, 1e-4, False, ProtoConfig(
        epochs=31, warm_epochs=5, push_epochs=(10, 20, 30), last_layer_epochs=OFFICIAL_LAST_LAYER_PASSES)),
    # `full` on an image folder (the CIFAR-10 JPEG proxy): a CIFAR ResNet-18 from scratch; 23 last-layer passes of
    # 196 steps at lr 1e-3 (about the travel of the repository's 45,000 steps at 1e-4)
    "proxy": Settings("", "resnet18", None, False, 1e-3, True, ProtoConfig(
        epochs=30, warm_epochs=2, push_epochs=(19, 29), last_layer_epochs=23, batch_size=256, lr_features=1e-3,
        lr_step=100, lr_last_layer=1e-3)),
}


def resolve(profile: str, *, seed: int = 0, dataset: str = "", backbone: str = "", epochs: int = 0) -> Settings:
    """The profile's settings with the chapter's parameters applied: a `full` run on an `imagefolder:`
    data set uses the proxy settings; `epochs` > 0 shortens the schedule, pushing after its last epoch."""
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {profile!r}")
    s = PROFILES[profile]
    dataset = dataset or s.dataset
    if profile == "full" and dataset.startswith("imagefolder:"):
        s = PROFILES["proxy"]
    config = replace(s.config, seed=seed)
    if epochs:
        pushes = tuple(sorted({e for e in config.push_epochs if e < epochs} | {epochs - 1}))
        config = replace(config, epochs=epochs, push_epochs=pushes)
    return replace(s, dataset=dataset, backbone=backbone or s.backbone, config=replace(config, augment=s.augment))
