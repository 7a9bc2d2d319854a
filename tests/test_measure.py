"""genlens.zoo.measures (one row of measures for one classifier), genlens.measure and the `genlens measure` command.

Oracles: accuracy and normalization by direct forward passes; the high-frequency split by numpy's FFT with the
paper's mask; sharpness by perturbing copies of the model; the Hessian's top eigenvalue and trace by the dense
Hessian; L-BFGS distortion by the closed-form distance to a linear classifier's boundary; TwoNN by scipy's
distances; `place` by a hand-made table.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genlens
from genlens.book import cli
from genlens.core import models
from genlens.core.data import ImageData, load
from genlens.core.train import TrainConfig, build_seeded, train
from genlens.lenses import landscape
from genlens.zoo import measures
from genlens.zoo.measures import LENSES, MEASURES, MeasureSettings, as_row, check, measure, place

SMOKE = MeasureSettings().smoke()
COMPLEXITY = ("dist_init", "path_norm", "spectral", "pacbayes", "weightwatcher")
HAVE_COMPLEXITY = importlib.util.find_spec("genlens.lenses.complexity") is not None
HAVE_WW = importlib.util.find_spec("weightwatcher") is not None
MEASURES_INDEX = {name: i for i, name in enumerate(MEASURES)}


def toy(n_train: int = 48, n_test: int = 24, shape=(1, 4, 4), k: int = 3, seed: int = 0, low=0.0, high=1.0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = low + (high - low) * torch.rand(n_train + n_test, *shape, generator=g)
    y = torch.arange(n_train + n_test) % k
    return ImageData("toy", x[:n_train], y[:n_train], x[n_train:], y[n_train:], tuple(map(str, range(k))))


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load("mnist5k").subset(200, 100, seed=0)


@pytest.fixture(scope="module")
def cnn(digits: ImageData) -> tuple[nn.Module, nn.Module]:
    """A small genlens CNN trained for two epochs on 200 digits, and its initialization."""
    build = lambda: models.build_for("cnn", digits.image_shape, digits.num_classes, width=4)
    net, init = build_seeded(build, 0), build_seeded(build, 0)
    train(net, digits, TrainConfig(epochs=2, batch_size=32, lr=0.05), progress=False)
    return net.eval(), init


def snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in model.state_dict().items()},
            "grad": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
            "modes": [m.training for m in model.modules()]}


def same(a: dict, b: dict) -> bool:
    return (a["modes"] == b["modes"] and a["state"].keys() == b["state"].keys()
            and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
            and all((a["grad"][k] is None and b["grad"][k] is None) or torch.equal(a["grad"][k], b["grad"][k])
                    for k in a["grad"]))


def values(ms) -> list[float]:
    return [m.value for m in ms]


# ----------------------------------------------------------------------------- the registry

def test_every_measure_has_a_lens_and_a_description() -> None:
    assert set(MEASURES.values()) == set(LENSES)
    assert set(measures.DESCRIPTIONS) == set(MEASURES)
    assert all(len(d) > 20 for d in measures.DESCRIPTIONS.values())


def test_settings_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_pgd=0"):
        MeasureSettings(n_pgd=0)
    with pytest.raises(ValueError, match="trace_probes must be >= 2"):
        MeasureSettings(trace_probes=1)
    with pytest.raises(ValueError, match="spectral_quantile=1"):
        MeasureSettings(spectral_quantile=1)


# ----------------------------------------------------------------------------- every lens on a small CNN

def test_every_lens_on_a_small_cnn_finite_unchanged_deterministic(digits, cnn) -> None:
    net, init = copy.deepcopy(cnn[0]), cnn[1]
    net.fc.weight.grad = torch.ones_like(net.fc.weight)  # gradients, too, are left as they came
    net.features[1].train()  # and every submodule's own mode
    before, rng = snapshot(net), torch.get_rng_state()
    first = measure(net, digits, init=init, settings=SMOKE, seed=3)
    assert same(before, snapshot(net)) and torch.equal(rng, torch.get_rng_state())
    assert [m.name for m in first] == list(MEASURES)
    runnable = [m for m in first if m.lens not in COMPLEXITY or (HAVE_COMPLEXITY and (m.lens != "weightwatcher" or HAVE_WW))]
    assert all(math.isfinite(m.value) for m in runnable), [(m.name, m.value, m.note) for m in runnable]
    assert all(m.seconds >= 0 for m in first)
    assert dict(first[MEASURES_INDEX["id_last"]].per_layer)["last hidden"] == first[MEASURES_INDEX["id_last"]].value
    again = measure(net, digits, init=init, settings=SMOKE, seed=3)
    assert np.array_equal(values(first), values(again), equal_nan=True)
    other = measure(net, digits, lenses=["landscape"], settings=SMOKE, seed=4)
    assert other[0].value != first[MEASURES_INDEX["sharpness"]].value  # the seed draws the directions



def test_a_lens_that_cannot_run_gives_nan_with_the_reason(digits, cnn, monkeypatch) -> None:
    net, _ = cnn
    monkeypatch.setitem(sys.modules, "genlens.lenses.complexity", None)  # as if the module were missing
    out = {m.name: m for m in measure(net, digits, lenses=["dist_init", "path_norm", "accuracy"], settings=SMOKE)}
    assert math.isnan(out["dist_init"].value) and "init" in out["dist_init"].note
    assert math.isnan(out["path_norm"].value) and "genlens.lenses.complexity" in out["path_norm"].note
    assert math.isfinite(out["train_acc"].value)


def test_accuracy_and_gap_against_a_direct_forward_pass(digits, cnn) -> None:
    net, _ = cnn
    out = as_row(measure(net, digits, lenses=["accuracy"], settings=SMOKE))
    with torch.no_grad():
        train = (net(digits.x_train).argmax(1) == digits.y_train).double().mean().item()
        test = (net(digits.x_test).argmax(1) == digits.y_test).double().mean().item()
    assert out["train_acc"] == pytest.approx(train) and out["test_acc"] == pytest.approx(test)
    assert out["gap"] == pytest.approx(train - test)
    assert set(out) == {"train_acc", "test_acc", "gap", "train_acc_seconds", "test_acc_seconds", "gap_seconds"}


def numpy_high(x: np.ndarray, radius: float) -> np.ndarray:
    """The paper's high-frequency part (frequencyHelper.py), each image divided by its maximum."""
    spectrum = np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))
    H, W = x.shape[-2:]
    yy, xx = np.meshgrid(np.arange(H) - H // 2, np.arange(W) - W // 2, indexing="ij")
    high = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * (yy**2 + xx**2 >= radius**2), axes=(-2, -1))))
    return high / high.reshape(len(high), -1).max(1)[:, None, None, None]


