"""The gpu profile of the hfc chapter: CIFAR-10 with the full profile's network and radii, shortened; its smoke settings."""
from dataclasses import replace

from genlens.book.settings_hfc import PROFILES


def test_gpu_runs_the_full_experiments_on_cifar10_with_shorter_training():
    gpu, full = PROFILES["gpu"], PROFILES["full"]
    assert gpu.dataset == "cifar10" and gpu.width == full.width
    assert (gpu.eps, gpu.train_steps, gpu.train_alpha, gpu.adv_optimizer) == (full.eps, full.train_steps,
                                                                              full.train_alpha, full.adv_optimizer)
    assert (gpu.track_radii, gpu.fig_radius, gpu.finding_radii, gpu.sweep_radii, gpu.defence_radii) == (
        full.track_radii, full.fig_radius, full.finding_radii, full.sweep_radii, full.defence_radii)
    assert gpu.n_seeds >= 3 and gpu.n_attack == full.n_attack
    assert gpu.train.epochs < full.train.epochs and gpu.adv_epochs < full.adv_epochs
    assert gpu.memo_subset < full.memo_subset and gpu.memo.stop_at_train_acc == 1.0


def test_radii_the_chapter_indexes_are_in_the_sweep():
    for name, s in PROFILES.items():
        assert set(s.track_radii) <= set(s.sweep_radii), name  # the HFC table looks them up in the sweep
        assert set(s.defence_finding_radii) <= set(s.defence_radii), name


def test_smoke_shrinks_every_cost_and_keeps_the_networks_and_radii():
    for name, s in PROFILES.items():
        small = s.smoke()
        assert small.train == replace(s.train, epochs=1) and small.adv_epochs == 1
        assert small.memo == replace(s.memo, epochs=3) and small.memo_subset <= 50
        assert small.n_seeds == 2 and small.n_attack <= 50  # two seeds: the t intervals still exist
        assert (small.dataset, small.width, small.memo_width, small.eps, small.train_steps) == (
            s.dataset, s.width, s.memo_width, s.eps, s.train_steps)
        assert (small.sweep_radii, small.track_radii, small.rhos) == (s.sweep_radii, s.track_radii, s.rhos)


def test_image_grid_of_no_images_is_an_empty_panel():
    # the hfc grid of images right on the HFC and wrong on the LFC can be empty (a network at chance in a smoke run)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from genlens.book import plotting

    fig, ax = plt.subplots()
    assert plotting.image_grid(ax, torch.zeros(0, 3, 32, 32), [], ncols=1, stretch=True) is ax
    assert not ax.images and not ax.axison
    plt.close(fig)
