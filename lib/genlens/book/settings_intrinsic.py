"""Profile settings of the `intrinsic` chapter, one frozen dataclass per profile.

In `quick` the main CNN and the label-corruption family are the rethinking chapter's networks, asked
for by name (`genlens.book.configs`), so both chapters share their cache entries; `full` trains its own,
and so does `gpu` (its family has the rethinking chapter's gpu recipe, on uncropped images of its own
subset, so neither chapter waits for the other).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..core.train import TrainConfig
from .configs import NetworkConfig, network


@dataclass(frozen=True)
class Settings:
    """What a profile of the intrinsic chapter trains and measures (every seed is the chapter's)."""

    dataset: str  # the profile's data set
    n_points: int  # training images whose representations are measured
    n_resamples: int  # random 90% subsamples behind each TwoNN error bar and interval (the paper's code: 50)
    cnn: NetworkConfig  # the main network (its label names it in the figures)
    archs: Mapping[str, NetworkConfig]  # architecture sweep: label -> network, all with the main network's recipe
    fit: NetworkConfig  # the label-corruption family's network, trained until it fits every training label
    levels: tuple[float, ...]  # label-corruption fractions p of the family
    gradient: float = 300.0  # MNIST*: each image brightened by Uniform(0, gradient), then rescaled (the paper's 300)
    fit_subset: int | None = None  # training images of the label-corruption family (stratified); None: all
    cnn_min_acc: float = 0.9  # test accuracy at which the main network counts as trained (a check)
    archs_min_acc: float = 0.85  # test accuracy at which every network of the sweep counts as trained (a check)
    scale_tol: float = 0.15  # the input ID counts as stable if every block of >= a quarter of the probe is within this
    # (relative) of the whole probe's (a check); TwoNN's finite-sample bias grows with the ID (MNIST's ~12, CIFAR's ~28)
    probe_subset: bool = False  # True: probe a stratified random subset (an ImageFolder's images are sorted by
    # class); False: the first n_points training images (mnist5k's are in random order)

    def smoke(self) -> Settings:
        """One epoch per network, 160 probe images, 3 subsamples, two corruption levels: the code path only."""
        return replace(self, n_points=160, n_resamples=3, cnn=self.cnn.variant(epochs=1),
                       archs={k: v.variant(epochs=1) for k, v in self.archs.items()}, fit=self.fit.variant(epochs=1),
                       levels=(0.0, 1.0), fit_subset=None)


def _sweep(recipe: TrainConfig, archs: Mapping[str, tuple[str, Mapping]]) -> dict[str, NetworkConfig]:
    return {label: NetworkConfig(label, model, kwargs, recipe) for label, (model, kwargs) in archs.items()}


_QUICK_CNN = network("rethinking-regularized", "quick").variant(label="small CNN (width 16)")
_FULL_CNN = NetworkConfig("ResNet-20", "resnet20", {}, TrainConfig(epochs=60, batch_size=128, lr=0.1, schedule="cosine",
                                                                  weight_decay=5e-4, augment=True))
_GPU_CNN = _FULL_CNN.variant(epochs=15, batch_size=512, lr=0.1)

PROFILES = {
    "quick": Settings(
        dataset="mnist5k", n_points=1000, n_resamples=50, cnn=_QUICK_CNN,
        archs=_sweep(_QUICK_CNN.train, {
            "MLP 1x128": ("mlp", {"hidden": [128]}), "MLP 1x1024": ("mlp", {"hidden": [1024]}),
            "MLP 2x256": ("mlp", {"hidden": [256, 256]}), "MLP 3x256": ("mlp", {"hidden": [256] * 3}),
            "CNN width 8": ("cnn", {"width": 8}), "CNN width 16": ("cnn", {"width": 16}),
            "MNIST CNN (conv32-conv64-fc128)": ("mnist_cnn", {})}),
        fit=network("rethinking-fit", "quick"),
        levels=(0.0, 0.25, 0.5, 0.75, 1.0),
    ),
    "full": Settings(
        dataset="cifar10", n_points=2000, n_resamples=50, cnn=_FULL_CNN,
        archs=_sweep(_FULL_CNN.train, {
            "ResNet-20": ("resnet20", {}), "ResNet-56": ("resnet56", {}), "VGG (3 blocks)": ("vgg", {}),
            "CNN width 32": ("cnn", {"width": 32}), "MLP 3x512": ("mlp", {"hidden": [512] * 3})}),
        fit=NetworkConfig("MLP 1x512", "mlp", {"hidden": [512]},
                          TrainConfig(epochs=300, batch_size=128, lr=0.01, stop_at_train_acc=1.0,
                                      exact_train_metrics=True)),
        levels=(0.0, 0.25, 0.5, 0.75, 1.0),
    ),
    # one GPU, <= 3 minutes beside three other chapters: the full profile's networks for 15 epochs at batch 512
    # (60 at 128 in full) on the whole training set, the label-corruption family (configs) on a subset.
    # Estimated GPU seconds alone (H100 epoch table, batch 512, plus a 10,000-image test pass per epoch):
    # ResNet-20 15 x 0.51 + 1 ~ 9 s (main network = the family's ResNet-20), ResNet-56 15 x 1.36 + 3 ~ 23 s,
    # VGG ~ 3 s, CNN width 32 ~ 2 s, CNN width 64 ~ 3 s, MLP 3x512 ~ 2 s; label-corruption family 5 fits x ~170
    # epochs (CPU trials) x (16 steps x 1.6 ms + 30 ms) ~ 48 s; TwoNN (2 x 13 layers x 50 subsamples), PCA,
    # curvature and the family's layers ~ 15 s; start and data ~ 10 s: ~ 115 s alone, ~ 170 s beside three.
    "gpu": Settings(
        dataset="cifar10", n_points=2000, n_resamples=50, cnn=_GPU_CNN,
        archs=_sweep(_GPU_CNN.train, {
            "ResNet-20": ("resnet20", {}), "ResNet-56": ("resnet56", {}), "VGG (3 blocks)": ("vgg", {}),
            "CNN width 32": ("cnn", {"width": 32}), "CNN width 64": ("cnn", {"width": 64}),
            # batch norm: the recipe's lr 0.1 with momentum is stable with it (a plain MLP 1x512 at lr 0.1 stayed at
            # chance on the proxy)
            "MLP 3x512 (batch norm)": ("mlp", {"hidden": [512] * 3, "batchnorm": True})}),
        fit=network("rethinking-fit", "gpu"), fit_subset=2000,
        levels=(0.0, 0.25, 0.5, 0.75, 1.0), cnn_min_acc=0.6, archs_min_acc=0.3, scale_tol=0.25, probe_subset=True,
    ),
}
