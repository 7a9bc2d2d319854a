"""genlens.core.train: determinism, resumable cached training, history, augmentation, evaluation, schedules."""

from __future__ import annotations

import copy
import json
import math
import warnings
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.core.cache import Cache, CorruptCacheEntry, config_key
from genlens.core.data import ImageData
from genlens.core.models import MLP
from genlens.core.train import (History, Phase, TrainConfig, augment_batch, build_seeded, cross_entropy, evaluate,
                               layer_groups,
                                predict, train, train_cached)


@pytest.fixture(autouse=True)
def _quiet_single_threaded(monkeypatch):
    """No progress bars; one intra-op thread: these models are tiny, and on a busy 2-core machine
    OpenMP threads spinning at barriers make each step ~100x slower."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_data(n_train: int = 256, n_test: int = 64, seed: int = 0) -> ImageData:
    """Random 1x8x8 images; the label (4 classes) says which half is brighter, top/bottom and left/right."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train + n_test, 1, 8, 8, generator=g)
    top = x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))
    left = x[:, 0, :, :4].mean((1, 2)) > x[:, 0, :, 4:].mean((1, 2))
    y = top.long() * 2 + left.long()
    return ImageData("tiny", x[:n_train], y[:n_train], x[n_train:], y[n_train:], ("a", "b", "c", "d"))


DATA = tiny_data()
CFG = TrainConfig(epochs=4, batch_size=64, lr=0.05, momentum=0.9, augment=True, seed=3)
LEARN = TrainConfig(epochs=4, batch_size=64, lr=0.2, seed=3)  # no augmentation: learns within a few epochs


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(in_features=64, hidden=(32,), num_classes=4, dropout=0.1)


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def curves(h: History) -> dict:
    """Everything in a history except wall-clock seconds, which no two runs share."""
    d = h.to_dict()
    del d["seconds"]
    return d


# --------------------------------------------------------------------------- determinism

def test_train_is_deterministic_in_the_seed():
    m1 = build_model()
    h1 = train(m1, DATA, CFG, progress=False)
    m2 = build_model()
    torch.rand(1000)  # the ambient global RNG state (used by dropout) must not matter
    h2 = train(m2, DATA, CFG, progress=False)
    assert_state_equal(m1.state_dict(), m2.state_dict())
    assert curves(h1) == curves(h2)

    m3 = build_model()
    h3 = train(m3, DATA, TrainConfig(**{**asdict(CFG), "seed": 4}), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))
    assert h3.train_loss != h1.train_loss


def test_train_history_and_final_state():
    model = build_model()
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    h = train(model, DATA, LEARN, progress=False)
    assert not model.training
    assert h.epoch == [0, 1, 2, 3]
    assert h.lr == [LEARN.lr_at(e) for e in range(4)]
    for name in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds"):
        assert len(getattr(h, name)) == 4
    assert all(0 <= a <= 1 and (a * len(DATA.y_train)).is_integer() for a in h.train_acc)
    assert all(s > 0 for s in h.seconds)
    # the last epoch's test metrics are those of the returned model
    loss, acc = evaluate(model, DATA.x_test, DATA.y_test)
    assert h.test_loss[-1] == pytest.approx(loss, abs=1e-6) and h.test_acc[-1] == acc
    # it learned something on this easy task, and changed the weights
    assert h.train_loss[-1] < h.train_loss[0]
    assert any(not torch.equal(model_before[k], v) for k, v in model.state_dict().items())


def test_lr_is_applied_to_the_optimizer():
    """With lr 0 from epoch 1 on, later epochs leave the weights exactly as after epoch 0."""
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, schedule="exponential", lr_decay=0.0, seed=1)
    m1, m3 = build_model(), build_model()
    train(m1, DATA, cfg, progress=False)
    h = train(m3, DATA, TrainConfig(**{**asdict(cfg), "epochs": 3}), progress=False)
    assert h.lr == [0.05, 0.0, 0.0]
    assert_state_equal(m1.state_dict(), m3.state_dict())


def test_adam_and_bad_optimizer():
    model = build_model()
    h = train(model, DATA, TrainConfig(epochs=2, lr=0.01, optimizer="adam"), progress=False)
    assert h.train_loss[-1] < h.train_loss[0]
    with pytest.raises(ValueError, match="optimizer"):
        train(build_model(), DATA, TrainConfig(optimizer="lbfgs"), progress=False)  # type: ignore[arg-type]


