"""The zoo: its grid, its model family, its executors (in this process, local processes, Ray) and its claims."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import replace

import pytest
import scipy.stats
import torch

from genlens.book.settings_zoo import PROFILES, SIGNS
from genlens.core.cache import Cache
from genlens.core.models import ZooCNN, build_for
from genlens.lenses.intrinsic import probe_layers
from genlens.zoo import claims, grid, run


def test_the_quick_grid_has_51_distinct_models_that_vary_one_factor_a_crossed_pair_or_a_factor_and_its_seed() -> None:
    S = PROFILES["quick"]
    zoo = S.grid()
    assert len(zoo) == len(set(zoo)) == 51  # 31 one factor at a time, 2 base replicates, (5 + 4) x 2 replicated
    assert zoo[0] == S.base
    for m in zoo[1:]:
        diff = m.differs(S.base)
        assert len(diff) == 1 or set(diff) in ({"blocks", "shortcut"}, {"batch_size", "seed"}, {"width", "seed"}), diff
    names = [m.name(S.base) for m in zoo]
    assert len(set(names)) == len(names) and "blocks=3,shortcut=False" in names and "seed=2" in names


def test_grid_refuses_unknown_factors_and_crossed_factors_without_values() -> None:
    with pytest.raises(ValueError, match="unknown zoo factor 'depth'"):
        grid.grid(grid.ZooModel(), {"depth": [1, 2]})
    with pytest.raises(ValueError, match="crossed factor 'shortcut' has no values"):
        grid.grid(grid.ZooModel(), {"blocks": [1, 2]}, crossed=[("blocks", "shortcut")])


def test_zoo_cnn_knobs_change_the_architecture_as_named() -> None:
    plain = ZooCNN(width=8, blocks=3, batchnorm=False, shortcut=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in plain.modules()) == 1 + 2 * 3
    x = torch.rand(4, 1, 14, 14)
    net = build_for("zoo_cnn", (1, 14, 14), 10, width=8, blocks=1)
    assert net(x).shape == (4, 10)
    # with shortcut=False and the block's body zeroed, the block outputs relu(0) = 0; with a shortcut, relu(x)
    for shortcut in (True, False):
        block = ZooCNN(width=4, blocks=1, batchnorm=False, shortcut=shortcut).blocks[0]
        for p in block.parameters():
            torch.nn.init.zeros_(p)
        h = torch.randn(2, 4, 5, 5)
        assert torch.equal(block(h), torch.relu(h) if shortcut else torch.zeros_like(h))
    assert list(probe_layers(plain))[-2:] == ["last hidden", "output"]


def test_zoo_models_train_through_the_cached_path_and_start_from_the_recorded_initialisation(tmp_path) -> None:
    images = grid.zoo_data("mnist5k", 100, 50, 2)
    assert images.image_shape == (1, 14, 14) and images.name.endswith("@pool2")
    model = grid.ZooModel(width=4, blocks=1, label_noise=0.2)
    cache = Cache(tmp_path)
    net, history, seen = grid.train_model(model, images, 2, cache=cache)
    assert len(history.train_acc) <= 2
    assert (seen.y_train != images.y_train).float().mean() > 0.05  # labels were noised
    again, _, _ = grid.train_model(model, images, 2, cache=cache)  # read back, not retrained
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    init = grid.initial_model(model, images)
    assert not all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), init.state_dict().values()))
    fresh = grid.initial_model(model, images)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), init.state_dict().values()))
    # the very parameters the training path starts from (its snapshot at initialisation)
    _, traced, _ = grid.train_model(model, images, 1, cache=cache, snapshots=True)
    start = traced.snapshots[0]
    assert set(start) == {n for n, _ in init.named_parameters()}
    assert all(torch.equal(start[n], p) for n, p in init.named_parameters())


def _tiny_jobs(n: int = 3) -> list[run.ZooJob]:
    S = PROFILES["quick"].smoke()
    base = grid.ZooModel(width=4, blocks=1)
    zoo = grid.grid(base, {"width": (4, 6, 8)})[:n]
    return [run.ZooJob(m, base, "mnist5k", 60, 40, 2, 1, S.measures, ("accuracy", "dist_init", "path_norm"))
            for m in zoo]


def test_run_zoo_in_this_process_returns_rows_in_order_and_reads_them_back_from_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path))
    jobs = _tiny_jobs()
    rows = run.run_zoo(jobs, progress=False)
    assert [r["model"] for r in rows] == ["base", "width=6", "width=8"]
    assert [r["width"] for r in rows] == [4, 6, 8]
    for r in rows:
        assert 0 <= r["train_acc"] <= 1 and math.isclose(r["gap"], r["train_acc"] - r["test_acc"], abs_tol=1e-6)
        assert r["dist_init"] > 0 and r["dist_init_seconds"] >= 0
    text = run.to_csv(rows)
    back = list(csv.DictReader(io.StringIO(text)))
    assert [b["model"] for b in back] == ["base", "width=6", "width=8"] and float(back[2]["width"]) == 8
    monkeypatch.setattr(run, "_compute_row", lambda job, images: pytest.fail("recomputed a cached row"))
    assert run.run_zoo(jobs, progress=False) == rows


def _measured(row: dict) -> dict:
    """A row without its timings (the seconds each step took)."""
    return {k: v for k, v in row.items() if not k.endswith("seconds")}


def test_run_zoo_in_two_local_processes_gives_the_rows_of_one_process_to_the_last_bit(tmp_path, monkeypatch) -> None:
    jobs = _tiny_jobs(2)
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path / "a"))
    parallel = run.run_zoo(jobs, workers=2, progress=False)
    # in this process with the threads of each worker: the same kernels on the same images, so the same bits
    threads = torch.get_num_threads()
    torch.set_num_threads(run.worker_threads(2))
    try:
        serial = run.run_zoo(jobs, cache=Cache(tmp_path / "b"), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [r["model"] for r in parallel] == ["base", "width=6"]
    assert [_measured(p) for p in parallel] == [_measured(s) for s in serial]
    assert all(p["train_seconds"] >= 0 for p in parallel)
    # the workers saved their rows into the caller's cache: read back, not recomputed
    monkeypatch.setattr(run, "_compute_row", lambda job, images: pytest.fail("recomputed a row a worker saved"))
    assert run.run_zoo(jobs, progress=False) == parallel


def test_a_run_in_this_process_loads_the_images_once_and_reads_no_row_back(tmp_path, monkeypatch) -> None:
    jobs = _tiny_jobs(2)
    loads, reads = [], []
    zoo_data, load = run.zoo_data, Cache.load
    monkeypatch.setattr(run, "zoo_data", lambda *a, **k: loads.append(a) or zoo_data(*a, **k))
    monkeypatch.setattr(Cache, "load", lambda self, *a, **k: reads.append(a) or load(self, *a, **k))
    rows = run.run_zoo(jobs, cache=Cache(tmp_path), progress=False)
    assert len(rows) == 2 and len(loads) == 1
    assert [a[0] for a in reads if a[0] == "zoo_rows"] == ["zoo_rows"] * 2  # one look-up per row, before computing it
    # a worker process keeps one set of images for all its jobs
    run._process_data.cache_clear()
    again = [run._process_row(j, Cache(tmp_path / "worker")) for j in jobs]
    assert len(loads) == 2 and [_measured(r) for r in again] == [_measured(r) for r in rows]
    run._process_data.cache_clear()


def test_run_zoo_on_a_local_ray_instance_gathers_every_row_into_the_callers_cache(tmp_path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path / "workers"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"GENLENS_CACHE": str(tmp_path / "workers"), "TQDM_DISABLE": "1"}})
    try:
        jobs = _tiny_jobs(2)
        mine = Cache(tmp_path / "driver")
        rows = run.run_zoo(jobs, executor="ray", cache=mine, progress=False)
    finally:
        ray.shutdown()
    assert [r["model"] for r in rows] == ["base", "width=6"]
    monkeypatch.setattr(run, "_compute_row", lambda job, images: pytest.fail("recomputed a row Ray returned"))
    assert [run.model_row(j, mine)["train_acc"] for j in jobs] == [r["train_acc"] for r in rows]


def test_run_zoo_refuses_bad_settings_before_any_work() -> None:
    jobs = _tiny_jobs(1)
    with pytest.raises(ValueError, match="executor must be one of local, ray"):
        run.run_zoo(jobs, executor="slurm")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run.run_zoo(jobs, workers=0)
    with pytest.raises(ValueError, match="gpus_per_job > 0 needs jobs with device='cuda'"):
        run.run_zoo(jobs, gpus_per_job=0.5)


def test_a_claim_is_tested_on_its_factors_models_and_their_seed_replicates_only() -> None:
    table = {"model": ["base", "width=8", "width=32", "lr=0.1", "lr=0.2", "seed=1", "width=8,seed=1", "lr=0.1,seed=1"],
             "width": [16, 8, 32, 16, 16, 16, 8, 16], "lr": [0.05, 0.05, 0.05, 0.1, 0.2, 0.05, 0.05, 0.1],
             "seed": [0, 0, 0, 0, 0, 1, 1, 1],
             "sharpness": [2.0, 3.0, 1.0, 9.0, 0.0, 2.5, 3.5, 8.0], "gap": [0.1, 0.2, 0.05, 0.0, 0.3, 0.1, 0.2, 0.0]}
    factors = ["width", "lr", "seed"]
    claim = replace(claims.CLAIMS[1], factor="width")  # width vs sharpness, expect <
    r = claims.evaluate(claim, table, factors, n_boot=200, generator=torch.Generator().manual_seed(0))
    # base, width=8, width=32, seed=1 and width=8,seed=1: widths 16 8 32 16 8 against sharpness 2 3 1 2.5 3.5
    assert r.n_models == 5 and r.per_factor == {}
    assert r.tau == pytest.approx(scipy.stats.kendalltau([16, 8, 32, 16, 8], [2, 3, 1, 2.5, 3.5])[0])
    whole = claims.evaluate(claims.CLAIMS[0], table, factors, n_boot=200, generator=torch.Generator().manual_seed(0))
    assert whole.n_models == 8 and set(whole.per_factor) == {"width", "lr"}  # the seed is the replicate
    assert whole.per_factor["lr"] == pytest.approx(-1.0)
    unvaried = claims.evaluate(replace(claim, factor="blocks"), table, factors, n_boot=200)
    assert unvaried.n_models == 0 and math.isnan(unvaried.tau)


def test_every_sign_and_claim_names_a_measure_the_lenses_yield() -> None:
    from genlens.zoo.measures import MEASURES

    assert set(SIGNS) == set(MEASURES) - {"train_acc", "test_acc", "gap"}
    for c in claims.CLAIMS:
        for column in (c.x, c.y):
            assert column in MEASURES or column in grid.FACTORS, (c.id, column)


def test_smoke_settings_shrink_the_grid_and_keep_the_family() -> None:
    for name, S in PROFILES.items():
        small = S.smoke()
        zoo = small.grid()
        assert len(zoo) <= 5 and small.max_epochs == 1 and small.base == S.base, name
