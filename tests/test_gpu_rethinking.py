"""The rethinking chapter's gpu profile and its smoke settings (no GPU needed)."""
from torch import nn

from genlens.book import configs
from genlens.book.settings_rethinking import PROFILES
from genlens.core import models

GPU = PROFILES["gpu"]


def test_every_named_network_has_a_gpu_recipe_without_a_seed():
    for name, profiles in configs.NETWORKS.items():
        assert "gpu" in profiles, name
        assert configs.network(name, "gpu").train.seed == 0, name


def test_gpu_profile_fits_the_papers_networks_on_cifar_subsets():
    assert (GPU.dataset, GPU.crop) == ("cifar10", 28)
    assert (GPU.fit_net.model, dict(GPU.fit_net.model_kwargs)) == ("mlp", {"hidden": [512]})
    assert GPU.cnn_net.model == GPU.reg_net.model == "alexnet"
    for net in (GPU.fit_net, GPU.cnn_net):  # "fitted" means every training image right, measured exactly
        assert net.train.stop_at_train_acc == 1.0 and net.train.exact_train_metrics
    # the subsets fit the 25,000-image proxy, stratified over 10 classes; quick and full train on all images
    assert all(0 < n <= 25_000 for n in (GPU.fit_subset, GPU.cnn_subset, GPU.sweep_subset, GPU.reg_subset,
                                         GPU.expressivity_n))
    assert PROFILES["quick"].fit_subset is None and PROFILES["full"].fit_subset is None
    assert GPU.levels[0] == 0.0 and GPU.levels[-1] == 1.0


def test_table1_regimes_build_for_the_gpu_network():
    """Every regime of Table 1 (weight decay, dropout, crops) builds: small AlexNet takes a dropout."""
    for config in (GPU.reg_net, GPU.reg_net.variant(model_kwargs={"dropout": GPU.dropout})):
        net = models.build_for(config.model, (3, 28, 28), 10, **config.model_kwargs)
        assert any(isinstance(m, nn.Dropout) for m in net.modules()) == ("dropout" in config.model_kwargs)
        assert models.count_parameters(net) == 1_387_786  # dropout adds no weights (Table 1's count)


def test_smoke_shrinks_every_setting_and_keeps_the_architectures():
    for profile, settings in PROFILES.items():
        small = settings.smoke()
        for name in ("fit_net", "cnn_net", "reg_net"):
            before, after = getattr(settings, name), getattr(small, name)
            assert after.train.epochs == 1 < before.train.epochs, (profile, name)
            assert (after.model, dict(after.model_kwargs)) == (before.model, dict(before.model_kwargs))
        # the fixture (book.smoke.write_cifar_like) has 200 training and 100 test images
        assert max(small.fit_subset, small.sweep_subset, small.reg_subset) <= 200 and small.cnn_subset <= 100
        assert small.reg_seeds >= 2 and small.lsq_seeds >= 2 and max(small.lsq_n, small.expressivity_n) <= 200
        assert small.levels == (0.0, 1.0)
        assert (small.dataset, small.crop) == (settings.dataset, settings.crop)