def test_hf_reliance_against_numpy_fft(digits, cnn) -> None:
    net, _ = cnn
    S = MeasureSettings(n_test=100, hf_radius=3)
    (m,) = measure(net, digits, lenses=["hfc"], settings=S)
    high = torch.from_numpy(numpy_high(digits.x_test.double().numpy(), 3)).float()
    with torch.no_grad():
        expect = (net(high).argmax(1) == digits.y_test).float().mean().item()
    assert m.value == pytest.approx(expect, abs=1.5 / 100)  # float32 vs float64 split: at most a flipped image


def test_sharpness_against_perturbed_copies(digits, cnn) -> None:
    net, _ = cnn
    S = MeasureSettings(n_train=200, n_sharpness=64, sharpness_directions=2, sharpness_alpha=0.25)
    (m,) = measure(net, digits, lenses=["landscape"], settings=S, seed=5)
    x, y = digits.x_train[:64], digits.y_train[:64]

    def loss_at(direction, t):
        moved = copy.deepcopy(net)
        with torch.no_grad():
            for name, p in moved.named_parameters():
                p += t * direction[name]
            return F.cross_entropy(moved.eval()(x), y).item()

    rises = []
    for k in range(2):
        d = landscape.random_direction(net, generator=torch.Generator().manual_seed(5 + k))
        assert all(d[n].abs().sum() == 0 for n, p in net.named_parameters() if p.dim() <= 1)  # biases, BN left out
        rises.append((loss_at(d, -0.25) + loss_at(d, 0.25)) / 2 - loss_at(d, 0.0))
    assert m.value == pytest.approx(np.mean(rises), rel=1e-4, abs=1e-6)


def test_hessian_against_the_dense_hessian() -> None:
    data = toy(40, 10)
    net = build_seeded(lambda: models.MLP(hidden=(6,), num_classes=3, in_channels=1, image_size=4), 1)
    S = MeasureSettings(n_train=40, n_hessian=40, hessian_tol=1e-7, hessian_max_iter=200, trace_probes=400)
    out = {m.name: m for m in measure(net, data, lenses=["hessian"], settings=S)}
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double()

    def loss(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[i:i + s.numel()].view(s)
            i += s.numel()
        return F.cross_entropy(torch.func.functional_call(net.double(), parts, (data.x_train.double(),)), data.y_train)

    H = torch.autograd.functional.hessian(loss, flat0)
    net.float()
    assert out["hessian_top"].value == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-4)
    se = float(out["hessian_trace"].note.split("standard error ")[1])
    assert abs(out["hessian_trace"].value - torch.trace(H).item()) <= 4 * se


