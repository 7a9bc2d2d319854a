"""Profile settings of the `adversarial` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..core.train import TrainConfig


@dataclass(frozen=True)
class Settings:
    """What a profile of the adversarial chapter trains and attacks."""

    dataset: str  # the profile's data set
    train: TrainConfig  # every network's recipe; the weight decay is set per model
    n_attack: int  # test images attacked by L-BFGS per model
    lbfgs: Mapping[str, float]  # arguments of attacks.lbfgs: initial c, search steps, iterations per solve
    pgd_steps: int  # steps of the PGD curves
    disjoint_epochs: tuple[int, ...]  # training lengths of the disjoint-halves pair P1 / P2', shortest first


PROFILES = {
    "quick": Settings(dataset="mnist5k", train=TrainConfig(epochs=30, batch_size=64, lr=0.05), n_attack=200,
                      lbfgs=dict(c_init=0.1, search_steps=4, max_iter=20), pgd_steps=10,
                      disjoint_epochs=(10, 30, 100)),
    "full": Settings(dataset="mnist", train=TrainConfig(epochs=60, batch_size=128, lr=0.05), n_attack=1000,
                     lbfgs=dict(c_init=0.1, search_steps=8, max_iter=100), pgd_steps=40,
                     disjoint_epochs=(20, 60, 200)),
}
