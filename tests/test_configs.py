"""genlens.book.configs: named networks train through the shared cache, once per name, data and seed."""
import pytest
import torch

from genlens.book import configs
from genlens.book.configs import NetworkConfig, network
from genlens.core.cache import Cache
from genlens.core.data import ImageData
from genlens.core.train import TrainConfig
from genlens.lenses.randomization import randomize


def _tiny_data() -> ImageData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 1, 4, 4, generator=g), torch.randint(0, 3, (48,), generator=g)
    return ImageData("tiny", x[:32], y[:32], x[32:], y[32:], ("a", "b", "c"))


TINY = NetworkConfig("MLP 1x8", "mlp", {"hidden": [8]}, TrainConfig(epochs=2, batch_size=8, lr=0.1))


def _entries(cache: Cache) -> int:
    return len(list(cache.root.rglob("*.pt")))


def test_fit_trains_once_per_name_data_randomization_and_seed(tmp_path):
    cache, data = Cache(tmp_path), _tiny_data()
    net, history, randomized = TINY.fit(data, "random_labels", seed=1, cache=cache)
    assert _entries(cache) == 1 and len(history.epoch) == 2 and not net.training
    # the randomization is drawn from the seed, and the test set keeps its labels
    assert torch.equal(randomized.y_train, randomize(data, "random_labels", seed=1).y_train)
    assert torch.equal(randomized.y_test, data.y_test)
    # an equal configuration built elsewhere (another chapter) gets the cached weights
    twin = NetworkConfig("another label", "mlp", {"hidden": [8]}, TrainConfig(epochs=2, batch_size=8, lr=0.1))
    again, _, _ = twin.fit(data, "corrupt", fraction=1.0, seed=1, cache=cache)  # random labels, by another name
    assert _entries(cache) == 1
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    TINY.fit(data, "random_labels", seed=2, cache=cache)
    TINY.variant(weight_decay=1e-4).fit(data, "random_labels", seed=1, cache=cache)
    TINY.variant(model_kwargs={"hidden": [9]}).fit(data, "random_labels", seed=1, cache=cache)
    assert _entries(cache) == 4


def test_variant_changes_only_what_it_names():
    v = TINY.variant(label="wide", model_kwargs={"activation": "sigmoid"}, lr=0.5)
    assert (v.label, dict(v.model_kwargs), v.train.lr, v.train.epochs) == ("wide", {"hidden": [8], "activation": "sigmoid"},
                                                                            0.5, 2)
    assert dict(TINY.model_kwargs) == {"hidden": [8]} and TINY.train.lr == 0.1
    with pytest.raises(TypeError):
        TINY.variant(learning_rate=0.5)  # not a TrainConfig field


def test_named_networks_and_errors():
    for name, profiles in configs.NETWORKS.items():
        assert set(profiles) == {"quick", "gpu", "full"}, name
        for profile, config in profiles.items():
            assert network(name, profile) is config
            assert config.train.seed == 0, "fit sets the seed; a named recipe must not carry one"
    with pytest.raises(ValueError, match="unknown network 'nosuch'; known networks: rethinking-fit"):
        network("nosuch", "quick")
    with pytest.raises(ValueError, match="network 'rethinking-fit' has no profile 'huge'; profiles: quick, full, gpu"):
        network("rethinking-fit", "huge")
