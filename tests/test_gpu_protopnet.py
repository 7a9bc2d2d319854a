"""The protopnet chapter's gpu profile and smoke settings (genlens.book.settings_protopnet)."""
import dataclasses

import pytest

from genlens.book.settings_protopnet import PROFILES, resolve


def test_gpu_profile_runs_the_paper_prototypes_on_cifar10_with_a_resnet18():
    gpu = PROFILES["gpu"]
    assert (gpu.dataset, gpu.backbone, gpu.pretrained, gpu.augment) == ("cifar10", "resnet18", False, True)
    assert (gpu.config.prototypes_per_class, gpu.config.prototype_dim) == (10, 128)  # the paper's
    assert gpu.n_seeds >= 3 and max(gpu.config.push_epochs) == gpu.config.epochs - 1
    assert PROFILES["quick"].min_test_acc == 0.8 and 0.1 < gpu.min_test_acc < 0.8  # above chance on ten classes


@pytest.mark.parametrize("profile", ["quick", "gpu", "full"])
def test_smoke_shrinks_the_schedule_and_keeps_the_architecture(profile):
    s = PROFILES[profile]
    small = s.smoke()
    assert (small.dataset, small.backbone, small.width, small.pretrained) == (s.dataset, s.backbone, s.width, s.pretrained)
    same = ("prototypes_per_class", "prototype_dim", "batch_size", "lr_features", "lr_last_layer")
    assert all(getattr(small.config, f) == getattr(s.config, f) for f in same)
    assert small.n_seeds == 2 and small.config.epochs == 2 < s.config.epochs
    assert small.config.warm_epochs == 1 and small.config.push_epochs == (0, 1) and small.config.last_layer_epochs == 2


def test_resolve_gpu_takes_the_dataset_parameter_and_the_smoke_flag():
    s = resolve("gpu", seed=3, dataset="imagefolder:/x/cifar10-jpeg.zip", smoke=True)
    assert s.dataset == "imagefolder:/x/cifar10-jpeg.zip" and s.backbone == "resnet18" and s.width == 32
    assert s.config.seed == 3 and s.config.augment and s.config.epochs == 2 and s.n_seeds == 2
    assert resolve("gpu") == dataclasses.replace(PROFILES["gpu"], config=dataclasses.replace(PROFILES["gpu"].config,
                                                                                               augment=True))
    assert resolve("quick", smoke=False) == resolve("quick")  # quick untouched by the new flag
    with pytest.raises(ValueError, match="profile must be"):
        resolve("proxy")
