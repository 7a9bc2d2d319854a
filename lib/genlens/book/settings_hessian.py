"""Profile settings of the `hessian` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class Settings:
    """What a profile of the hessian chapter trains and measures."""

    dataset: str  # a genlens.core.data.load name
    n_train: int | None  # training images (a stratified subset of the data set's; None: all of them)
    n_test: int | None  # test images (likewise)
    model: tuple[str, Mapping]  # model name and arguments (genlens.core.models)
    model_name: str  # its label in the tables
    batch_sizes: tuple[int, ...]  # the sweep, smallest first
    replicates: int  # independently seeded networks per batch size (the spread of every finding)
    epochs: int  # the paper's protocol: the same number of epochs for every batch size
    lr: float  # SGD learning rate per step (of the smallest batch when lr_scaling > 0)
    target_loss: float  # the matched-loss protocol: every batch size trains until its training loss reaches this
    max_epochs: int  # ... within at most this many epochs
    hessian_samples: int  # training images every Hessian estimate averages over
    hessian_batch: int  # rows per pass of the Hessian-vector products and full gradients
    top_k: int  # eigenvalues in Figure 3
    eps_fgsm: tuple[float, ...]  # FGSM radii, L-inf on the [0, 1] pixel scale
    eps_test: float  # the radius at which the robustness finding is tested (one of eps_fgsm), fixed before the run
    eps_pgd: float  # the radius of the PGD attack
    pgd_steps: int
    adv_eps: float  # FGSM radius of adversarial training
    input_images: int  # test images whose input Hessian is measured
    input_steps: int  # Lanczos steps per image for the input Hessian
    trace_probes: int  # Rademacher probes of Hutchinson's trace (and SLQ runs, below)
    slq_runs: int  # stochastic Lanczos quadrature: start vectors
    slq_steps: int  # ... and Lanczos steps per start
    steps: tuple[float, ...]  # steps epsilon along the top eigenvector (weight units)
    iter_cap: int = 10**9  # a cap on every Hessian estimate's Lanczos/power steps and probes (smoke: 10; else none)

    def smoke(self) -> Settings:
        """Every setting shrunk, the network and the code path kept: all of the (small) data set's images, two
        seeds, one epoch, a target loss that the first epoch reaches, tiny Hessian samples, probes and attacks."""
        return replace(self, n_train=None, n_test=None, replicates=2, epochs=1, target_loss=10.0, max_epochs=2, hessian_samples=16,
                       hessian_batch=16, top_k=3, pgd_steps=2, input_images=8, input_steps=5, trace_probes=4,
                       slq_runs=2, slq_steps=5, steps=tuple(np.linspace(-1.0, 1.0, 5).tolist()), iter_cap=10)


PROFILES = {
    # CPU: 4,000 MNIST digits, a one-hidden-layer MLP, three seeds per batch size
    "quick": Settings(dataset="mnist5k", n_train=None, n_test=None, model=("mlp", {"hidden": [128]}), model_name="MLP 784-128-10",
                      batch_sizes=(32, 128, 512, 2048), replicates=3, epochs=20, lr=0.05, target_loss=0.1,
                      max_epochs=400, hessian_samples=1000, hessian_batch=1000, top_k=20,
                      eps_fgsm=(0.01, 0.02, 0.05, 0.1), eps_test=0.05, eps_pgd=0.02, pgd_steps=10, adv_eps=0.1,
                      input_images=500, input_steps=20, trace_probes=100, slq_runs=10, slq_steps=40,
                      steps=tuple(np.linspace(-1.0, 1.0, 21).tolist())),
    # One GPU inside the book's 10-minute gpu run (4 chapters share an H200): the paper's CIFAR-10 setting with
    # its C1-like network on 10,000 proxy training and 2,000 test images, batch sizes 64 to 1,024, a matched
    # loss of 0.5 instead of 0.1. Sized from a measured H200 run (2026-11-30, beside the landscape chapter) of
    # an earlier version with batches 128 / 512 / 2,048 and 10,000 test images that took over 6 minutes: its
    # training cell (paper's protocol 10 epochs; matched loss 0.5 reached after 15 / 37 / 140 epochs, each
    # epoch with an eval pass over train and test images and a checkpoint) took 279 s, the top-20 and
    # lambda_min Lanczos 22 s, the loss along v1 8 s; the attacks on 10,000 test images ran out of GPU memory
    # beside the other chapter. One HVP of the small AlexNet on 256 images: 13 ms. This version: training
    # ~100 s (batch 1,024 needs ~4x fewer epochs than 2,048 did; 2,000 test images per epoch), Hessians
    # (~3,000 HVPs on 1,000 images in batches of 500) ~50 s, attacks and input Hessians ~10 s: ~170 s,
    # NOT yet measured.
    "gpu": Settings(dataset="cifar10", n_train=10_000, n_test=2_000, model=("alexnet", {}),
                    model_name="C1-like (small AlexNet)", batch_sizes=(64, 256, 1024), replicates=3, epochs=10,
                    lr=0.02, target_loss=0.5, max_epochs=300, hessian_samples=1000, hessian_batch=500, top_k=20,
                    eps_fgsm=(1 / 255, 2 / 255, 4 / 255, 8 / 255), eps_test=4 / 255, eps_pgd=2 / 255, pgd_steps=10,
                    adv_eps=4 / 255, input_images=500, input_steps=30, trace_probes=50, slq_runs=10,
                    slq_steps=50, steps=tuple(np.linspace(-1.0, 1.0, 21).tolist())),
    # one GPU: the paper's CIFAR-10 setting with a C1-like network
    "full": Settings(dataset="cifar10", n_train=None, n_test=None, model=("alexnet", {}), model_name="C1-like (small AlexNet)",
                     batch_sizes=(128, 512, 2048, 8192), replicates=3, epochs=60, lr=0.02, target_loss=0.1,
                     max_epochs=600, hessian_samples=5000, hessian_batch=1000, top_k=20,
                     eps_fgsm=(1 / 255, 2 / 255, 4 / 255, 8 / 255), eps_test=4 / 255, eps_pgd=2 / 255, pgd_steps=10,
                     adv_eps=4 / 255, input_images=1000, input_steps=30, trace_probes=100, slq_runs=10,
                     slq_steps=80, steps=tuple(np.linspace(-1.0, 1.0, 21).tolist())),
}


def resolve(profile: str, *, dataset: str = "", smoke: bool = False) -> Settings:
    """The profile's settings, on `dataset` where one is given (else the profile's own); `smoke`: shrunk (Settings.smoke)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    s = PROFILES[profile]
    if s.eps_test not in s.eps_fgsm:
        raise ValueError(f"eps_test {s.eps_test} must be one of eps_fgsm {s.eps_fgsm}")
    return replace(s.smoke() if smoke else s, dataset=dataset or s.dataset)


def replicate_seeds(seed: int, replicates: int) -> tuple[int, ...]:
    """The training seeds of a chapter run with `seed`: disjoint blocks, so another chapter seed retrains everything.

    >>> replicate_seeds(0, 3), replicate_seeds(1, 3)
    ((0, 1, 2), (3, 4, 5))
    """
    if replicates < 1 or seed < 0:
        raise ValueError(f"need seed >= 0 and replicates >= 1, got {seed}, {replicates}")
    return tuple(replicates * seed + i for i in range(replicates))


def learning_rate(s: Settings, batch_size: int, lr_scaling: float) -> float:
    """The learning rate of `batch_size`: s.lr * (batch_size / smallest batch) ** lr_scaling (0: the same for all).

    >>> learning_rate(PROFILES["quick"], 128, 1.0)
    0.2
    """
    return s.lr * (batch_size / s.batch_sizes[0]) ** lr_scaling
