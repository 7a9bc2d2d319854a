"""genlens.core.cache: keys, round trips, atomic writes, corruption, weights-only loading, locking."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from genlens.core import cache as cache_mod
from genlens.core.cache import Cache, CorruptCacheEntry, atomic_write_bytes, atomic_write_json, cache_root, config_key

CONFIG = {"model": "mlp", "lr": 0.1, "layers": [512, 512], "nested": {"b": 2, "a": 1}}


def payload() -> dict:
    return {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "idx": torch.tensor([3, 1, 2]),
            "acc": 0.875, "epochs": 7, "name": "mlp", "curve": [0.5, 0.25], "nested": {"b": torch.ones(2)}}


def assert_same(a, b) -> None:
    """Equal structure, equal numbers, bitwise-equal tensors (same dtype)."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        assert a == b


def quiet_load(c: Cache, kind: str, key: str):
    """Load, failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return c.load(kind, key)


# --------------------------------------------------------------------------- keys and roots

def test_config_key_is_stable_and_order_independent():
    key = config_key(CONFIG)
    # Pinned: a change of the hashing would silently orphan every stored entry.
    assert key == "4102a7d95a0dafed6a1c"
    reordered = {"nested": {"a": 1, "b": 2}, "layers": [512, 512], "lr": 0.1, "model": "mlp"}
    assert config_key(reordered) == key
    assert config_key(dict(CONFIG)) == key


@pytest.mark.parametrize("change", [
    {"lr": 0.01}, {"model": "cnn"}, {"layers": [512, 256]}, {"layers": [512, 512, 512]},
    {"nested": {"a": 1, "b": 3}}, {"extra": None}, {"lr": "0.1"},
])
def test_config_key_differs_for_different_configs(change):
    other = {**CONFIG, **change}
    assert config_key(other) != config_key(CONFIG)


def test_cache_root_default_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    assert Cache().root == tmp_path / "here"
    assert Cache(tmp_path / "there").root == tmp_path / "there"
    monkeypatch.delenv("GENLENS_CACHE")
    assert cache_root() == Path.home() / ".genlens" / "cache"


def test_default_root_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path))
    Cache().save("results", "abc", {"x": torch.ones(1)})
    assert (tmp_path / "results" / "abc.pt").is_file() and (tmp_path / "results" / "abc.json").is_file()


# --------------------------------------------------------------------------- round trip

def test_save_load_round_trip_and_sidecar(tmp_path):
    c = Cache(tmp_path)
    obj = payload()
    path = c.save("results", "k1", obj, CONFIG)
    pt, js = c.paths("results", "k1")
    assert path == pt == tmp_path / "results" / "k1.pt" and js == tmp_path / "results" / "k1.json"
    assert_same(quiet_load(c, "results", "k1"), obj)
    meta = json.loads(js.read_text())
    assert meta["key"] == "k1"
    assert meta["config"] == CONFIG
    assert meta["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert c.load("results", "absent") is None
    assert c.load("other-kind", "k1") is None


def test_save_overwrites(tmp_path):
    c = Cache(tmp_path)
    c.save("r", "k", {"v": torch.zeros(2)})
    c.save("r", "k", {"v": torch.ones(3)})
    assert_same(quiet_load(c, "r", "k"), {"v": torch.ones(3)})


def test_load_map_location(tmp_path):
    c = Cache(tmp_path)
    c.save("r", "k", {"v": torch.ones(2)})
    assert c.load("r", "k", map_location=torch.device("meta"))["v"].device.type == "meta"


# --------------------------------------------------------------------------- atomic writes

def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("exc", [OSError, KeyboardInterrupt])
def test_atomic_write_bytes_crash_keeps_old_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"old contents")
    assert target.read_bytes() == b"old contents"

    def crash(*args, **kwargs):
        raise exc("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(exc):
        atomic_write_bytes(target, b"new contents that never land")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]
    atomic_write_json(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}


def test_save_crash_keeps_previous_entry(tmp_path, monkeypatch):
    c = Cache(tmp_path)
    old = {"v": torch.arange(4)}
    c.save("r", "k", old, {"version": 1})
    real_replace = os.replace

    def crash(*args, **kwargs):
        raise OSError("simulated crash while replacing")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        c.save("r", "k", {"v": torch.arange(100)}, {"version": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    assert_same(quiet_load(c, "r", "k"), old)
    assert json.loads(c.paths("r", "k")[1].read_text())["config"] == {"version": 1}
    assert _leftovers(tmp_path / "r") == []


def test_save_crash_between_payload_and_sidecar_is_never_read_as_mixed(tmp_path, monkeypatch):
    """The payload landed but the sidecar did not: the reader must not return the mismatched pair
    (today it reports the entry corrupt; keeping the old entry would be fine too)."""
    c = Cache(tmp_path)
    old = {"v": torch.arange(4)}
    c.save("r", "k", old)
    real_replace = os.replace

    def crash_on_sidecar(src, dst, *a, **kw):
        if str(dst).endswith(".json"):
            raise OSError("simulated crash")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", crash_on_sidecar)
    with pytest.raises(OSError):
        c.save("r", "k", {"v": torch.arange(100)})
    monkeypatch.setattr(os, "replace", real_replace)
    assert _leftovers(tmp_path / "r") == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = c.load("r", "k")
    if value is None:
        assert [w.category for w in caught] == [CorruptCacheEntry]
    else:
        assert_same(value, old)


# --------------------------------------------------------------------------- corruption

def _flip_bytes(pt: Path, js: Path) -> None:
    data = bytearray(pt.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    pt.write_bytes(bytes(data))


def _truncate(pt: Path, js: Path) -> None:
    pt.write_bytes(pt.read_bytes()[: len(pt.read_bytes()) // 2])


def _garbage_sidecar(pt: Path, js: Path) -> None:
    js.write_text("{not json at all\n\x00\x01")


def _missing_sidecar(pt: Path, js: Path) -> None:
    js.unlink()


def _wrong_checksum(pt: Path, js: Path) -> None:
    meta = json.loads(js.read_text())
    meta["sha256"] = "0" * 64
    js.write_text(json.dumps(meta))


def _garbage_payload_with_checksum(pt: Path, js: Path) -> None:
    """Not a torch file at all, but the sidecar agrees with it: torch.load itself must fail."""
    data = b"definitely\nnot a zip archive\n" * 10
    pt.write_bytes(data)
    meta = json.loads(js.read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    js.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _garbage_sidecar, _missing_sidecar, _wrong_checksum,
                                    _garbage_payload_with_checksum])
def test_corrupt_entry_is_detected_removed_and_recomputed(tmp_path, damage):
    c = Cache(tmp_path)
    key = config_key(CONFIG)
    good = payload()
    c.save("results", key, good, CONFIG)
    pt, js = c.paths("results", key)
    damage(pt, js)

    with pytest.warns(CorruptCacheEntry) as record:
        assert c.load("results", key) is None
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and "\r" not in message
    assert str(pt) in message
    assert not pt.exists() and not js.exists()

    calls = []

    def compute():
        calls.append(1)
        return payload()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry is already gone: no second warning
        assert_same(c.get_or_compute("results", CONFIG, compute), good)
    assert calls == [1]
    assert_same(quiet_load(c, "results", key), good)
    assert json.loads(js.read_text())["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()


def test_corrupt_entry_through_get_or_compute(tmp_path):
    c = Cache(tmp_path)
    c.get_or_compute("results", CONFIG, payload)
    pt, _ = c.paths("results", config_key(CONFIG))
    _truncate(pt, None)
    calls = []
    with pytest.warns(CorruptCacheEntry, match="corrupt cache entry"):
        value = c.get_or_compute("results", CONFIG, lambda: calls.append(1) or payload())
    assert calls == [1]
    assert_same(value, payload())
    assert_same(quiet_load(c, "results", config_key(CONFIG)), payload())


# --------------------------------------------------------------------------- weights_only

def _mark_executed(path: str) -> "str":
    """Would run while unpickling a `Malicious` object: leaves a marker file behind."""
    Path(path).write_text("executed")
    return path


class Malicious:
    """Arbitrary code executes as soon as a full (non weights-only) unpickler reconstructs it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_mark_executed, (self.marker,))