def test_lbfgs_distortion_against_a_linear_boundary() -> None:
    data = toy(20, 10, shape=(1, 4, 4), k=2, low=0.4, high=0.6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.linspace(-1, 1, 32).view(2, 16))
        net[1].bias.zero_()
    with torch.no_grad():  # labels: the model's own predictions, so every image starts on the right side
        data = ImageData("toy", data.x_train, net(data.x_train).argmax(1), data.x_test, net(data.x_test).argmax(1),
                         ("a", "b"))
    S = MeasureSettings(n_train=20, n_lbfgs=20, lbfgs_search_steps=12, lbfgs_max_iter=100)
    (m,) = measure(net, data, lenses=["lbfgs"], settings=S)
    w, b = net[1].weight.detach(), net[1].bias.detach()
    x, y = data.x_train.flatten(1), data.y_train
    margin = (x @ (w[0] - w[1]) + b[0] - b[1]) * (1 - 2 * y.float())  # > 0: distance to the boundary * ||w0 - w1||
    oracle = (margin / (w[0] - w[1]).norm() / 4).mean().item()  # sqrt(|r|^2 / n), n = 16 pixels
    assert m.note.startswith("20 of 20")
    assert oracle * (1 - 1e-3) <= m.value <= 1.2 * oracle


def test_id_last_against_scipy_distances(digits, cnn) -> None:
    from scipy.spatial.distance import cdist

    net, _ = cnn
    (m,) = measure(net, digits, lenses=["intrinsic"], settings=MeasureSettings(n_train=200, id_points=150))
    with torch.no_grad():
        h = net.features(digits.x_train[:150]).double().numpy()  # SmallCNN's last hidden layer: the pooled features
    d = cdist(h, h)
    np.fill_diagonal(d, np.inf)
    r = np.sort(d, 1)[:, :2]
    mu = np.sort(r[:, 1] / r[:, 0])
    N = len(mu)
    n_fit = int(np.floor(N * 0.9))
    xs, ys = np.log(mu[:n_fit]), -np.log(1 - np.arange(1, n_fit + 1) / N)
    assert m.value == pytest.approx((xs @ ys) / (xs @ xs), rel=1e-6)
    assert [k for k, _ in m.per_layer][-2:] == ["last hidden", "output"]


@pytest.mark.skipif(not HAVE_COMPLEXITY, reason="genlens.lenses.complexity not written yet")
def test_baselines_are_the_complexity_lenses_on_the_subsets(digits, cnn) -> None:
    from genlens.lenses import complexity

    net, init = cnn
    out = as_row(measure(net, digits, lenses=["dist_init", "path_norm", "spectral"], init=init, settings=SMOKE))
    sub = digits.subset(SMOKE.n_train, SMOKE.n_test, seed=0)
    assert out["dist_init"] == complexity.distance_from_init(net, init)
    assert out["path_norm"] == complexity.path_norm(net, digits.image_shape)
    assert out["spectral_margin"] == complexity.spectral_product_over_margin(net, sub.x_train, sub.y_train, quantile=0.1)


def test_pgd_accuracy_is_the_clean_accuracy_at_a_tiny_radius(digits, cnn) -> None:
    net, _ = cnn
    S = MeasureSettings(n_test=100, n_pgd=60, pgd_steps=3)
    tiny = measure(net, digits, lenses=["pgd"], settings=replace_eps(S, 1e-7))[0].value
    x, y = (t[:60] for t in (digits.x_test, digits.y_test))  # n_test = all 100: the subset is the test set in order
    with torch.no_grad():
        assert tiny == pytest.approx((net(x).argmax(1) == y).float().mean().item())
    assert measure(net, digits, lenses=["pgd"], settings=replace_eps(S, 0.2))[0].value < tiny


def replace_eps(S: MeasureSettings, eps: float) -> MeasureSettings:
    from dataclasses import replace

    return replace(S, pgd_eps=eps)


# ----------------------------------------------------------------------------- checks before any work

def test_bad_input_is_one_line_before_any_work(digits, cnn) -> None:
    net, init = cnn
    with pytest.raises(ValueError, match=r"unknown lens 'sharp'; known: accuracy, hfc, landscape"):
        check(net, digits, lenses=["accuracy", "sharp"])
    rgb = toy(8, 4, shape=(3, 28, 28), k=10)
    with pytest.raises(ValueError, match=r"^data of shape \(3,28,28\) does not fit the model: "):
        check(net, rgb)
    with pytest.raises(ValueError, match="the model gives 10 outputs per image but data toy has 3 classes"):
        check(net, toy(8, 4, shape=(1, 28, 28), k=3))
    wide = build_seeded(lambda: models.build_for("cnn", digits.image_shape, 10, width=8), 0)
    with pytest.raises(ValueError, match="init must have the model's parameters: 'features.0.weight'"):
        check(net, digits, init=wide)
    with pytest.raises(TypeError, match="settings must be a MeasureSettings"):
        measure(net, digits, settings={"n_train": 5})


