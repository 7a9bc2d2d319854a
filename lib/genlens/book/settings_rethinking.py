"""Profile settings of the `rethinking` chapter (Zhang et al., ICLR 2017), one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .configs import NetworkConfig, network


@dataclass(frozen=True)
class Settings:
    """What a profile of the rethinking chapter trains and solves: data, networks, subsets, seeds, kernel problem."""

    dataset: str  # a genlens.core.data.load name
    crop: int | None  # centre crop in pixels (the paper's 28x28 CIFAR-10 crops); None: whole images
    fit_net: NetworkConfig  # Fig. 1a's first network, fitted to every randomization (the chapter's seed)
    cnn_net: NetworkConfig  # Fig. 1a's second network, fitted to every randomization
    cnn_subset: int | None  # training (and test) images for `cnn_net`; None: all
    sweep_subset: int | None  # training images of the label-corruption sweep over seeds (`fit_net`); None: all
    levels: tuple[float, ...]  # label-corruption fractions p
    reg_net: NetworkConfig  # Table 1's network, trained for a fixed budget without and with each regularizer
    reg_subset: int | None  # its training images; None: all
    reg_seeds: int  # seeds of each Table 1 regime (paired: the same seeds for every regime)
    weight_decay: float  # L2 coefficient of the weight-decay regime (and of the random-label fits with it)
    dropout: float  # dropout probability of the dropout regime
    lsq_n: int  # training images of the kernel least-squares problem
    lsq_features: int  # random Fourier features
    lsq_bandwidth_scale: float  # kernel bandwidth, as a multiple of the median distance between training inputs
    lsq_seeds: int  # draws of (training subset, random features)
    lsq_epochs: int  # SGD epochs (the row-space check, first draw)
    lsq_batch_size: int
    gabor_size: int  # Gabor filter size (pixels, odd)
    gabor_wavelengths: tuple[float, ...]  # in pixels
    gabor_orientations: int
    gabor_pool: int  # energy averaged over gabor_pool x gabor_pool blocks
    fit_subset: int | None = None  # training images of `fit_net`'s randomization tests (Fig. 1a); None: all
    expressivity_n: int | None = None  # training images of Theorem 1's construction (stratified); None: all

    def smoke(self) -> Settings:
        """One epoch per network, tiny subsets, 2 seeds, two corruption levels, a tiny kernel problem: the code path only."""
        one = {name: getattr(self, name).variant(epochs=1) for name in ("fit_net", "cnn_net", "reg_net")}
        return replace(self, **one, fit_subset=100, cnn_subset=50, sweep_subset=50, levels=(0.0, 1.0), reg_subset=100,
                       reg_seeds=2, lsq_n=50, lsq_features=100, lsq_seeds=2, lsq_epochs=2, expressivity_n=100)


PROFILES = {
    # CPU, about 3 minutes on 2 cores: subsets of mnist5k where a result needs several seeds
    "quick": Settings(
        dataset="mnist5k", crop=None, fit_net=network("rethinking-fit", "quick"),
        cnn_net=network("rethinking-fit-cnn", "quick"), cnn_subset=500, sweep_subset=1000,
        levels=(0.0, 0.25, 0.5, 0.75, 1.0), reg_net=network("rethinking-regularized", "quick"), reg_subset=2000,
        reg_seeds=3, weight_decay=1e-4, dropout=0.5, lsq_n=1000, lsq_features=4000, lsq_bandwidth_scale=0.4,
        lsq_seeds=3, lsq_epochs=200, lsq_batch_size=50, gabor_size=9, gabor_wavelengths=(4.0, 8.0),
        gabor_orientations=4, gabor_pool=4),
    # one GPU: the paper's CIFAR-10 (28x28 crops), small Inception and AlexNet, whole training set
    "full": Settings(
        dataset="cifar10", crop=28, fit_net=network("rethinking-fit", "full"),
        cnn_net=network("rethinking-fit-cnn", "full"), cnn_subset=None, sweep_subset=None,
        levels=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), reg_net=network("rethinking-regularized", "full"), reg_subset=None,
        reg_seeds=3, weight_decay=1e-4, dropout=0.5, lsq_n=5000, lsq_features=12000, lsq_bandwidth_scale=0.4,
        lsq_seeds=3, lsq_epochs=100, lsq_batch_size=100, gabor_size=9, gabor_wavelengths=(4.0, 8.0),
        gabor_orientations=4, gabor_pool=4),
    # one GPU, <= 3 minutes beside three other chapters: CIFAR-10 (28x28 crops), the paper's MLP 1x512 and small
    # AlexNet; every fit to 100% on a subset (fit_subset = sweep_subset: Fig. 1a's true and random-label MLP fits
    # are the sweep's first seed), three corruption levels, Table 1 on 10,000 images for a fixed 10 epochs.
    # Estimated GPU seconds alone (H100 epoch table; ~30 ms per epoch for the test and exact train evaluations
    # and the epoch checkpoint, a guess; ~170 epochs per MLP fit, from CPU trials): MLP fits 23 x 170 epochs x
    # (8 steps x 1.6 ms + 30 ms) ~ 170 s; AlexNet fits 5 x ~170 x (4 x 3.9 ms + 30 ms) ~ 40 s (epochs a guess);
    # Table 1 12 runs x 10 epochs x (20 x 4.4 ms + 40 ms) ~ 15 s; Theorem 1 and the kernel problem ~ 5 s; start
    # and data ~ 10 s: ~ 240 s alone, OVER the 3-minute budget (run with -p n_seeds=2: ~ 130 s alone).
    "gpu": Settings(
        dataset="cifar10", crop=28, fit_net=network("rethinking-fit", "gpu"), fit_subset=1000,
        cnn_net=network("rethinking-fit-cnn", "gpu"), cnn_subset=500, sweep_subset=1000, expressivity_n=10000,
        levels=(0.0, 0.5, 1.0), reg_net=network("rethinking-regularized", "gpu"), reg_subset=10000,
        reg_seeds=3, weight_decay=1e-4, dropout=0.5, lsq_n=1000, lsq_features=4000, lsq_bandwidth_scale=0.4,
        lsq_seeds=3, lsq_epochs=400, lsq_batch_size=50, gabor_size=9, gabor_wavelengths=(4.0, 8.0),
        gabor_orientations=4, gabor_pool=4),
}
