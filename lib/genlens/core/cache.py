"""A content-addressed store for trained models and results.

Each entry lives at ``<root>/<kind>/<key>.pt`` where ``key`` hashes the entry's full config, with a
sidecar ``<key>.json`` holding the config and the payload's SHA-256. Writes are atomic (temp file +
rename), readers verify the checksum, a corrupt entry is reported and recomputed, and a file lock
keeps concurrent runs from computing or writing the same entry twice. Payloads are saved with
``torch.save`` and read back only with ``torch.load(..., weights_only=True)``: tensors, state dicts,
numbers, strings, lists and dicts of these.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch


class CorruptCacheEntry(UserWarning):
    """Warned when a cache entry fails its checksum or cannot be read; the entry is recomputed."""


def cache_root() -> Path:
    """The cache folder: ``$GENLENS_CACHE`` or ``~/.genlens/cache``."""
    return Path(os.environ.get("GENLENS_CACHE", "~/.genlens/cache")).expanduser()


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 20-hex-digit key for a JSON-serializable config (order of keys does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _torch_bytes(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed), released on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Cache:
    """Content-addressed storage of torch-serializable payloads under `root` (default `cache_root()`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def paths(self, kind: str, key: str) -> tuple[Path, Path]:
        """(payload, sidecar) paths of an entry."""
        folder = self.root / kind
        return folder / f"{key}.pt", folder / f"{key}.json"

    def checkpoint_path(self, kind: str, key: str) -> Path:
        """Where an unfinished computation of this entry keeps its last checkpoint."""
        return self.root / kind / f"{key}.ckpt.pt"

    def load(self, kind: str, key: str, map_location: str | torch.device = "cpu") -> Any | None:
        """The payload stored under (kind, key), or None if absent or corrupt (corrupt: warned, removed)."""
        payload, sidecar = self.paths(kind, key)
        if not payload.exists():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            data = payload.read_bytes()
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            import io

            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except Exception as err:  # corrupt payload, sidecar, or unpicklable content
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"corrupt cache entry {payload} ({reason}); recomputing it", CorruptCacheEntry, stacklevel=2)
            payload.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            return None

    def save(self, kind: str, key: str, obj: Any, config: Mapping[str, Any] | None = None) -> Path:
        """Store `obj` atomically under (kind, key); the sidecar records `config` and the checksum."""
        payload, sidecar = self.paths(kind, key)
        data = _torch_bytes(obj)
        atomic_write_bytes(payload, data)
        atomic_write_json(sidecar, {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "config": config})
        return payload

    def save_checkpoint(self, kind: str, key: str, obj: Any) -> None:
        """Atomically replace the checkpoint of an unfinished computation."""
        atomic_write_bytes(self.checkpoint_path(kind, key), _torch_bytes(obj))

    def load_checkpoint(self, kind: str, key: str, map_location: str | torch.device = "cpu") -> Any | None:
        """The last checkpoint, or None if there is none or it cannot be read (then warned)."""
        path = self.checkpoint_path(kind, key)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:
            warnings.warn(f"unreadable checkpoint {path} ({type(err).__name__}); starting over", CorruptCacheEntry, stacklevel=2)
            path.unlink(missing_ok=True)
            return None

    def clear_checkpoint(self, kind: str, key: str) -> None:
        self.checkpoint_path(kind, key).unlink(missing_ok=True)

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold the entry's lock: concurrent runs wait instead of computing the same entry twice."""
        with file_lock(self.root / kind / f"{key}.lock"):
            yield

    def get_or_compute(self, kind: str, config: Mapping[str, Any], compute: Callable[[], Any],
                       map_location: str | torch.device = "cpu") -> Any:
        """Return the payload for `config`, computing and storing it under the lock if needed.

        The entry is read only under its lock: a reader outside it could catch another process
        between writing the payload and its sidecar, take the entry for corrupt and delete it.
        """
        key = config_key(config)
        with self.lock(kind, key):
            hit = self.load(kind, key, map_location)
            if hit is not None:
                return hit
            value = compute()
            self.save(kind, key, value, config)
            return value
