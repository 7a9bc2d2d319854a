"""Profile settings of the `hfc` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.train import TrainConfig


@dataclass(frozen=True)
class Settings:
    """What a profile of the hfc chapter trains, attacks and filters."""

    dataset: str  # the profile's data set
    width: int  # channels of the small CNN's first convolution
    train: TrainConfig  # the recipe of the five heuristics' networks
    eps: float  # L-inf radius of adversarial training and of the attacks, pixel scale [0, 1]
    train_steps: int  # PGD steps of adversarial training
    track_radii: tuple[int, ...]  # radii tracked over training (frequency bins)
    fig_radius: int  # radius of the figures and of the memorization test
    sweep_radii: tuple[int, ...]  # radii of the accuracy sweep
    defence_radii: tuple[int, ...]  # radii of the low-pass input filter
    n_attack: int  # test images attacked
    memo_subset: int  # training (and test) images of the memorization test
    memo: TrainConfig  # its recipe: trained until every training image is fitted


_FIT = dict(batch_size=64, lr=0.05, stop_at_train_acc=1.0, exact_train_metrics=True)

PROFILES = {
    "quick": Settings(dataset="mnist5k", width=8, train=TrainConfig(epochs=5, batch_size=32, lr=0.1), eps=0.1,
                      train_steps=2, track_radii=(2, 4, 8), fig_radius=4, sweep_radii=(1, 2, 3, 4, 5, 6, 8, 10, 12, 14),
                      defence_radii=(2, 3, 4, 6, 14), n_attack=200, memo_subset=300, memo=TrainConfig(epochs=250, **_FIT)),
    "full": Settings(dataset="cifar10", width=64, train=TrainConfig(epochs=30, batch_size=128, lr=0.05), eps=0.03,
                     train_steps=7, track_radii=(4, 8, 12, 16), fig_radius=12, sweep_radii=(2, 4, 6, 8, 10, 12, 14, 16, 20, 24),
                     defence_radii=(4, 8, 12, 16, 20, 24), n_attack=1000, memo_subset=5000, memo=TrainConfig(epochs=200, **_FIT)),
}
