"""Device choice, seeding and timing: the only place that decides where tensors live."""
from __future__ import annotations

import platform
import random
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def cuda_memory_fraction(environ=None) -> float | None:
    """The share of a GPU's memory this process may take, from $GENLENS_CUDA_MEMORY_FRACTION (None: unset).

    Set when several chapters share one GPU (`bench/gpu/run_book.sh`: 0.9 / jobs), so that one chapter's
    caching allocator cannot hold the memory the others need. ValueError (one line) outside (0, 1].

    >>> cuda_memory_fraction({"GENLENS_CUDA_MEMORY_FRACTION": "0.2"}), cuda_memory_fraction({})
    (0.2, None)
    """
    import os

    text = (os.environ if environ is None else environ).get("GENLENS_CUDA_MEMORY_FRACTION", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise ValueError(f"GENLENS_CUDA_MEMORY_FRACTION must be a number in (0, 1], got {text!r}")
    return value


def pick_device(name: str = "auto") -> torch.device:
    """Return the device named by `name`; "auto" picks cuda, then mps, then cpu.

    A named device that is not available raises ValueError with a one-line message. On CUDA the
    process's share of the GPU's memory is capped by $GENLENS_CUDA_MEMORY_FRACTION where it is set.
    """
    device = _pick(name)
    if device.type == "cuda" and (fraction := cuda_memory_fraction()) is not None:
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    return device


def _pick(name: str) -> torch.device:
    if not isinstance(name, str) or (name.split(":")[0] not in _DEVICE_NAMES):
        raise ValueError(f"device must be one of {', '.join(_DEVICE_NAMES)} (or cuda:N), got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded with `seed` for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe(device: torch.device | str) -> str:
    """A human-readable name for `device`, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (2 threads, x86_64)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"mps ({platform.machine()})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels on `device` (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def timer(device: torch.device | str = "cpu") -> Iterator[dict[str, float]]:
    """Time a block in wall-clock seconds, synchronizing `device` before and after.

    >>> with timer() as t:
    ...     _ = sum(range(10))
    >>> t["s"] >= 0
    True
    """
    out: dict[str, float] = {}
    synchronize(device)
    start = time.perf_counter()
    try:
        yield out
    finally:
        synchronize(device)
        out["s"] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux/macOS), 0.0 where unknown."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024
    except Exception:  # pragma: no cover - Windows
        return 0.0



def best_time(fn: Callable[[], T], *, repeats: int = 3, warmup: int = 1,
              device: torch.device | str = "cpu") -> tuple[float, T]:
    """(fastest of `repeats` timed calls in seconds, the last call's result), after `warmup` untimed
    calls, synchronizing `device` around each timed call. The benches' one timing rule."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(max(repeats, 1)):
        with timer(device) as t:
            out = fn()
        times.append(t["s"])
    return min(times), out  # type: ignore[return-value]