def test_stop_at_train_acc_stops_early():
    full = train(build_model(), DATA, TrainConfig(**{**asdict(LEARN), "epochs": 8}), progress=False)
    target = full.train_acc[3]
    stop = full.epochs_to_reach(target)
    assert stop is not None and 1 < stop < 8
    states = []
    cfg = TrainConfig(**{**asdict(LEARN), "epochs": 8, "stop_at_train_acc": target})
    h = train(build_model(), DATA, cfg, progress=False, checkpoint=states.append)
    assert len(h.epoch) == stop
    assert h.train_acc[-1] >= target and all(a < target for a in h.train_acc[:-1])
    assert curves(h) == {k: v[:stop] if isinstance(v, list) else v for k, v in curves(full).items()}
    # the final checkpoint says "finished", so a resume trains no further
    assert [s["epoch"] for s in states] == list(range(1, stop)) + [8]
    # with checkpoints at most every hour, only the final one is written
    sparse = []
    train(build_model(), DATA, cfg, progress=False, checkpoint=sparse.append, checkpoint_every=3600.0)
    assert [s["epoch"] for s in sparse] == [8]


def test_stop_at_train_loss_stops_early():
    full = train(build_model(), DATA, TrainConfig(**{**asdict(LEARN), "epochs": 8, "exact_train_metrics": True}),
                 progress=False)
    target = full.train_loss[3]
    stop = next(e + 1 for e, loss in enumerate(full.train_loss) if loss <= target)
    assert 1 < stop < 8
    cfg = TrainConfig(**{**asdict(LEARN), "epochs": 8, "exact_train_metrics": True, "stop_at_train_loss": target})
    h = train(build_model(), DATA, cfg, progress=False)
    assert len(h.epoch) == stop and h.train_loss[-1] <= target and all(v > target for v in h.train_loss[:-1])
    assert h.train_loss == full.train_loss[:stop]
    assert "stop_at_train_loss" not in TrainConfig().changed()  # off by default: other runs' cache keys unchanged


def test_callback_and_perturb():
    seen_modes, perturbed = [], []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = MLP(in_features=64, hidden=(16,), num_classes=4)

        def forward(self, x):
            seen_modes.append(self.training)
            return self.net(x)

    def perturb(model, x, y):
        perturbed.append(len(x))
        model.eval()  # e.g. an attack; train() must switch the model back for the step
        with torch.no_grad():
            model(x)
        seen_modes.clear()
        return x + 0.01

    def callback(epoch, model, history):
        history.extra.setdefault("epoch_sq", []).append(float(epoch**2))

    torch.manual_seed(0)
    model = Spy()
    h = train(model, DATA, TrainConfig(epochs=2, batch_size=100), perturb=perturb, callback=callback,
              progress=False)
    assert perturbed == [100, 100, 56] * 2
    assert h.extra == {"epoch_sq": [0.0, 1.0]}
    # after each perturbation the training forward ran in train mode (the spy keeps the last ones)
    assert seen_modes and seen_modes[0] is True


def test_device_mismatch_raises_naming_both_devices():
    model = build_model().to("meta")
    with pytest.raises(ValueError) as info:
        train(model, DATA, CFG, progress=False)
    assert "meta" in str(info.value) and "cpu" in str(info.value)


# --------------------------------------------------------------------------- train_cached

class Interrupt(Exception):
    pass


def test_train_cached_resumes_after_interruption(tmp_path):
    cfg = TrainConfig(**{**asdict(CFG), "epochs": 6})
    spec = {"model": "mlp-tiny", "data": "tiny"}
    k = 3

    reference = build_model()
    ref_history = train(reference, DATA, cfg, progress=False,
                        callback=lambda e, m, h: h.extra.setdefault("e", []).append(float(e)))

    cache = Cache(tmp_path)
    seen: list[int] = []
    interrupt = [True]

    def callback(epoch, model, history):
        seen.append(epoch)
        if epoch == k and interrupt[0]:
            interrupt[0] = False
            raise Interrupt
        history.extra.setdefault("e", []).append(float(epoch))

    with pytest.raises(Interrupt):
        train_cached(build_model, DATA, cfg, spec=spec, cache=cache, callback=callback, progress=False)
    assert seen == [0, 1, 2, 3]
    (ckpt,) = (tmp_path / "models").glob("*.ckpt.pt")
    key = ckpt.name.removesuffix(".ckpt.pt")
    assert cache.load("models", key) is None
    # the checkpoint is written after the callback, so the last one is from the end of epoch k-1
    state = cache.load_checkpoint("models", key)
    assert state["epoch"] == k and state["history"]["epoch"] == list(range(k))

    seen.clear()
    model, history = train_cached(build_model, DATA, cfg, spec=spec, cache=cache, callback=callback, progress=False)
    assert seen == list(range(k, 6))  # resumed, not restarted
    assert not model.training
    assert_state_equal(model.state_dict(), reference.state_dict())
    assert curves(history) == curves(ref_history)
    assert history.seconds[:k] == state["history"]["seconds"]  # the first call's epochs were kept
    assert not ckpt.exists()
    assert cache.load("models", key) is not None
    sidecar = json.loads((tmp_path / "models" / f"{key}.json").read_text())
    assert sidecar["config"]["spec"] == spec and sidecar["config"]["train"]["epochs"] == 6

    seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, again_history = train_cached(lambda: build_model(seed=99), DATA, cfg, spec=spec, cache=cache,
                                            callback=callback, progress=False)
    assert seen == []
    assert_state_equal(again.state_dict(), reference.state_dict())
    assert again_history.to_dict() == history.to_dict()
    assert not again.training


