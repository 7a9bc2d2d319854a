"""Profile settings of the `zoo` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from ..zoo.claims import CLAIMS, Claim
from ..zoo.grid import ZooModel, grid
from ..zoo.measures import MeasureSettings
from ..zoo.run import ZooJob


@dataclass(frozen=True)
class Settings:
    """What a profile of the zoo chapter trains and how it measures every model."""

    dataset: str  # the profile's data set
    n_train: int | None  # training images of every model (a stratified subset; None: all)
    n_test: int | None  # test images (None: all)
    pool: int  # average-pooling factor of the images (2: 28x28 -> 14x14)
    max_epochs: int  # a model stops earlier once an epoch fits every training label
    base: ZooModel
    variations: Mapping[str, tuple]  # factor -> its values (one factor at a time around `base`)
    crossed: tuple[tuple[str, str], ...]  # factor pairs trained on their full product
    seeds: tuple[int, ...]  # seed replicates of the base model: the noise floor
    replicated: tuple[str, ...] = ()  # factors whose every model is also trained at each of `seeds` (claims' spread)
    measures: MeasureSettings = field(default_factory=MeasureSettings)
    n_boot: int = 2000  # bootstrap resamples of the models for the taus' intervals
    workers: int = 1  # local worker processes (the machine's cores split between them)
    base_min_acc: float = 0.9  # the check that the base model learned: its test accuracy
    claims: tuple[Claim, ...] = CLAIMS  # the book's papers' claims tested across the zoo

    def with_seed(self, seed: int) -> Settings:
        """The same grid from another draw: the base model at `seed`, its replicates at the next seeds."""
        return replace(self, base=replace(self.base, seed=seed), seeds=tuple(seed + 1 + i for i in range(len(self.seeds))))

    def grid(self) -> tuple[ZooModel, ...]:
        """The profile's zoo, in the table's order (`genlens.zoo.grid.grid`)."""
        return grid(self.base, self.variations, crossed=self.crossed, seeds=self.seeds, replicated=self.replicated)

    def jobs(self, dataset: str, device: str = "cpu") -> list[ZooJob]:
        """One job per model of the zoo (`grid`), each on `dataset` (the profile's or a reader's) on `device`
        (a device type, e.g. "cpu"), with every lens that can run."""
        return [ZooJob(m, self.base, dataset, self.n_train, self.n_test, self.pool, self.max_epochs, self.measures, None,
                       device) for m in self.grid()]

    def smoke(self) -> Settings:
        """Two factors at two values each, one epoch, every lens at its smallest: the code path only."""
        two = {k: v[:2] for k, v in list(self.variations.items())[:2]}
        return replace(self, n_train=min(self.n_train or 200, 200), n_test=min(self.n_test or 100, 100), max_epochs=1,
                       variations=two, crossed=(), seeds=self.seeds[:1], replicated=(), measures=self.measures.smoke(),
                       n_boot=200)


QUICK_VARIATIONS = {
    "batchnorm": (True, False),
    "batch_size": (16, 32, 64, 128, 256, 512),
    "width": (4, 8, 16, 32, 48),
    "blocks": (1, 2, 3, 4),
    "shortcut": (True, False),
    "weight_decay": (0.0, 1e-4, 5e-4, 2e-3, 5e-3),
    "augment": (False, True),
    "label_noise": (0.0, 0.1, 0.2, 0.3, 0.5),
    "lr": (0.01, 0.025, 0.05, 0.1, 0.2),
}

PROFILES = {
    # 51 models of about 10k parameters on 1,000 MNIST digits at 14x14; about 2.5 s of training and 2 s of
    # measuring each on one core, two models at a time on a 2-core CPU.
    # The lenses at half the hfc chapter's radius (the images are half the size: the same band of relative
    # frequencies) and at PGD eps 0.05, not the adversarial chapter's 0.1, under which nearly every zoo model
    # keeps no accuracy (measured, base model: 0.04) and the ranking would be all ties.
    "quick": Settings(dataset="mnist5k", n_train=1000, n_test=1000, pool=2, max_epochs=40, base=ZooModel(),
                      variations=QUICK_VARIATIONS, crossed=(("blocks", "shortcut"),), seeds=(1, 2),
                      replicated=("batch_size", "width"), measures=MeasureSettings(hf_radius=2.0, pgd_eps=0.05),
                      workers=2),
    # CIFAR-10 (the JPEG proxy on the GPU machine) at 32x32, wider models, 5,000 training images. Estimated, not
    # measured: a width-32 ZooCNN epoch on 5,000 images ~0.1 s on an H100 (README's CNN width 64: 0.19 s per
    # 25,000 images at batch 512, launch-bound at small batches), at most 30 epochs: ~3 s per model, ~130 s for
    # the 42 models, plus ~2 s of lenses each (Lanczos, L-BFGS, PAC-Bayes search): about 4 minutes alone.
    "gpu": Settings(dataset="cifar10", n_train=5000, n_test=2000, pool=1, max_epochs=30, base_min_acc=0.4,
                    base=ZooModel(width=32, batch_size=128),
                    variations={**QUICK_VARIATIONS, "width": (16, 32, 64, 96), "batch_size": (32, 64, 128, 256, 512, 1024)},
                    crossed=(("blocks", "shortcut"),), seeds=(1, 2), replicated=("batch_size",),
                    measures=MeasureSettings(hf_radius=4.0, pgd_eps=8 / 255, n_hessian=512)),
    # Jiang et al.'s setting: CIFAR-10, every training image, trained to fit.
    "full": Settings(dataset="cifar10", n_train=None, n_test=None, pool=1, max_epochs=200, base_min_acc=0.7,
                     base=ZooModel(width=64, batch_size=128),
                     variations={**QUICK_VARIATIONS, "width": (32, 64, 128, 192), "batch_size": (32, 64, 128, 256, 512, 1024)},
                     crossed=(("blocks", "shortcut"),), seeds=(1, 2), replicated=("batch_size", "width"),
                     measures=MeasureSettings(hf_radius=4.0, pgd_eps=8 / 255, n_hessian=1000, n_pgd=1000, n_lbfgs=100)),
}

# The direction in which each measure is expected to grow with the gap, fixed before any run: complexity,
# sharpness and curvature grow with it, robustness is expected to fall (the comments name who expects what).
SIGNS: dict[str, int] = {
    # the book's expectation, not a claim of Wang et al. 2020 about the gap: a model that relies
    # more on the high frequencies generalizes worse. Their nearest words: the model "will perceive both
    # high-frequency components as well as the “semantic” ones, leading to generalization behaviors
    # counterintuitive to human (e.g., adversarial examples)" (Wang et al. 2020, Fig. 1 caption; quoted in chapter hfc)
    "hf_reliance": 1,
    "sharpness": 1,  # Li et al. 2018, Keskar et al. 2017: sharper minima generalize worse
    "hessian_top": 1, "hessian_trace": 1,  # Yao et al. 2018: larger spectrum, larger gap
    "pgd_acc": -1,  # a more robust model is expected to generalize better
    "lbfgs_distortion": -1,  # a larger minimal adversarial distortion: more robust
    "id_last": 1,  # Ansuini et al. 2019: lower last-layer ID, better test accuracy
    "dist_init": 1, "path_norm": 1, "spectral_margin": 1,  # norm-based bounds (Jiang et al. 2020)
    "pacbayes_flatness": 1,  # 1 / sigma'^2: sharper, larger bound
    "ww_alpha": 1,  # WeightWatcher: a smaller alpha is expected of a better-trained layer
}
