"""Profile settings of the `landscape` chapter, one frozen dataclass per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..core.train import TrainConfig


@dataclass(frozen=True)
class Settings:
    """What a profile of the landscape chapter trains, and the sizes of its grids and Hessians."""

    dataset: str  # the profile's data set
    pool: int  # average-pooling factor of the images (2: 28x28 -> 14x14)
    n_train: int | None  # training images of the residual networks (None: all)
    batch_cnn: tuple[str, Mapping]  # the network of Section 1: model name and arguments
    batch_sizes: tuple[int, int]  # small and large batch of Section 1
    batch_epochs: int
    batch_lr: float  # SGD learning rate per step
    depths: tuple[int, ...]  # residual-network depths 6n + 2 of Section 2
    widths: tuple[int, ...]  # width multipliers of Section 3
    width_depth: int  # the depth of Section 3's networks
    res_cfg: TrainConfig  # recipe of every residual network (the seed is the chapter's)
    grid: int  # points per axis of the 2-D grids
    grid_1d: int  # points of the 1-D plots on [-1, 1] (odd, with -0.5 and 0.5 on the grid)
    grid_interp: int  # points of the interpolation on [-0.5, 1.5] (with -0.2 and 1.2 on the grid)
    n_seeds: int  # training seeds of Section 1's networks and of the trajectories (the findings' spread)
    n_eval: int  # training images under the 2-D surfaces
    n_eval_1d: int  # training images under the 1-D plots
    hess_n: int  # training images of every Hessian
    hess_steps: int  # Lanczos steps per point
    hess_points: int  # random points of random planes per network for the Hessian ratio
    traj_depth: int  # depth of the network whose training path is drawn
    traj_epochs: int  # its epochs (one snapshot after each; the recipe is res_cfg's)

    def smoke(self) -> Settings:
        """One epoch (batches of at most 64, so that BatchNorm's running statistics move a few steps), all
        (already subsetted) training images, 5x5 grids, 32 evaluation images, small Hessians: the code path only."""
        return replace(self, n_train=None, batch_epochs=1,
                       res_cfg=replace(self.res_cfg, epochs=1, batch_size=min(self.res_cfg.batch_size, 64)), grid=5,
                       grid_1d=5, n_seeds=2, n_eval=32, n_eval_1d=32, hess_n=16, hess_steps=5,
                       hess_points=4, traj_epochs=3)


PROFILES = {
    "quick": Settings(
        dataset="mnist5k", pool=2, n_train=1000,
        batch_cnn=("cnn", {"width": 8}), batch_sizes=(32, 256), batch_epochs=10, batch_lr=0.05,
        depths=(8, 20, 32), widths=(1, 2), width_depth=20,
        res_cfg=TrainConfig(epochs=8, batch_size=64, lr=0.05, schedule="cosine", weight_decay=5e-4),
        grid=11, grid_1d=9, grid_interp=21, n_seeds=3, n_eval=128, n_eval_1d=500,
        hess_n=32, hess_steps=10, hess_points=12, traj_depth=8, traj_epochs=8,
    ),
    # One GPU inside the book's 10-minute gpu run (4 chapters share an H200): the paper's networks on the
    # CIFAR-10 proxy, shortened. Sized from a measured H200 run (2026-11-30, beside the hessian chapter) of
    # an earlier, larger version that took over 6 minutes: 12 VGGs x 8 epochs (batches 128 / 2048) 44 s;
    # 1-D plots (2,520 points on 2,000 images) 49 s; batch 2-D plots (4 x 21x21) 26 s; four ResNet-20/56
    # x 6 epochs at batch 512 with their 21x21 surfaces 112 s; widths 2 and 4 with surfaces and patches 86 s;
    # non-convexity patches 35 s; Hessian ratios (8 points, 128 images) 9 s, converged check 5 s; one HVP of
    # ResNet-56-noshort on 256 images 190 ms, of ResNet-20 80 ms. This version (scaled from those cells,
    # shared GPU): Section 1 ~30 s + 1-D ~10 s + 2-D ~7 s; residual nets (392 steps each, launch-bound)
    # with 15x15 surfaces on 1,000 images ~75 s; width 2 ~15 s; patches ~15 s; Hessians ~15 s;
    # trajectories (3 ResNet-20 x 4 epochs) ~15 s: ~180 s, NOT yet measured.
    "gpu": Settings(
        dataset="cifar10", pool=1, n_train=None,
        batch_cnn=("vgg", {}), batch_sizes=(128, 1024), batch_epochs=6, batch_lr=0.05,
        depths=(20, 56), widths=(1, 2), width_depth=20,
        res_cfg=TrainConfig(epochs=4, batch_size=256, lr=0.1, schedule="cosine", weight_decay=5e-4),
        grid=15, grid_1d=9, grid_interp=21, n_seeds=3, n_eval=1000, n_eval_1d=1000,
        hess_n=128, hess_steps=10, hess_points=8, traj_depth=20, traj_epochs=4,
    ),
    "full": Settings(  # scaled to about 5 minutes on one H100; the paper's values are in the chapter's text
        dataset="cifar10", pool=1, n_train=None,
        batch_cnn=("vgg", {}), batch_sizes=(128, 4096), batch_epochs=15, batch_lr=0.1,
        depths=(20, 56), widths=(1, 2, 4), width_depth=20,
        res_cfg=TrainConfig(epochs=15, batch_size=128, lr=0.1, schedule="cosine", weight_decay=5e-4, augment=True),
        grid=25, grid_1d=41, grid_interp=41, n_seeds=3, n_eval=2000, n_eval_1d=2000,
        hess_n=256, hess_steps=15, hess_points=24, traj_depth=20, traj_epochs=15,
    ),
}