# ----------------------------------------------------------------------------- place

def test_place_against_a_hand_made_table(tmp_path: Path) -> None:
    table = tmp_path / "zoo.csv"
    table.write_text("model,width,train_acc,gap,sharpness,gap_seconds\n"
                     "a,8,0.9,0.1,1.0,0.5\nb,16,0.95,0.3,nan,0.5\nc,32,1.0,0.2,,0.5\nd,64,0.8,0.4,3.0,0.5\n")
    got = place({"gap": 0.25, "sharpness": 2.0, "train_acc": float("nan"), "pgd_acc": 0.5}, table)
    assert got["gap"] == {"percentile": 0.5, "min": 0.1, "median": 0.25, "max": 0.4, "n": 4}
    assert got["sharpness"] == {"percentile": 0.5, "min": 1.0, "median": 2.0, "max": 3.0, "n": 2}
    assert math.isnan(got["train_acc"]["percentile"]) and got["train_acc"]["n"] == 4
    assert set(got) == {"gap", "sharpness", "train_acc"}  # pgd_acc is not in the zoo; width is no measure
    with pytest.raises(FileNotFoundError, match="not found"):
        place({"gap": 0.1}, tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("model,width\na,8\n")
    with pytest.raises(ValueError, match="has no measure column"):
        place({"gap": 0.1}, tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- genlens.measure

def test_import_genlens_does_not_import_torch() -> None:
    code = ("import sys, genlens; print('torch' in sys.modules); print(callable(genlens.measure)); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(genlens.__file__).parents[1]), "PATH": ""}).stdout.split()
    assert out == ["False", "True", "False"]  # torch comes with the first call


def test_genlens_measure_puts_the_normalization_inside(digits) -> None:
    net = build_seeded(lambda: models.build_for("cnn", digits.image_shape, 10, width=4, batchnorm=False), 0).eval()
    result = genlens.measure(net, digits, ["accuracy"], normalize=([0.2], [0.4]), settings=SMOKE, progress=False)
    with torch.no_grad():
        expect = (net((digits.x_test - 0.2) / 0.4).argmax(1) == digits.y_test).float().mean().item()
    assert result.row["test_acc"] == pytest.approx(expect)
    assert genlens.measure.measure is not None and "test_acc" in str(result) and "seconds" in str(result)
    with pytest.raises(ValueError, match="one mean and one std per channel: data .* has 1 channel"):
        genlens.measure(net, digits, ["accuracy"], normalize=([0.2, 0.3], [0.4, 0.4]), progress=False)


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory) -> str:
    from genlens.book.smoke import write_cifar_like

    folder = tmp_path_factory.mktemp("cifar")
    return "imagefolder:" + str(write_cifar_like(folder / "cifar-like.zip", per_class_train=4, per_class_test=3))


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory) -> dict[str, Path]:
    """A torchvision mobilenet_v3_small (10 classes, never trained) saved as a state_dict, as .safetensors, and
    wrong ways."""
    import torchvision
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=10)
    state = net.state_dict()
    files = {"pt": folder / "m.pt", "safetensors": folder / "m.safetensors", "pickle": folder / "model.pt",
             "garbage": folder / "garbage.pt", "extra": folder / "extra.pt", "hundred": folder / "hundred.pt"}
    torch.save(state, files["pt"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(files["safetensors"]))
    torch.save(net, files["pickle"])
    files["garbage"].write_bytes(b"not a checkpoint" * 10)
    torch.save({**state, "extra.weight": torch.zeros(1)}, files["extra"])
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=100).state_dict(),
               files["hundred"])
    return files


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_command_end_to_end(kind, mobilenet, cifar_like, tmp_path, capsys) -> None:
    zoo = tmp_path / "zoo.csv"
    zoo.write_text("model,train_acc,hf_reliance\na,0.5,0.1\nb,0.9,0.2\n")
    prefix = tmp_path / "out" / "mobilenet"
    code = cli.main(["measure", "mobilenet_v3_small", "--weights", str(mobilenet[kind]), "--data", cifar_like,
                     "--normalize", "0.5,0.5,0.5,0.25,0.25,0.25", "--lens", "accuracy", "hfc", "--lens", "intrinsic",
                     "--smoke", "--device", "cpu", "--zoo", str(zoo), "--out", str(prefix)])
    out = capsys.readouterr().out
    assert code == 0
    assert "zoo percentile" in out and "id_last per layer" in out and "last hidden" in out
    record = json.loads(prefix.with_suffix(".json").read_text())
    assert record["arch"] == "mobilenet_v3_small" and record["normalize"] == "0.5,0.5,0.5,0.25,0.25,0.25"
    assert [m["name"] for m in record["measurements"]] == ["train_acc", "test_acc", "gap", "hf_reliance", "id_last"]
    assert set(record["zoo"]) == {"train_acc", "hf_reliance"}
    header, row = prefix.with_suffix(".csv").read_text().splitlines()
    assert header.split(",")[:2] == ["model", "train_acc"] and row.startswith("mobilenet_v3_small,")
    assert float(row.split(",")[1]) == record["row"]["train_acc"]