class Plain:
    """A harmless custom class: still not weights-only loadable."""

    def __init__(self) -> None:
        self.w = torch.ones(2)


def _torch_bytes(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [lambda m: {"w": torch.ones(2), "evil": Malicious(m)}, lambda m: Plain()])
def test_payload_that_is_not_weights_only_is_refused(tmp_path, make):
    c = Cache(tmp_path)
    marker = tmp_path / "marker"
    data = _torch_bytes(make(marker))
    assert not marker.exists()
    pt, js = c.paths("results", "k")
    pt.parent.mkdir(parents=True)
    pt.write_bytes(data)
    js.write_text(json.dumps({"key": "k", "sha256": hashlib.sha256(data).hexdigest(), "config": None}))

    with pytest.warns(CorruptCacheEntry) as record:
        assert c.load("results", "k") is None
    message = str(record[0].message)
    assert "\n" not in message and str(pt) in message
    assert not marker.exists(), "the payload was unpickled with code execution"
    assert not pt.exists() and not js.exists()

    # Control: the same bytes do run code (or build the class) under a full unpickler, so the
    # assertions above could fail.
    import io

    loaded = torch.load(io.BytesIO(data), weights_only=False)
    assert marker.exists() or isinstance(loaded, Plain)


def test_checkpoint_that_is_not_weights_only_is_refused(tmp_path):
    c = Cache(tmp_path)
    marker = tmp_path / "marker"
    path = c.checkpoint_path("models", "k")
    path.parent.mkdir(parents=True)
    path.write_bytes(_torch_bytes({"model": Malicious(marker)}))
    with pytest.warns(CorruptCacheEntry):
        assert c.load_checkpoint("models", "k") is None
    assert not marker.exists() and not path.exists()


# --------------------------------------------------------------------------- get_or_compute