def test_train_cached_key_depends_on_spec_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path))  # default Cache() root
    cfg = TrainConfig(epochs=1, batch_size=64)
    calls = []

    def cb(epoch, model, history):
        calls.append(epoch)

    m1, _ = train_cached(build_model, DATA, cfg, spec={"model": "a"}, callback=cb, progress=False)
    train_cached(build_model, DATA, cfg, spec={"model": "a"}, callback=cb, progress=False)
    assert calls == [0]
    train_cached(build_model, DATA, cfg, spec={"model": "b"}, callback=cb, progress=False)
    train_cached(build_model, DATA, TrainConfig(epochs=1, batch_size=32), spec={"model": "a"}, callback=cb,
                 progress=False)
    assert calls == [0, 0, 0]
    assert len(list((tmp_path / "models").glob("*.pt"))) == 3
    assert not list((tmp_path / "models").glob("*.ckpt.pt"))


def test_train_cached_recovers_from_corrupt_checkpoint(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, seed=5)
    cache = Cache(tmp_path)
    with pytest.raises(Interrupt):
        train_cached(build_model, DATA, cfg, spec={}, cache=cache, progress=False,
                     callback=lambda e, m, h: (_ for _ in ()).throw(Interrupt) if e == 1 else None)
    (ckpt,) = (tmp_path / "models").glob("*.ckpt.pt")
    ckpt.write_bytes(b"not a checkpoint")
    seen = []
    with pytest.warns(CorruptCacheEntry):
        model, history = train_cached(build_model, DATA, cfg, spec={}, cache=cache, progress=False,
                                      callback=lambda e, m, h: seen.append(e))
    assert seen == [0, 1]  # started over
    reference = build_model()
    train(reference, DATA, cfg, progress=False)
    assert_state_equal(model.state_dict(), reference.state_dict())


# --------------------------------------------------------------------------- History

def test_history_epochs_to_reach():
    h = History(epoch=[0, 1, 2, 3], train_acc=[0.2, 0.6, 0.5, 0.9])
    assert h.epochs_to_reach(0.0) == 1
    assert h.epochs_to_reach(0.5) == 2
    assert h.epochs_to_reach(0.6) == 2
    assert h.epochs_to_reach(0.7) == 4
    assert h.epochs_to_reach(0.9) == 4
    assert h.epochs_to_reach(0.95) is None
    assert History().epochs_to_reach(0.1) is None


def test_history_round_trip_and_throughput():
    h = History(epoch=[0, 1], lr=[0.1, 0.05], train_loss=[2.0, 1.0], train_acc=[0.25, 0.5],
                test_loss=[2.1, 1.2], test_acc=[0.2, 0.4], seconds=[0.5, 1.5], extra={"norm": [3.0, 4.0]})
    d = h.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON-able data
    back = History.from_dict(d)
    assert back == h and back is not h
    assert History.from_dict(json.loads(json.dumps(d))) == h
    d["epoch"].append(2)
    assert h.epoch == [0, 1] and back.epoch == [0, 1]
    assert h.images_per_second(100) == pytest.approx(100 * 2 / 2.0)


# --------------------------------------------------------------------------- augment_batch

def test_augment_batch_shape_determinism_and_input_untouched():
    x = torch.rand(32, 3, 8, 8)
    x0 = x.clone()
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    c = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype and a.is_contiguous()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, x0)


