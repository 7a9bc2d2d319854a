"""Train and measure the zoo: one job per model, run here (processes) or on a Ray cluster.

Every job trains its model through the book's training path (`grid.train_model`: cached, resumable) and
measures it with every lens (`measures.measure`); its row is cached too, so an interrupted zoo resumes
and a second run reads every row back. Rows come back to the caller in the grid's order whatever the
executor, and the caller's cache receives every row (a Ray worker on another machine has its own).
"""
from __future__ import annotations

import csv
import functools
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch

from ..core.cache import Cache, atomic_write_bytes, config_key
from ..core.data import ImageData
from .grid import FACTORS, ZooModel, initial_model, train_model, zoo_data

__all__ = ["ZooJob", "job_data", "model_row", "run_zoo", "to_csv", "worker_threads", "write_csv", "EXECUTORS"]

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ZooJob:
    """Everything one worker needs to train and measure one model (picklable, hashable into a cache key)."""

    model: ZooModel
    base: ZooModel  # names the model in the table
    dataset: str
    n_train: int | None
    n_test: int | None
    pool: int
    max_epochs: int
    measures: Any  # measures.MeasureSettings
    lenses: tuple[str, ...] | None  # None: every lens that can run
    device: str = "cpu"

    def key(self) -> dict[str, Any]:
        """What the row depends on (the model's name is only a label)."""
        d = asdict(self)
        d.pop("base")
        return {"zoo_row": d, "format": 1}

    def data_key(self) -> tuple:
        """What the job's images depend on: jobs with equal keys train and measure on the same images."""
        return self.dataset, self.n_train, self.n_test, self.pool, self.device


def job_data(job: ZooJob) -> ImageData:
    """The images `job` trains and measures on (`grid.zoo_data`), loaded and pooled afresh."""
    return zoo_data(job.dataset, job.n_train, job.n_test, job.pool, device=job.device)


@functools.lru_cache(maxsize=1)
def _process_data(key: tuple) -> ImageData:
    """This process's images for the data settings `key` (`ZooJob.data_key`): a worker loads them once, whatever
    the number of jobs it runs; one set is kept, the zoo's jobs all share it."""
    dataset, n_train, n_test, pool, device = key
    return zoo_data(dataset, n_train, n_test, pool, device=device)


def _compute_row(job: ZooJob, images: ImageData) -> dict[str, Any]:
    from .measures import as_row, measure

    start = time.perf_counter()
    net, history, seen = train_model(job.model, images, job.max_epochs)
    train_seconds = time.perf_counter() - start
    init = initial_model(job.model, images, job.device)
    row = as_row(measure(net, seen, lenses=job.lenses, init=init, settings=job.measures, seed=job.model.seed))
    return {"epochs": len(history.train_acc), "train_seconds": train_seconds, **row}


def model_row(job: ZooJob, cache: Cache | None = None,
              data: Callable[[ZooJob], ImageData] = job_data) -> dict[str, Any]:
    """One row of the zoo's table: the model's name and factors, its training epochs and seconds, every measure
    and its seconds. Cached by `job.key()`; computed under the entry's lock (concurrent runs wait, not repeat).
    `data(job)` gives the job's images, asked for only when the row is computed."""
    cache = cache or Cache()
    measured = cache.get_or_compute("zoo_rows", job.key(), lambda: _compute_row(job, data(job)))
    return {"model": job.model.name(job.base), **job.model.factors(), **measured}


def _process_row(job: ZooJob, cache: Cache | None = None) -> dict[str, Any]:
    """`model_row` with this process's images, loaded once per process (a local worker, a Ray worker)."""
    return model_row(job, cache, lambda j: _process_data(j.data_key()))


def worker_threads(workers: int) -> int:
    """Intra-op threads of each of `workers` local worker processes: the machine's cores split evenly."""
    return max(1, (os.cpu_count() or 1) // workers)


def _worker(job: ZooJob, threads: int, cache: Cache) -> dict[str, Any]:
    """A local worker process: `threads` intra-op threads (the machine's cores split between workers)."""
    torch.set_num_threads(threads)
    return _process_row(job, cache)


def _run_ray(jobs: Sequence[ZooJob], address: str | None, cpus_per_job: float, gpus_per_job: float,
             progress: bool) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as error:
        raise ImportError("the Ray executor needs Ray: pip install 'genlens[zoo]'") from error
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job)(_process_row)
    pending = {remote.remote(job): i for i, job in enumerate(jobs)}
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="zoo (ray)", disable=not progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                rows[pending.pop(ref)] = ray.get(ref)
                bar.update(1)
    return rows  # type: ignore[return-value]


def run_zoo(jobs: Sequence[ZooJob], *, executor: Literal["local", "ray"] = "local", workers: int = 1,
            address: str | None = None, gpus_per_job: float = 0.0, cache: Cache | None = None,
            progress: bool = True) -> list[dict[str, Any]]:
    """Every job's row, in the jobs' order.

    local: `workers` processes on this machine (1: in this process), the cores split evenly between them;
    ray: Ray's scheduler at `address` (None: a local Ray instance), each job asking for one CPU, or
    `gpus_per_job` of a GPU (e.g. 0.25: four jobs share a GPU) with the jobs' `device` set to "cuda".
    Rows are saved into `cache` (default: the book's) as they arrive; a local run returns the rows it computed or
    read, without reading them again. Every local worker process loads the images once (`ZooJob.data_key`), and
    so does a run in this process.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= gpus_per_job <= 1:
        raise ValueError(f"gpus_per_job must be in [0, 1], got {gpus_per_job}")
    if gpus_per_job > 0 and any(job.device != "cuda" for job in jobs):
        raise ValueError("gpus_per_job > 0 needs jobs with device='cuda'")
    cache = cache or Cache()
    from tqdm import tqdm

    if executor == "local" and workers == 1:
        loaded: dict[tuple, ImageData] = {}  # this run's images, loaded once, released with the run

        def data(job: ZooJob) -> ImageData:
            if job.data_key() not in loaded:
                loaded[job.data_key()] = job_data(job)
            return loaded[job.data_key()]

        return [model_row(job, cache, data) for job in tqdm(jobs, desc="zoo", disable=not progress)]
    if executor == "local":
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_worker, job, worker_threads(workers), cache) for job in jobs]
            return [f.result() for f in tqdm(futures, desc="zoo", disable=not progress)]
    rows = _run_ray(jobs, address, 1.0, gpus_per_job, progress)
    for job, row in zip(jobs, rows):  # a Ray worker on another machine saved its row in its own cache: keep it here
        key = config_key(job.key())
        with cache.lock("zoo_rows", key):
            if cache.load("zoo_rows", key) is None:
                cache.save("zoo_rows", key, {k: v for k, v in row.items() if k != "model" and k not in FACTORS},
                           job.key())
    return rows


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The table as CSV text: columns in the first row's order (every row has the same columns)."""
    if not rows:
        raise ValueError("no rows to write")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write the table atomically to `path`."""
    path = Path(path)
    atomic_write_bytes(path, to_csv(rows).encode())
    return path
