"""The intrinsic chapter's gpu profile and its smoke settings (no GPU needed)."""
from genlens.book.settings_intrinsic import PROFILES
from genlens.core import models
from genlens.lenses import intrinsic

GPU = PROFILES["gpu"]


def test_gpu_profile_measures_cifar_resnets_and_a_subset_family():
    assert GPU.dataset == "cifar10" and GPU.cnn.model == "resnet20"
    assert GPU.archs["ResNet-20"].train == GPU.cnn.train  # the main network is one of the family (one cache entry)
    assert all(net.train == GPU.cnn.train for net in GPU.archs.values())
    assert GPU.fit.train.stop_at_train_acc == 1.0 and 0 < GPU.fit_subset <= 25_000
    assert 0.0 in GPU.levels and 1.0 in GPU.levels
    # CIFAR-10's own bar for "trained" (chance is 10%); quick keeps its MNIST bars
    assert 0.1 < GPU.archs_min_acc <= GPU.cnn_min_acc < PROFILES["quick"].cnn_min_acc
    assert (PROFILES["quick"].cnn_min_acc, PROFILES["quick"].archs_min_acc) == (0.9, 0.85)


def test_every_gpu_network_is_probed_at_its_layers():
    for net in [GPU.cnn, GPU.fit, *GPU.archs.values()]:
        model = models.build_for(net.model, (3, 32, 32), 10, **net.model_kwargs)
        layers = intrinsic.probe_layers(model)
        assert list(layers)[0] == "input" and list(layers)[-1] == "output" and len(layers) >= 3
        named = dict(model.named_modules())
        assert all(m.removesuffix(":in") in named for m in layers.values()), net.label


def test_smoke_shrinks_every_setting_and_keeps_the_architectures():
    for profile, settings in PROFILES.items():
        small = settings.smoke()
        assert small.n_points <= 200 and 2 <= small.n_resamples < settings.n_resamples  # the fixture: 200 images
        assert small.levels == (0.0, 1.0) and small.dataset == settings.dataset
        pairs = [(settings.cnn, small.cnn), (settings.fit, small.fit)]
        pairs += [(settings.archs[k], small.archs[k]) for k in settings.archs]
        assert list(small.archs) == list(settings.archs)
        for before, after in pairs:
            assert after.train.epochs == 1 < before.train.epochs, profile
            assert (after.model, dict(after.model_kwargs), after.label) == (before.model, dict(before.model_kwargs), before.label)
