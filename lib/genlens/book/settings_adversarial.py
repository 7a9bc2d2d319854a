"""Profile settings of the `adversarial` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace
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
    disjoint_attack_all: bool  # attack all three disjoint-halves networks (else FC100-100-10 (P1) alone, the paper's quoted row)

    def smoke(self) -> Settings:
        """20 epochs (the sigmoid networks stay at chance for the first few hundred steps, and the chapter needs
        images that every model classifies correctly; a few seconds on a CPU), 50 attacked images, 2 search
        steps of 5 iterations, 2 PGD steps, the same networks: the code path only (the checks need not hold)."""
        return replace(self, train=replace(self.train, epochs=20), n_attack=50,
                       lbfgs={**self.lbfgs, "search_steps": 2, "max_iter": 5}, pgd_steps=2, disjoint_epochs=(10, 20))


PROFILES = {
    "quick": Settings(dataset="mnist5k", train=TrainConfig(epochs=30, batch_size=64, lr=0.05), n_attack=200,
                      lbfgs=dict(c_init=0.1, search_steps=4, max_iter=20), pgd_steps=10,
                      disjoint_epochs=(10, 30, 100), disjoint_attack_all=False),
    # gpu: the paper's data set, but only the 5,000 digits of mnist5k (the GPU machine has no other MNIST), the
    # full profile's training recipe (the same number of SGD steps as quick at twice the batch), every test image
    # and 1,000 training images attacked with the full profile's L-BFGS, all three disjoint-halves networks
    # attacked. Estimated seconds on one H100 shared by 4 chapters (tiny MLPs are bound by kernel launches: ~55
    # kernels, ~0.7 ms a training step, ~15 ms of evaluation and checkpoint per epoch; x 1.5 for the sharing):
    # training 5 x 60 epochs x (32 x 0.7 + 15) ms = 11, disjoint pair 2 x (20 + 60 + 200) epochs and FC123-456-10
    # x (16 x 0.7 + 15) ms = 17; L-BFGS 17 calls (Table 1: 2 x 5, disjoint: 3 + 3, exercise 1) x 8 x 100
    # iterations x ~2.6 ms (~220 small kernels each) = 36; PGD curves 5 x 5 x 40 steps, units, bounds ~5;
    # all x 1.5 = 100; start ~10: about 110 s.
    "gpu": Settings(dataset="mnist5k", train=TrainConfig(epochs=60, batch_size=128, lr=0.05), n_attack=1000,
                    lbfgs=dict(c_init=0.1, search_steps=8, max_iter=100), pgd_steps=40,
                    disjoint_epochs=(20, 60, 200), disjoint_attack_all=True),
    "full": Settings(dataset="mnist", train=TrainConfig(epochs=60, batch_size=128, lr=0.05), n_attack=1000,
                     lbfgs=dict(c_init=0.1, search_steps=8, max_iter=100), pgd_steps=40,
                     disjoint_epochs=(20, 60, 200), disjoint_attack_all=True),
}