@pytest.mark.parametrize("args, message", [
    (["--weights", "{pickle}"], "is not a weights-only state_dict (a pickled object?); save model.state_dict()"),
    (["--weights", "{garbage}"], "cannot be read by torch.load"),
    (["--weights", "{missing}"], "not found"),
    (["--weights", "{extra}"], "weights do not fit mobilenet_v3_small built for imagefolder:"),
    (["--weights", "{hundred}"], "'classifier.3.weight' has shape (100, 1024) in the file but (10, 1024) in the model"),
    (["--normalize", "0.5,0.5"], "one mean and one std per channel: data imagefolder:"),
    (["--normalize", "0.5"], "an even count"),
    (["--normalize", "a,b"], "comma-separated numbers"),
    (["--lens", "accuracy", "sharp"], "unknown lens 'sharp'; known: accuracy"),
    (["--device", "tpu"], "device must be one of"),
    (["--zoo", "{missing}"], "zoo table"),
    (["--seed", "x"], "argument --seed: invalid int value"),
    (["--arch", "nonet"], "unknown architecture 'nonet'"),
    (["--data", "nodata"], "unknown dataset 'nodata'"),
    (["--data", "mnist5k"], "data of shape (1,28,28) does not fit the model"),
    (["--weights", "{resnet}"], "weights do not fit mobilenet_v3_small"),
])
def test_command_bad_input_one_line_exit_2_nothing_written(args, message, mobilenet, cifar_like, tmp_path, capsys) -> None:
    files = {k: str(v) for k, v in mobilenet.items()} | {"missing": str(tmp_path / "none.pt")}
    resnet = tmp_path / "resnet.pt"
    if "{resnet}" in args:
        torch.save(models.build_for("resnet20", (3, 32, 32), 10).state_dict(), resnet)
    files["resnet"] = str(resnet)
    given = dict(zip(args[::2], [a.format(**files) for a in args[1::2]])) if args[0] != "--lens" else {}
    arch = given.pop("--arch", "mobilenet_v3_small")
    argv = ["measure", arch, "--weights", given.pop("--weights", files["pt"]), "--data", given.pop("--data", cifar_like),
            "--device", "cpu", "--smoke", "--out", str(tmp_path / "out" / "x")]
    argv += args if args[0] == "--lens" else [a for kv in given.items() for a in kv]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("genlens measure: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_data_at_pool_k_is_the_zoos_pooled_images_and_a_bad_k_is_one_line() -> None:
    from genlens.core.data import DatasetError
    from genlens.measure import load_data
    from genlens.zoo.grid import zoo_data

    pooled = load_data("mnist5k@pool2")
    assert pooled.image_shape == (1, 14, 14)
    assert torch.equal(pooled.x_test, zoo_data("mnist5k", None, None, 2).x_test)
    with pytest.raises(DatasetError, match="integer >= 1"):
        load_data("mnist5k@pool0")


def test_a_model_placed_among_a_zoo_is_measured_with_that_zoos_lens_settings(tmp_path) -> None:
    from genlens.book.settings_zoo import PROFILES
    from genlens.measure import zoo_settings
    from genlens.zoo.measures import MeasureSettings

    assert zoo_settings(tmp_path / "book" / "results" / "quick" / "zoo.csv") == PROFILES["quick"].measures
    assert zoo_settings(tmp_path / "gpu" / "zoo.csv") == PROFILES["gpu"].measures
    assert zoo_settings(tmp_path / "elsewhere" / "zoo.csv") == MeasureSettings() == zoo_settings(None)
    assert PROFILES["quick"].measures != MeasureSettings()  # else the test would not tell them apart