def test_get_or_compute_computes_once(tmp_path):
    c = Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.randn(5), "n": len(calls)}

    first = c.get_or_compute("results", CONFIG, compute)
    assert calls == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = c.get_or_compute("results", dict(reversed(list(CONFIG.items()))), compute)
        fresh_instance = Cache(tmp_path).get_or_compute("results", CONFIG, compute)
    assert calls == [1]
    assert_same(again, first)
    assert_same(fresh_instance, first)
    pt, js = c.paths("results", config_key(CONFIG))
    assert pt.is_file() and json.loads(js.read_text())["config"] == CONFIG

    other = c.get_or_compute("results", {**CONFIG, "lr": 0.2}, compute)
    assert calls == [1, 1] and other["n"] == 2
    c.get_or_compute("other-kind", CONFIG, compute)
    assert calls == [1, 1, 1]


def test_get_or_compute_does_not_store_on_failure(tmp_path):
    c = Cache(tmp_path)

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        c.get_or_compute("results", CONFIG, fail)
    assert c.load("results", config_key(CONFIG)) is None
    assert c.get_or_compute("results", CONFIG, lambda: {"ok": 1}) == {"ok": 1}


def test_get_or_compute_waits_for_a_writer_holding_the_lock(tmp_path):
    """A reader arriving while another process is between writing the payload and the sidecar
    must wait for it, not declare the half-written entry corrupt, delete it and compute again."""
    c = Cache(tmp_path)
    key = config_key(CONFIG)
    pt, js = c.paths("results", key)
    value = {"x": torch.arange(6)}
    data = cache_mod._torch_bytes(value)
    calls, result, errors = [], [], []

    def reader():
        try:
            result.append(c.get_or_compute("results", CONFIG, lambda: calls.append(1) or {"x": torch.zeros(1)}))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    with c.lock("results", key):  # the "other process", mid-save
        atomic_write_bytes(pt, data)
        thread = threading.Thread(target=reader)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            thread.start()
            time.sleep(0.5)
            atomic_write_json(js, {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "config": CONFIG})
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors
    assert [w for w in caught if issubclass(w.category, CorruptCacheEntry)] == []
    assert calls == []
    assert_same(result[0], value)
    assert_same(quiet_load(c, "results", key), value)


CONCURRENT_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import torch
    from genlens.core.cache import Cache

    root, counter, ready, me, out = sys.argv[1:]
    Path(ready, me).touch()
    deadline = time.time() + 60
    while len(os.listdir(ready)) < 2 and time.time() < deadline:  # start both together
        time.sleep(0.005)

    def compute():
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.0)
        return {"x": torch.rand(8), "pid": os.getpid()}

    value = Cache(root).get_or_compute("results", {"shared": True}, compute)
    torch.save(value, out)
""")


def test_concurrent_processes_compute_once(tmp_path):
    ready = tmp_path / "ready"
    ready.mkdir()
    counter = tmp_path / "counter.txt"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT, str(tmp_path / "cache"), str(counter),
                               str(ready), name, str(tmp_path / f"{name}.pt")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines = counter.read_text().splitlines()
    assert len(lines) == 1, f"compute ran {len(lines)} times: {lines}"
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a["pid"] == b["pid"] == int(lines[0])
    assert torch.equal(a["x"], b["x"])
    assert_same(quiet_load(Cache(tmp_path / "cache"), "results", config_key({"shared": True})), a)


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_save_load_clear(tmp_path):
    c = Cache(tmp_path)
    assert c.load_checkpoint("models", "k") is None
    state = {"model": {"w": torch.randn(3, 3)}, "epoch": 4, "history": {"loss": [1.0, 0.5]}}
    c.save_checkpoint("models", "k", state)
    path = c.checkpoint_path("models", "k")
    assert path == tmp_path / "models" / "k.ckpt.pt" and path.is_file()
    assert path != c.paths("models", "k")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(c.load_checkpoint("models", "k"), state)
        newer = {**state, "epoch": 5}
        c.save_checkpoint("models", "k", newer)
        assert_same(c.load_checkpoint("models", "k"), newer)
    assert c.load("models", "k") is None  # a checkpoint is not an entry
    assert _leftovers(tmp_path / "models") == []
    c.clear_checkpoint("models", "k")
    assert not path.exists() and c.load_checkpoint("models", "k") is None
    c.clear_checkpoint("models", "k")  # clearing nothing is fine


@pytest.mark.parametrize("garbage", [b"", b"garbage bytes", b"PK\x03\x04truncated zip"])
def test_unreadable_checkpoint_warns_and_returns_none(tmp_path, garbage):
    c = Cache(tmp_path)
    path = c.checkpoint_path("models", "k")
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    with pytest.warns(CorruptCacheEntry) as record:
        assert c.load_checkpoint("models", "k") is None
    message = str(record[0].message)
    assert "\n" not in message and str(path) in message
    assert not path.exists()


def test_truncated_checkpoint_warns(tmp_path):
    c = Cache(tmp_path)
    c.save_checkpoint("models", "k", {"w": torch.randn(100)})
    path = c.checkpoint_path("models", "k")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(CorruptCacheEntry):
        assert c.load_checkpoint("models", "k") is None