def test_augment_batch_without_padding_only_flips():
    x = torch.rand(1000, 2, 5, 6)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=0)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert (same ^ flipped).all()
    assert 400 < int(flipped.sum()) < 600


def test_augment_batch_is_a_shifted_maybe_flipped_copy():
    pad = 2
    B, C, H, W = 300, 3, 6, 7
    x = torch.rand(B, C, H, W) + 0.1  # no zeros, so padding is recognizable
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=pad)
    found = set()
    for i in range(B):
        matches = []
        for flip in (False, True):
            src = F.pad(x[i].flip(-1) if flip else x[i], (pad, pad, pad, pad))
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    if torch.equal(out[i], src[:, dy : dy + H, dx : dx + W]):
                        matches.append((flip, dy, dx))
        assert len(matches) == 1, (i, matches)
        found.add(matches[0])
    assert len(found) > 40  # out of 2 * 25: shifts and flips are both random


# --------------------------------------------------------------------------- predict / evaluate

class Toy(nn.Module):
    """Output depends on the mode (dropout), and forward can be told to fail."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 4))
        self.fail = False

    def forward(self, x):
        if self.fail:
            raise RuntimeError("forward failed")
        return self.net(x)


@pytest.mark.parametrize("training", [True, False])
def test_predict_and_evaluate_use_eval_mode_and_restore_it(training):
    model = Toy().train(training)
    x, y = DATA.x_test, DATA.y_test
    model.eval()
    with torch.no_grad():
        expected = model(x)
    model.train(training)

    logits = predict(model, x, batch_size=7)
    assert model.training is training
    assert logits.shape == (len(x), 4) and logits.dtype == torch.float32 and not logits.requires_grad
    torch.testing.assert_close(logits, expected)

    loss, acc = evaluate(model, x, y, batch_size=10)
    assert model.training is training
    manual_acc = sum(int(expected[i].argmax()) == int(y[i]) for i in range(len(y))) / len(y)
    assert acc == pytest.approx(manual_acc)
    manual_loss = -sum(torch.log_softmax(expected[i], 0)[y[i]].item() for i in range(len(y))) / len(y)
    assert loss == pytest.approx(manual_loss, rel=1e-5)

    model.fail = True
    with pytest.raises(RuntimeError):
        predict(model, x)
    assert model.training is training


def test_predict_empty_input():
    assert predict(Toy(), torch.zeros(0, 1, 8, 8)).numel() == 0


# --------------------------------------------------------------------------- schedules

def test_lr_schedules():
    const = TrainConfig(lr=0.1, epochs=10)
    assert [const.lr_at(e) for e in range(10)] == [0.1] * 10

    exp = TrainConfig(lr=0.1, schedule="exponential", lr_decay=0.5)
    assert [exp.lr_at(e) for e in range(4)] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert TrainConfig(lr=1.0, schedule="exponential").lr_at(10) == pytest.approx(0.95**10)

    cos = TrainConfig(lr=0.2, schedule="cosine", epochs=10)
    values = [cos.lr_at(e) for e in range(10)]
    assert values[0] == pytest.approx(0.2) and cos.lr_at(5) == pytest.approx(0.1)
    assert cos.lr_at(10) == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert cos.lr_at(3) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.3)))

    step = TrainConfig(lr=1.0, schedule="step", lr_steps=(2, 5))
    assert [step.lr_at(e) for e in range(7)] == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    assert TrainConfig(lr=0.3, schedule="step").lr_at(100) == 0.3


def test_mixup_option_off_by_default_and_out_of_cache_keys(tmp_path):
    """mixup is default-off; options at their defaults stay out of the key; when on it is repeatable."""
    assert TrainConfig().mixup == 0.0
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    data = ImageData("mix", x, y, x[:16], y[:16], ("a", "b", "c"))

    def build():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))

    cache = Cache(tmp_path)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1)
    train_cached(build, data, cfg, spec={"t": 1}, cache=cache, progress=False)
    written = {"spec": {"t": 1}, "train": {"epochs": 2, "batch_size": 16, "lr": 0.1}, "device": "cpu", "format": 2}
    assert cache.load("models", config_key(written)) is not None
    mixed = TrainConfig(epochs=2, batch_size=16, lr=0.1, mixup=1.0)
    _, h1 = train_cached(build, data, mixed, spec={"t": 1}, cache=Cache(tmp_path / "a"), progress=False)
    _, h2 = train_cached(build, data, mixed, spec={"t": 1}, cache=Cache(tmp_path / "b"), progress=False)
    _, h0 = train_cached(build, data, cfg, spec={"t": 1}, cache=cache, progress=False)
    assert h1.train_loss == h2.train_loss and h1.train_loss != h0.train_loss
    with pytest.raises(ValueError, match="mixup needs the default"):
        train(build(), data, mixed, phases=[Phase("p", mixed, objective=cross_entropy)], progress=False)


# --------------------------------------------------------------------------- one seed for initialisation

def unseeded() -> nn.Module:
    return MLP(in_features=64, hidden=(32,), num_classes=4, dropout=0.1)


def test_train_cached_seeds_the_initialisation_and_leaves_the_global_rng(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=64, seed=7)
    ambient = torch.get_rng_state()
    first = build_seeded(unseeded, 7)
    assert torch.equal(torch.get_rng_state(), ambient)  # forked: the caller's RNG did not move
    torch.manual_seed(7)
    by_hand = unseeded()  # the independent statement: seed the global RNG, then build
    assert_state_equal(first.state_dict(), by_hand.state_dict())

    seen = []
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_cached(unseeded, DATA, cfg, spec={}, cache=Cache(tmp_path / "a"), progress=False,
                 callback=lambda e, m, h: seen.append(None) if e else seen.extend(p.clone() for p in m.parameters()))
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(99)  # a different ambient state must not change the result
    model, _ = train_cached(unseeded, DATA, cfg, spec={}, cache=Cache(tmp_path / "b"), progress=False)
    reference = build_seeded(unseeded, 7)
    train(reference, DATA, cfg, progress=False)
    assert_state_equal(model.state_dict(), reference.state_dict())
    other, _ = train_cached(unseeded, DATA, TrainConfig(epochs=1, batch_size=64, seed=8), spec={},
                            cache=Cache(tmp_path / "c"), progress=False)
    assert not torch.equal(other.state_dict()["net.1.weight"], model.state_dict()["net.1.weight"])


# --------------------------------------------------------------------------- phases

class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.first(x))


def _head(model):
    return model.head


def _first_features(model, x):
    return model.first(x)


def _scaled_cross_entropy(model, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return 2 * loss, logits, {"half": loss, "one": torch.ones(())}


def test_phases_train_only_their_groups_share_optimizers_by_name_and_record_parts(tmp_path):
    torch.manual_seed(0)
    model = TwoLayer()
    model.head.bias.requires_grad_(False)  # a caller's frozen parameter stays frozen afterwards
    start = {k: v.clone() for k, v in model.state_dict().items()}
    a = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    after = []
    phases = [Phase("first", a, groups=lambda m: [{"params": list(m.first.parameters())}]),
              Phase("head", TrainConfig(epochs=1, batch_size=100, optimizer="adam", lr=0.01), module=_head,
                    inputs=_first_features, objective=_scaled_cross_entropy,
                    after=lambda m, d, h: after.append(len(h.epoch))),
              Phase("first", TrainConfig(epochs=1, batch_size=64, lr=0.05, schedule="step", lr_steps=(2,)),
                    groups=lambda m: [{"params": list(m.first.parameters())}])]
    states = []
    h = train(model, DATA, TrainConfig(seed=1), phases=phases, progress=False,
              checkpoint=lambda state: states.append(copy.deepcopy(state)))
    assert h.phase == ["first", "first", "head", "first"] and h.epoch == [0, 1, 2, 3]
    assert h.lr == [0.05, 0.05, 0.01, pytest.approx(0.005)]  # the recurring phase's schedule counts its 3rd epoch
    assert after == [3]
    # the head's phase trained only the head's weight; the first layer moved only in its phases
    assert torch.equal(model.head.bias, start["head.bias"])
    assert model.head.bias.requires_grad is False and model.head.weight.requires_grad is True
    assert not torch.equal(model.head.weight, start["head.weight"])
    # one optimizer per name: the "first" stretches share one SGD, the head has its own Adam
    assert set(states[-1]["optimizers"]) == {"first", "head"}
    assert len(states[-1]["optimizers"]["first"]["param_groups"]) == 1
    assert states[-1]["optimizers"]["head"]["state"][0]["step"].item() == 3  # 256 images in batches of 100
    # parts are batch-size-weighted epoch means; the loss is the objective's
    assert h.extra["one"] == [pytest.approx(1.0)]
    assert h.train_loss[2] == pytest.approx(2 * h.extra["half"][0], rel=1e-5)
    # an epoch of the head phase on the frozen first layer's features equals training the head alone
    torch.manual_seed(0)
    ref = TwoLayer()
    ref.load_state_dict(states[1]["model"])
    with torch.no_grad():
        feats = ref.first(DATA.x_train)
    order = torch.randperm(256, generator=torch.Generator().manual_seed(1 * 100_003 + 2))
    opt = torch.optim.Adam([ref.head.weight], lr=0.01)
    for i in range(0, 256, 100):
        idx = order[i:i + 100]
        opt.zero_grad()
        (2 * F.cross_entropy(ref.head(feats[idx]), DATA.y_train[idx])).backward()
        opt.step()
    torch.testing.assert_close(ref.head.weight, states[2]["model"]["head.weight"])


def test_phased_run_resumes_exactly(tmp_path):
    phases = [Phase("a", TrainConfig(epochs=2, batch_size=64, lr=0.05), groups=lambda m: [{"params": list(m.first.parameters())}]),
              Phase("b", TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=0.02), module=_head,
                    inputs=_first_features)]
    cfg = TrainConfig(seed=2)

    def build():
        torch.manual_seed(0)
        return TwoLayer()

    reference = build()
    ref_h = train(reference, DATA, cfg, phases=phases, progress=False)
    cache = Cache(tmp_path)
    with pytest.raises(Interrupt):
        train_cached(build, DATA, cfg, spec={"run": "phased"}, cache=cache, phases=phases, progress=False,
                     callback=lambda e, m, h: (_ for _ in ()).throw(Interrupt) if e == 3 else None)
    model, h = train_cached(build, DATA, cfg, spec={"run": "phased"}, cache=cache, phases=phases, progress=False)
    assert_state_equal(model.state_dict(), reference.state_dict())
    assert curves(h) == curves(ref_h)
    (sidecar,) = (tmp_path / "models").glob("*.json")
    assert json.loads(sidecar.read_text())["config"]["phases"][1] == ["b", {"epochs": 2, "batch_size": 64,
                                                                            "optimizer": "adam", "lr": 0.02}]


def test_snapshots_hold_the_trajectory(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=64, seed=4)
    initial = build_seeded(unseeded, 4)
    model, h = train_cached(unseeded, DATA, cfg, spec={}, cache=Cache(tmp_path), snapshots=True, progress=False)
    assert len(h.snapshots) == 4
    assert_state_equal(h.snapshots[0], dict(initial.named_parameters()))
    assert_state_equal(h.snapshots[-1], dict(model.named_parameters()))
    assert all(t.device.type == "cpu" for t in h.snapshots[1].values())
    trained = []
    _, again = train_cached(unseeded, DATA, cfg, spec={}, cache=Cache(tmp_path), snapshots=True, progress=False,
                            callback=lambda e, m, hist: trained.append(e))
    assert trained == [] and len(again.snapshots) == 4  # from the cache
    assert_state_equal(again.snapshots[2], h.snapshots[2])
    _, plain = train_cached(unseeded, DATA, cfg, spec={}, cache=Cache(tmp_path), progress=False)
    assert plain.snapshots == [] and len(list(tmp_path.glob("models/*.pt"))) == 2


# --------------------------------------------------------------------------- per-layer weight decay

def test_layer_weight_decay_matches_a_hand_written_sgd_step():
    """One full-batch SGD step (no momentum) is p - lr * (grad + wd_layer * p), with each layer's own wd."""
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=(8,), num_classes=4)
    start = copy.deepcopy(model)
    decays, lr = (0.5, 0.05), 0.1
    cfg = TrainConfig(epochs=1, batch_size=len(DATA.y_train), lr=lr, momentum=0.0, layer_weight_decay=decays)
    train(model, DATA, cfg, progress=False)
    loss = F.cross_entropy(start(DATA.x_train), DATA.y_train)
    layers = [m for m in start.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss, [p for m in layers for p in m.parameters()])
    expected, i = [], 0
    for m, wd in zip(layers, decays):
        for p in m.parameters():
            expected.append(p.detach() - lr * (grads[i] + wd * p.detach()))
            i += 1
    got = [p.detach() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()]
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, atol=1e-6)


def test_layer_weight_decay_default_and_errors():
    assert "layer_weight_decay" not in TrainConfig().changed()  # cache keys of existing runs are unchanged
    model = MLP(in_features=64, hidden=(8,), num_classes=4)
    assert [g["weight_decay"] for g in layer_groups(model, (1e-5, 1e-6))] == [1e-5, 1e-6]
    with pytest.raises(ValueError, match="one value per layer"):
        layer_groups(model, (1e-5,))
