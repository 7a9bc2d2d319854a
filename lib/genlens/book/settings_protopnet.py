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
    min_test_acc: float = 0.8  # the check `models_trained`: every network's test accuracy at least this

    def smoke(self) -> Settings:
        """Two epochs (one warm-up, one joint) with a push after each, two last-layer passes, two seeds: the
        profile's backbone, prototypes and code path on whatever (tiny) data set is given, not its claims."""
        config = replace(self.config, epochs=2, warm_epochs=1, push_epochs=(0, 1), last_layer_epochs=2)
        return replace(self, config=config, n_seeds=2)


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
    # One H200 shared by 4 chapters, about 2 minutes: the CIFAR-10 JPEG proxy (25,000 training images; the book passes
    # it as `dataset`), a CIFAR ResNet-18 of width 32 (2.8 M parameters, 0.28 GFLOP per image; no ImageNet weights fit
    # 32x32 images, and there is no CUB here) from scratch, the paper's 10 prototypes per class of dimension 128; 12
    # epochs at batch 256 (2 warm-up, pushes after epochs 7 and 12); after each push 15 last-layer passes of 98 steps
    # at lr 3e-3, about the reach of the repository's 45,000 steps at 1e-4 (an Adam step moves a weight by about lr).
    # Estimated GPU seconds: ~0.8 s per epoch alone (between the README's Inception, 0.47 GFLOP: 0.83 s at batch
    # 512, and ResNet-20), x1.5 shared = 1.2 s; 3 seeds x (12 ProtoPNet + 12 plain epochs) = 86 s; per-epoch test
    # evaluation and checkpoints (35 MB) of 3 x 54 epochs and passes ~ 15 s; pushes and last-layer passes ~ 5 s;
    # lenses (nearest patches, gradients, source patches: forward passes) ~ 5 s; kernel and figures ~ 10 s: ~120 s
    "gpu": Settings("cifar10", "resnet18", 32, False, 1e-3, True, ProtoConfig(
        prototypes_per_class=10, prototype_dim=128, epochs=12, warm_epochs=2, push_epochs=(6, 11), last_layer_epochs=15,
        batch_size=256, lr_features=1e-3, lr_step=100, lr_last_layer=3e-3), n_seeds=3, min_test_acc=0.6),
}


def resolve(profile: str, *, seed: int = 0, dataset: str = "", backbone: str = "", epochs: int = 0,
            smoke: bool = False) -> Settings:
    """The profile's settings with the chapter's parameters applied: a `full` run on an `imagefolder:`
    data set uses the proxy settings; `smoke` shrinks them (`Settings.smoke`); `epochs` > 0 shortens the
    schedule, pushing after its last epoch."""
    if profile not in ("quick", "gpu", "full"):
        raise ValueError(f"profile must be 'quick', 'gpu' or 'full', got {profile!r}")
    s = PROFILES[profile]
    dataset = dataset or s.dataset
    if profile == "full" and dataset.startswith("imagefolder:"):
        s = PROFILES["proxy"]
    if smoke:
        s = s.smoke()
    config = replace(s.config, seed=seed)
    if epochs:
        pushes = tuple(sorted({e for e in config.push_epochs if e < epochs} | {epochs - 1}))
        config = replace(config, epochs=epochs, push_epochs=pushes)
    return replace(s, dataset=dataset, backbone=backbone or s.backbone, config=replace(config, augment=s.augment))
