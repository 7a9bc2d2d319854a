"""genlens.book.settings_landscape: the gpu profile and its smoke version."""
import dataclasses

from genlens.book.settings_landscape import PROFILES


def test_gpu_profile_runs_the_papers_networks_on_cifar():
    s = PROFILES["gpu"]
    assert s.dataset == "cifar10" and s.pool == 1 and s.batch_cnn[0] == "vgg" and 56 in s.depths
    assert s.batch_sizes[1] >= 8 * s.batch_sizes[0] and s.n_seeds >= 3
    assert s.res_cfg.epochs < PROFILES["full"].res_cfg.epochs and s.grid_1d % 2 == 1


def test_gpu_smoke_keeps_the_networks_and_shrinks_the_rest():
    s, small = PROFILES["gpu"], PROFILES["gpu"].smoke()
    assert (small.batch_cnn, small.batch_sizes, small.depths, small.widths) == (s.batch_cnn, s.batch_sizes, s.depths,
                                                                                s.widths)
    assert small.res_cfg == dataclasses.replace(s.res_cfg, epochs=1, batch_size=64) and small.batch_epochs == 1
    assert small.grid < s.grid and small.n_eval < s.n_eval and small.hess_points < s.hess_points
    assert small.n_seeds == 2 and small.hess_points >= 2
