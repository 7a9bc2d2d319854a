"""genlens.core.data: every loader against tiny fixtures written in the real on-disk formats."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlens.core import data
from genlens.core.data import DatasetError, DatasetNotFound, ImageData, TabularData, load


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENLENS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- fixtures

def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    """IDX: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 dims, payload."""
    raw = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_dataset(root: Path, folder: str, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
              "train-labels-idx1-ubyte": np.array([0, 1, 2, 9, 9, 3]),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
              "t10k-labels-idx1-ubyte": np.array([4, 5, 6])}
    for fname, arr in arrays.items():
        write_idx(root / folder / "raw" / fname, arr, gz)
    return arrays


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def make_cifar10(root: Path) -> dict[str, np.ndarray]:
    d = root / "cifar-10-batches-py"
    rows = {}
    for i in range(1, 6):
        rows[f"data_batch_{i}"] = cifar_rows(2, i)
        dump(d / f"data_batch_{i}", {b"batch_label": b"x", b"data": rows[f"data_batch_{i}"],
                                     b"labels": [i, (i + 5) % 10], b"filenames": [b"a", b"b"]})
    rows["test_batch"] = cifar_rows(3, 99)
    dump(d / "test_batch", {b"data": rows["test_batch"], b"labels": [7, 8, 9]}, protocol=5)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(d / "batches.meta", {b"label_names": names, b"num_vis": 3072}, protocol=4)
    return rows


def make_cifar100(root: Path) -> dict[str, np.ndarray]:
    d = root / "cifar-100-python"
    rows = {"train": cifar_rows(4, 1), "test": cifar_rows(2, 2)}
    dump(d / "train", {b"data": rows["train"], b"fine_labels": [0, 99, 50, 3], b"coarse_labels": [0] * 4})
    dump(d / "test", {b"data": rows["test"], b"fine_labels": [98, 1], b"coarse_labels": [0] * 2})
    dump(d / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                      b"coarse_label_names": [b"x"] * 20})
    return rows


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def folder_images(seed: int = 0, size: tuple[int, int] = (5, 4)) -> dict[str, np.ndarray]:
    """ImageFolder-relative path -> (H, W, 3) uint8; a grayscale one checks RGB conversion."""
    rng = np.random.default_rng(seed)
    files = {f"{split}/{cls}/{i:04d}.png": rng.integers(0, 256, (*size, 3), dtype=np.uint8)
             for split, n in (("train", 3), ("test", 2)) for cls in ("cat", "ant") for i in range(n)}
    gray = rng.integers(0, 256, size, dtype=np.uint8)
    files["train/bee/0000.png"] = np.repeat(gray[..., None], 3, axis=2)
    files["__gray__"] = gray
    return files


def write_zip(path: Path, files: dict[str, np.ndarray], top: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, arr in files.items():
            if rel != "__gray__":
                src = files["__gray__"] if rel == "train/bee/0000.png" else arr
                zf.writestr(top + rel, png(src))
        zf.writestr(top + "README.txt", "not an image")
    return path


def check_folder(ds: ImageData, files: dict[str, np.ndarray]) -> None:
    assert ds.classes == ("ant", "bee", "cat")
    assert ds.image_shape == (3, 5, 4) and ds.x_train.dtype == torch.float32
    assert ds.y_train.tolist() == [0, 0, 0, 1, 2, 2, 2] and ds.y_test.tolist() == [0, 0, 2, 2]
    order = [f"train/ant/{i:04d}.png" for i in range(3)] + ["train/bee/0000.png"] + \
            [f"train/cat/{i:04d}.png" for i in range(3)]
    expect = np.stack([files[r] for r in order]).transpose(0, 3, 1, 2)
    assert torch.equal((ds.x_train * 255).round().to(torch.uint8), torch.from_numpy(expect))
    expect = np.stack([files[f"test/{c}/{i:04d}.png"] for c in ("ant", "cat") for i in range(2)])
    assert torch.equal((ds.x_test * 255).round().to(torch.uint8), torch.from_numpy(expect.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", False), ("mnist", "MNIST", True),
                                            ("fashion-mnist", "FashionMNIST", False)])
def test_idx_datasets(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    arrays = make_idx_dataset(tmp_path / "data", folder, gz)
    ds = load(name)  # root from GENLENS_DATA
    assert ds.name == name and ds.num_classes == 10 and ds.in_channels == 1
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64 and ds.y_train.tolist() == [0, 1, 2, 9, 9, 3]
    assert ds.y_test.tolist() == [4, 5, 6]
    assert torch.equal((ds.x_train[:, 0] * 255).round().to(torch.int64),
                       torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert float(ds.x_test.min()) >= 0 and float(ds.x_test.max()) <= 1
    if name == "fashion-mnist":
        assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_idx_explicit_root_and_bad_header(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "elsewhere", "MNIST", gz=False)
    assert len(load("mnist", root=tmp_path / "elsewhere").y_train) == 6
    (tmp_path / "elsewhere/MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04junk")
    with pytest.raises(DatasetError, match="not an unsigned-byte IDX file"):
        load("mnist", root=tmp_path / "elsewhere")


def test_download_uses_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    calls = []

    class FakeMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            make_idx_dataset(Path(root), "MNIST", gz=False)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    ds = load("mnist", download=True)
    assert calls and all(c == (str(tmp_path / "data"), c[1], True) for c in calls)
    assert ds.x_train.shape == (6, 1, 28, 28)


# --------------------------------------------------------------------------- CIFAR

def test_cifar10_pixel_layout(tmp_path: Path) -> None:
    rows = make_cifar10(tmp_path / "data")
    ds = load("cifar10")
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [1, 6, 2, 7, 3, 8, 4, 9, 5, 0] and ds.y_test.tolist() == [7, 8, 9]
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    first = rows["data_batch_1"][0]
    x = (ds.x_train[0] * 255).round().to(torch.int64)
    # the 3072 row is the R plane, then G, then B, each 32x32 row-major
    assert x[0, 0, 0] == first[0] and x[0, 0, 1] == first[1] and x[0, 1, 0] == first[32]
    assert x[1, 0, 0] == first[1024] and x[2, 31, 31] == first[3071] and x[1, 2, 5] == first[1024 + 2 * 32 + 5]
    train = np.concatenate([rows[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal((ds.x_train * 255).round().to(torch.uint8).reshape(10, -1), torch.from_numpy(train))
    assert torch.equal((ds.x_test * 255).round().to(torch.uint8).reshape(3, -1), torch.from_numpy(rows["test_batch"]))


def test_cifar100(tmp_path: Path) -> None:
    rows = make_cifar100(tmp_path / "data")
    ds = load("cifar100")
    assert ds.num_classes == 100 and ds.classes[99] == "c99"
    assert ds.y_train.tolist() == [0, 99, 50, 3] and ds.y_test.tolist() == [98, 1]
    assert torch.equal((ds.x_train * 255).round().to(torch.uint8).reshape(4, -1), torch.from_numpy(rows["train"]))


def test_cifar_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    make_cifar10(tmp_path / "data")
    dump(tmp_path / "data/cifar-10-batches-py/test_batch", {b"data": os.system, b"labels": []})
    with pytest.raises(DatasetError, match="posix.system|nt.system"):
        load("cifar10")


# --------------------------------------------------------------------------- missing / unknown

@pytest.mark.parametrize("name,missing", [("mnist", "train-images-idx3-ubyte"),
                                          ("fashion-mnist", "FashionMNIST"),
                                          ("cifar10", "data_batch_1"), ("cifar100", "cifar-100-python")])
def test_missing_offline_is_one_line(name: str, missing: str) -> None:
    with pytest.raises(DatasetNotFound) as err:
        load(name)
    msg = str(err.value)
    assert "\n" not in msg and missing in msg and "download=True" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_missing_names_only_absent_files(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "data", "MNIST", gz=True)
    (tmp_path / "data/MNIST/raw/t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFound, match="t10k-labels-idx1-ubyte") as err:
        load("mnist")
    assert "train-images" not in str(err.value)


def test_unknown_name_lists_known() -> None:
    with pytest.raises(DatasetError) as err:
        load("imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "imagenet" in msg
    assert all(n in msg for n in data.available())
    assert data.available() == ["cifar10", "cifar100", "cub200", "fashion-mnist", "mnist", "mnist5k"]


# --------------------------------------------------------------------------- ImageFolder

def test_imagefolder_zip_nested_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = folder_images()
    z = write_zip(tmp_path / "pets.zip", files, top="pets-png/")
    ds = load(f"imagefolder:{z}")
    check_folder(ds, files)
    assert ds.name == f"imagefolder:{z}"
    caches = list((tmp_path / "cache" / "datasets").glob("*.pt"))
    assert len(caches) == 1 and not list(caches[0].parent.glob("*.tmp"))

    def boom(path: Path) -> dict:
        raise AssertionError("cache not used")

    monkeypatch.setattr(data, "_decode_imagefolder", boom)
    check_folder(load(f"imagefolder:{z}"), files)


def test_imagefolder_directory(tmp_path: Path) -> None:
    files = folder_images(seed=1)
    for rel, arr in files.items():
        if rel != "__gray__":
            p = tmp_path / "tree" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(png(files["__gray__"] if rel == "train/bee/0000.png" else arr))
    (tmp_path / "tree" / "train" / ".DS_Store").write_bytes(b"junk")
    check_folder(load(f"imagefolder:{tmp_path / 'tree'}"), files)
    # adding an image changes the cache key, so the new file is seen
    (tmp_path / "tree/test/ant/0009.png").write_bytes(png(files["train/cat/0000.png"]))
    assert len(load(f"imagefolder:{tmp_path / 'tree'}").y_test) == 5


@pytest.mark.parametrize("corruption", ["garbage", "wrong_keys", "wrong_shape"])
def test_imagefolder_corrupt_cache_rebuilt(tmp_path: Path, corruption: str) -> None:
    files = folder_images()
    z = write_zip(tmp_path / "pets.zip", files)
    load(f"imagefolder:{z}")
    (cache,) = (tmp_path / "cache" / "datasets").glob("*.pt")
    if corruption == "garbage":
        cache.write_bytes(b"definitely not a torch file")
    else:
        good = torch.load(cache, weights_only=True)
        if corruption == "wrong_keys":
            del good["y_test"]
        else:
            good["x_train"] = good["x_train"][:, :, 0]
        torch.save(good, cache)
    with pytest.warns(UserWarning, match="cache"):
        check_folder(load(f"imagefolder:{z}"), files)
    assert set(torch.load(cache, weights_only=True)) >= {"x_train", "y_train", "x_test", "y_test", "classes"}


@pytest.mark.parametrize("member", ["../evil.png", "train/cat/../../evil.png", "/etc/evil.png"])
def test_imagefolder_refuses_unsafe_members(tmp_path: Path, member: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    z = write_zip(tmp_path / "bad.zip", folder_images())
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(zipfile.ZipInfo(member), png(np.zeros((5, 4, 3), np.uint8)))
    monkeypatch.setattr(data, "_decode_image", lambda *a: pytest.fail("read before the check"))
    with pytest.raises(DatasetError, match=member.replace(".", r"\.")):
        load(f"imagefolder:{z}")


def test_imagefolder_mixed_sizes_name_file(tmp_path: Path) -> None:
    files = folder_images()
    z = write_zip(tmp_path / "mixed.zip", files)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("train/cat/zzz.png", png(np.zeros((6, 4, 3), np.uint8)))
    with pytest.raises(DatasetError, match="train/cat/zzz.png"):
        load(f"imagefolder:{z}")


def test_imagefolder_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="nope.zip"):
        load(f"imagefolder:{tmp_path / 'nope.zip'}")


# --------------------------------------------------------------------------- CUB-200-2011

def write_cub(root: Path, n_per_class: tuple[int, ...] = (3, 2)) -> None:
    """A tiny CUB_200_2011 folder: one white (class 0) or grey (class 1) bird in a box of a black image."""
    (root / "images").mkdir(parents=True)
    lines: dict[str, list[str]] = {k: [] for k in ("images", "split", "boxes", "labels")}
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    i = 0
    for c, count in enumerate(n_per_class):
        (root / "images" / classes[c]).mkdir()
        for k in range(count):
            i += 1
            name = f"{classes[c]}/img_{k}.jpg"
            img = np.zeros((40, 50, 3), np.uint8)
            img[10:30, 5:25] = 255 if c == 0 else 128  # the bird fills its box
            Image.fromarray(img).save(root / "images" / name)
            lines["images"].append(f"{i} {name}")
            lines["split"].append(f"{i} {1 if k < count - 1 else 0}")
            lines["boxes"].append(f"{i} 5.0 10.0 20.0 20.0")
            lines["labels"].append(f"{i} {c + 1}")
    for key, fname in (("images", "images.txt"), ("split", "train_test_split.txt"), ("boxes", "bounding_boxes.txt"),
                       ("labels", "image_class_labels.txt")):
        (root / fname).write_text("\n".join(lines[key]) + "\n")
    (root / "classes.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in enumerate(classes)))


def test_cub200_crops_to_boxes_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data" / "CUB_200_2011"
    with pytest.raises(DatasetNotFound, match="missing images.txt.*bounding_boxes.txt"):
        load("cub200")
    write_cub(root)
    for spec in ("cub200", f"cub200:{root}"):  # the default folder under GENLENS_DATA, or a given one
        d = load(spec)
        assert d.name == "cub200" and data.display_name(spec) == "CUB-200-2011"
        assert d.x_train.shape == (3, 3, 224, 224) and d.x_test.shape == (2, 3, 224, 224)
        assert d.y_train.tolist() == [0, 0, 1] and d.y_test.tolist() == [0, 1]
        assert d.classes == ("001.Black_footed_Albatross", "002.Laysan_Albatross")
        # cropped to the box, the image is uniform: white for class 0, grey for class 1 (JPEG tolerance)
        assert abs(d.x_train[0].mean().item() - 1.0) < 0.03 and abs(d.x_test[1].mean().item() - 128 / 255) < 0.03
        monkeypatch.setattr(data, "_decode_cub", lambda *a: (_ for _ in ()).throw(AssertionError("cache not used")))
    assert len(list((tmp_path / "cache" / "datasets").glob("*.pt"))) == 1


# --------------------------------------------------------------------------- synthetic loans

def test_loan_follows_its_stated_rule() -> None:
    d = data.loan(4000, 500, seed=3, noise=0.0)
    assert isinstance(d, TabularData) and d.x_train.shape == (4000, 2) and d.features[1] == "interest rate (%)"
    debt, rate = d.x_train[:, 0], d.x_train[:, 1]
    assert 0 <= debt.min() and debt.max() <= 60 and 2 <= rate.min() and rate.max() <= 12
    # the rule, stated independently: approve below 40 % debt at a 2 % rate, below a 9 % rate at no debt,
    # and nothing with more than 40 % debt or a rate above 9 %
    assert (d.y_train[(debt > 40) | (rate > 9)] == 0).all()
    assert (d.y_train[(debt < 20) & (rate < 5)] == 1).all()  # (1/2)^2 + (3/7)^2 < 1
    assert (d.y_train[(debt > 35) & (rate > 6)] == 0).all()  # (35/40)^2 + (4/7)^2 > 1
    assert torch.equal(data.loan_rule(d.x_test).long(), d.y_test)
    assert data.loan_rule(np.array([[39.9, 2.0], [0.0, 8.9], [30.0, 7.0]])).tolist() == [True, True, False]
    assert torch.equal(d.x_train, data.loan(4000, 500, seed=3, noise=0.0).x_train)
    assert not torch.equal(d.x_test, d.x_train[:500])  # held-out applicants come from another stream
    noisy = data.loan(4000, 500, seed=3, noise=0.1)
    assert torch.equal(noisy.x_train, d.x_train) and 0.07 < (noisy.y_train != d.y_train).float().mean() < 0.13
    scaled = d.standardized(d.x_train.mean(0), d.x_train.std(0))
    torch.testing.assert_close(scaled.x_train.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    with pytest.raises(DatasetError, match="noise must be in"):
        data.loan(10, seed=0, noise=0.7)
    with pytest.raises(DatasetError, match="bad train shapes"):
        TabularData("bad", d.x_train[:, :1], d.y_train, d.x_test, d.y_test, d.classes, d.features)


# --------------------------------------------------------------------------- ImageData

def toy(n_per_class: tuple[int, ...] = (30, 20, 10)) -> ImageData:
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(n_per_class)])
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return ImageData("toy", x, y, x[:12].clone(), y[:12].clone(), ("a", "b", "c"))


def test_subset_stratified_and_seeded() -> None:
    ds = toy()
    sub = ds.subset(12, seed=3)
    assert torch.bincount(sub.y_train).tolist() == [6, 4, 2]
    assert torch.equal(sub.x_test, ds.x_test)  # None keeps the split whole
    assert torch.equal(sub.x_train, ds.subset(12, seed=3).x_train)
    assert not torch.equal(sub.x_train, ds.subset(12, seed=4).x_train)
    # rows stay paired with their labels and in original order
    idx = sub.x_train[:, 0, 0, 0].long()
    assert torch.equal(ds.y_train[idx], sub.y_train) and bool((idx.diff() > 0).all())
    assert len(ds.subset(7, 0).y_train) == 7 and len(ds.subset(None, 0).y_test) == 0
    assert torch.bincount(ds.subset(n_test=None, n_train=59).y_train).tolist() == [29, 20, 10]  # largest remainders
    with pytest.raises(DatasetError):
        ds.subset(61)


def test_imagedata_properties_and_to() -> None:
    ds = toy()
    assert (ds.num_classes, ds.in_channels, ds.image_shape) == (3, 1, (1, 2, 2))
    moved = ds.to("meta")
    assert moved.x_train.device.type == "meta" and moved.classes == ds.classes
    assert "toy" in repr(ds) and "tensor" not in repr(ds)
    with pytest.raises(DatasetError):
        ImageData("bad", ds.x_train, ds.y_train[:-1], ds.x_test, ds.y_test, ds.classes)


# --------------------------------------------------------------------------- mnist5k

def test_mnist5k() -> None:
    a, b = load("mnist5k"), load("mnist5k", device="cpu")
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert torch.bincount(a.y_train).tolist() == [400] * 10
    assert torch.bincount(a.y_test).tolist() == [100] * 10
    assert 0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1 and float(a.x_train.max()) > 0.99
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.y_train[:50].unique().numel() > 1  # not sorted by label
    train = {bytes(r) for r in (a.x_train * 255).round().to(torch.uint8).flatten(1).numpy()}
    test = {bytes(r) for r in (a.x_test * 255).round().to(torch.uint8).flatten(1).numpy()}
    assert not train & test


def test_luminosity_gradient_shifts_each_image_by_its_own_constant():
    from genlens.core.data import ImageData, luminosity_gradient

    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 6, 6, generator=g)
    d = ImageData("toy", x, torch.arange(50) % 10, x[:20].clone(), torch.arange(20) % 10, tuple("0123456789"))
    star = luminosity_gradient(d, 300.0, seed=1)
    assert star.name == "toy*[gradient=300,seed=1]" and torch.equal(star.y_train, d.y_train)
    for a, b in ((d.x_train, star.x_train), (d.x_test, star.x_test)):
        assert b.min() == pytest.approx(0) and b.max() == pytest.approx(1)
        # affine per split: b = (a + u_i - m) / s with one scale s, so b - a / s is constant in each image
        s = float(((a[0] - a[0].mean()) * (b[0] - b[0].mean())).sum() / ((a[0] - a[0].mean()) ** 2).sum())
        offset = (b - s * a).flatten(1)
        assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-5)
        assert offset[:, 0].std() > 0.2  # offsets spread over the range (uniform: std ~ 0.29)
    assert torch.equal(luminosity_gradient(d, 300.0, seed=1).x_train, star.x_train)
    with pytest.raises(ValueError):
        luminosity_gradient(d, 0.0)


def test_avg_pool_is_the_mean_of_each_window_and_drops_a_trailing_row() -> None:
    from genlens.core.data import avg_pool

    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 2, 7, 9, generator=g)  # 7x9 by 2: 3x4 windows, the last row and column dropped
    d = ImageData("toy", x, torch.arange(5) % 3, x[:3].clone() * 0.5, torch.arange(3), ("a", "b", "c"))
    before = d.x_train.clone()
    pooled = avg_pool(d, 2)
    for a, b in ((d.x_train, pooled.x_train), (d.x_test, pooled.x_test)):
        assert b.shape == (len(a), 2, 3, 4) and b.dtype == torch.float32
        brute = torch.tensor([[[[float(a[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].double().mean()) for j in range(4)]
                                for i in range(3)] for c in range(2)] for n in range(len(a))], dtype=torch.float64)
        assert torch.allclose(b.double(), brute, atol=1e-6)
    assert pooled.name == "toy@pool2" and pooled.classes == d.classes and torch.equal(pooled.y_test, d.y_test)
    assert torch.equal(d.x_train, before)  # the input is not modified
    assert avg_pool(d, 1) is d
    for bad in (0, 8, 2.0, True):
        with pytest.raises(DatasetError, match=r"pooling factor must be an integer in 1\.\.7"):
            avg_pool(d, bad)
