"""Profile settings of the `hfc` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.train import TrainConfig


@dataclass(frozen=True)
class Settings:
    """What a profile of the hfc chapter trains, attacks and filters."""

    dataset: str  # the profile's data set
    width: int  # channels of the small CNN's first convolution
    train: TrainConfig  # the recipe of the plain, BatchNorm, mixup and dropout networks
    eps: float  # L-inf radius of adversarial training and of the attacks, pixel scale [0, 1]
    train_steps: int  # PGD steps of adversarial training (HaohanWang/HFC: 10)
    train_alpha: float  # their step size (HaohanWang/HFC: eps / 10)
    adv_optimizer: str  # the adversarially trained network's optimizer (HaohanWang/HFC trains with Adam)
    adv_lr: float  # and its learning rate
    adv_epochs: int  # and its epochs (quick: with 5, seed 0 gained 0.5 points of PGD accuracy over the plain model)
    track_radii: tuple[int, ...]  # radii tracked over training (frequency bins)
    fig_radius: int  # radius of the figures, of the findings on the two parts and of the memorization test
    finding_radii: tuple[int, ...]  # radii at which HFC accuracy above chance is a finding
    sweep_radii: tuple[int, ...]  # radii of the accuracy sweep
    defence_radii: tuple[int, ...]  # radii of the low-pass input filter
    defence_finding_radii: tuple[int, ...]  # of which these are findings (fixed before the run)
    rhos: tuple[float, ...]  # kernel smoothing strengths (the paper's Table 1)
    n_seeds: int  # training seeds of the plain, BatchNorm, mixup and memorization networks (the findings' spread)
    n_attack: int  # test images attacked
    bn_eval_batch: int  # batch size of the batch-statistics evaluation (HaohanWang/HFC: 100)
    memo_subset: int  # training (and test) images of the memorization test
    memo_width: int  # width of its CNN (without BatchNorm, the official default)
    memo: TrainConfig  # its recipe: trained until every training image is fitted

    def smoke(self) -> Settings:
        """One epoch, two seeds, 50 attacked and 50 memorized images, 3 memorization epochs, every radius and
        architecture kept: the code path only (the checks need not hold)."""
        return replace(self, train=replace(self.train, epochs=1), adv_epochs=1, n_seeds=2, n_attack=50,
                       memo_subset=50, memo=replace(self.memo, epochs=3))


_FIT = dict(stop_at_train_acc=1.0, exact_train_metrics=True)

PROFILES = {
    "quick": Settings(dataset="mnist5k", width=8, train=TrainConfig(epochs=5, batch_size=32, lr=0.1), eps=0.1,
                      train_steps=10, train_alpha=0.01, adv_optimizer="adam", adv_lr=1e-3, adv_epochs=10,
                      track_radii=(2, 4, 8), fig_radius=4, finding_radii=(4, 8),
                      sweep_radii=(1, 2, 3, 4, 5, 6, 8, 10, 12, 14), defence_radii=(3, 4, 6, 8),
                      defence_finding_radii=(4, 8), rhos=(0.1, 0.25, 0.5, 1.0), n_seeds=3, n_attack=1000, bn_eval_batch=100,
                      memo_subset=200, memo_width=16,
                      memo=TrainConfig(epochs=250, batch_size=32, optimizer="adam", lr=3e-3, **_FIT)),
    # gpu: CIFAR-10 with the full profile's network, radii and attack (eps 0.03, the official code's 8/255 scale),
    # training shortened: batch 512 (the small CNN's step costs about the same from batch 128 to 512 on an H100,
    # bound by kernel launches), learning rates scaled by sqrt(batch ratio) from full's. Estimated seconds on one
    # H100 shared by 4 chapters (the README's epoch table x 1.5: 0.29 s per epoch of the width-64 CNN at batch 512):
    # plain, BatchNorm, mixup, dropout 4 x 20 epochs x (0.29 + 0.3 tracking 8 bands of 10,000 test images) = 47;
    # 2 more seeds of 3 networks 6 x 20 x 0.29 = 35; adversarial 12 x (2.8 + 0.3) = 37 (10 float32 PGD steps per
    # batch, input gradients only); memorization 3 seeds x (true, random labels) on 500 images, ~150 epochs of
    # 8 steps + per-epoch evaluation and checkpoint, ~40 ms each = 40; sweeps and attacks on 1,000 images ~10;
    # start and data ~10: about 180 s.
    "full": Settings(dataset="cifar10", width=64, train=TrainConfig(epochs=30, batch_size=128, lr=0.05), eps=0.03,
                     train_steps=10, train_alpha=0.003, adv_optimizer="adam", adv_lr=1e-3, adv_epochs=30,
                     track_radii=(4, 8, 12, 16), fig_radius=12, finding_radii=(8, 12),
                     sweep_radii=(2, 4, 6, 8, 10, 12, 14, 16, 20, 24), defence_radii=(4, 8, 12, 16, 20),
                     defence_finding_radii=(8, 12), rhos=(0.1, 0.25, 0.5, 1.0), n_seeds=3, n_attack=1000, bn_eval_batch=100,
                     memo_subset=5000, memo_width=64,
                     memo=TrainConfig(epochs=200, batch_size=128, optimizer="adam", lr=1e-3, **_FIT)),
}
# one GPU (see the estimate above): full's networks, radii and attacks, training shortened
PROFILES["gpu"] = replace(PROFILES["full"], train=TrainConfig(epochs=20, batch_size=512, lr=0.1), adv_lr=2e-3,
                          adv_epochs=12, memo_subset=500,
                          memo=TrainConfig(epochs=400, batch_size=64, optimizer="adam", lr=1e-3, **_FIT))

