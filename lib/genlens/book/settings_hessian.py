"""Profile settings of the `hessian` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class Settings:
    """What a profile of the hessian chapter trains and measures."""

    dataset: str  # a genlens.core.data.load name
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


PROFILES = {
    # CPU: 4,000 MNIST digits, a one-hidden-layer MLP, three seeds per batch size
    "quick": Settings(dataset="mnist5k", model=("mlp", {"hidden": [128]}), model_name="MLP 784-128-10",
                      batch_sizes=(32, 128, 512, 2048), replicates=3, epochs=20, lr=0.05, target_loss=0.1,
                      max_epochs=400, hessian_samples=1000, hessian_batch=1000, top_k=20,
                      eps_fgsm=(0.01, 0.02, 0.05, 0.1), eps_test=0.05, eps_pgd=0.02, pgd_steps=10, adv_eps=0.1,
                      input_images=500, input_steps=20, trace_probes=100, slq_runs=10, slq_steps=40,
                      steps=tuple(np.linspace(-1.0, 1.0, 21).tolist())),
    # one GPU: the paper's CIFAR-10 setting with a C1-like network
    "full": Settings(dataset="cifar10", model=("alexnet", {}), model_name="C1-like (small AlexNet)",
                     batch_sizes=(128, 512, 2048, 8192), replicates=3, epochs=60, lr=0.02, target_loss=0.1,
                     max_epochs=600, hessian_samples=5000, hessian_batch=1000, top_k=20,
                     eps_fgsm=(1 / 255, 2 / 255, 4 / 255, 8 / 255), eps_test=4 / 255, eps_pgd=2 / 255, pgd_steps=10,
                     adv_eps=4 / 255, input_images=1000, input_steps=30, trace_probes=100, slq_runs=10,
                     slq_steps=80, steps=tuple(np.linspace(-1.0, 1.0, 21).tolist())),
}


def resolve(profile: str, *, dataset: str = "") -> Settings:
    """The profile's settings, on `dataset` where one is given (else the profile's own)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    s = PROFILES[profile]
    if s.eps_test not in s.eps_fgsm:
        raise ValueError(f"eps_test {s.eps_test} must be one of eps_fgsm {s.eps_fgsm}")
    return replace(s, dataset=dataset or s.dataset)


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
