import torch
import pytest

from genlens.core.data import ImageData
from genlens.lenses.randomization import corrupt_labels, gaussian_pixels, random_pixels, randomize, shuffle_pixels


def _data(n=200, c=1, h=6, w=6):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, c, h, w, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return ImageData("toy", x, y, x[:50].clone(), y[:50].clone(), tuple(map(str, range(10))))


def test_corrupt_labels_fraction_and_seed():
    y = torch.zeros(20000, dtype=torch.long)
    out = corrupt_labels(y, 0.5, 10, torch.Generator().manual_seed(0))
    # a replaced label equals the true one with probability 1/10: wrong fraction ~ 0.5 * 0.9
    assert abs((out != y).float().mean().item() - 0.45) < 0.02
    assert torch.equal(out, corrupt_labels(y, 0.5, 10, torch.Generator().manual_seed(0)))
    assert torch.equal(corrupt_labels(y, 0.0, 10, torch.Generator()), y)
    with pytest.raises(ValueError, match="fraction"):
        corrupt_labels(y, 1.5, 10, torch.Generator())


def test_shuffle_pixels_is_one_permutation_for_all_images():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float).reshape(2, 1, 3, 3)
    x[1] = x[0] * 10
    out = shuffle_pixels(x, torch.Generator().manual_seed(3))
    assert not torch.equal(out, x)
    assert torch.equal(out[1], out[0] * 10)  # same permutation on both images
    assert torch.equal(out[0].flatten().sort().values, x[0].flatten().sort().values)


def test_random_pixels_permutes_each_image_independently():
    x = torch.arange(9, dtype=torch.float).reshape(1, 1, 3, 3).repeat(50, 2, 1, 1)  # (50, 2, 3, 3)
    out = random_pixels(x, torch.Generator().manual_seed(0))
    for i in range(50):
        assert torch.equal(out[i, 0].flatten().sort().values, x[i, 0].flatten().sort().values)
        assert torch.equal(out[i, 0], out[i, 1])  # channels move together
    assert len({tuple(o[0].flatten().tolist()) for o in out}) > 40  # different permutations


def test_gaussian_pixels_match_mean_and_std():
    x = torch.rand(500, 3, 8, 8) * torch.tensor([1.0, 0.5, 0.2])[None, :, None, None]
    out = gaussian_pixels(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out.mean(dim=(0, 2, 3)), x.mean(dim=(0, 2, 3)), atol=0.01)
    assert torch.allclose(out.std(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)), rtol=0.03)


@pytest.mark.parametrize("kind", ["true", "corrupt", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"])
def test_randomize_changes_only_the_training_set(kind):
    data = _data()
    x_before, y_before = data.x_train.clone(), data.y_train.clone()
    out = randomize(data, kind, fraction=0.5, seed=0)
    assert torch.equal(out.x_test, data.x_test) and torch.equal(out.y_test, data.y_test)
    assert torch.equal(data.x_train, x_before) and torch.equal(data.y_train, y_before)  # input untouched
    changed = not (torch.equal(out.x_train, data.x_train) and torch.equal(out.y_train, data.y_train))
    assert changed == (kind != "true")
    again = randomize(data, kind, fraction=0.5, seed=0)
    assert torch.equal(again.x_train, out.x_train) and torch.equal(again.y_train, out.y_train)


def test_randomize_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        randomize(_data(), "noise")


def test_train_randomized_is_seeded_by_the_config_and_cached(tmp_path):
    from genlens.core.cache import Cache
    from genlens.core.models import build_for
    from genlens.core.train import TrainConfig, build_seeded, train
    from genlens.lenses.randomization import train_randomized

    data = _data()
    cfg = TrainConfig(epochs=1, batch_size=50, seed=5)
    kw = dict(model_kwargs={"hidden": (16,)}, fraction=0.5, data_seed=1)
    net, hist, rand = train_randomized(data, "corrupt", cfg, cache=Cache(tmp_path / "a"), **kw)
    torch.rand(7)  # the ambient RNG does not matter
    other, _, _ = train_randomized(data, "corrupt", cfg, cache=Cache(tmp_path / "b"), **kw)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    ref = build_seeded(lambda: build_for("mlp", data.image_shape, data.num_classes, hidden=(16,)), 5)
    train(ref, rand, cfg, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    assert torch.equal(rand.y_train, randomize(data, "corrupt", fraction=0.5, seed=1).y_train)
    _, again, _ = train_randomized(data, "corrupt", cfg, cache=Cache(tmp_path / "a"), **kw)
    assert again.seconds == hist.seconds  # from the cache
