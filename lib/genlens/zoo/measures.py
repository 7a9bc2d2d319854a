"""One row of measures for one trained classifier: every lens of the book, called as its chapter calls it.

`measure(model, data)` runs the requested lenses (default: all of `LENSES`) on a trained classifier of
`ImageData` and returns one `Measurement` per column of `MEASURES`. No measure is written here: each
lens calls the library exactly as its chapter does --

* ``accuracy``: `core.train.evaluate` on the full training and test sets; the gap is train minus test.
* ``hfc`` (chapter hfc): accuracy on the rescaled high-frequency part of test images at the chapter's
  radius (`lenses.fourier.band_correct`).
* ``landscape`` (chapter landscape): the rise of the training loss half-way out along filter-normalized
  random directions, biases and BatchNorm left out (`random_direction`, `evaluate_points`, `loss_rise`).
* ``hessian`` (chapter hessian): the top eigenvalue (Lanczos) and Hutchinson's trace of the Hessian of the
  training loss, from one shared `HessianOperator`.
* ``pgd``, ``lbfgs`` (chapter adversarial): test accuracy under L-inf PGD; the mean minimum L-BFGS
  distortion of the successful targeted attacks on training images (targets drawn among the wrong labels).
* ``intrinsic`` (chapter intrinsic): TwoNN intrinsic dimension of the last hidden layer (every probed
  layer in `per_layer`).
* ``dist_init``, ``path_norm``, ``spectral``, ``pacbayes``, ``weightwatcher``: the baselines of Jiang et al.
  (2020) and Dziugaite et al. (2020) in `lenses.complexity` (imported only when one of them runs).

The model is measured in eval mode and left exactly as it came (parameters, buffers, gradients and
train/eval flags); the global random state is untouched and every draw comes from generators seeded by
`seed`, so a measurement is deterministic. A lens that cannot run (``dist_init`` without `init`, a
missing optional package, an architecture a lens does not know) gives NaN values with the reason in
`Measurement.note`, never an exception; bad input is a one-line ValueError before any work.
"""
from __future__ import annotations

import csv
import math
import statistics
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..core.data import ImageData
from ..core.nn import check_model, eval_mode, model_device

__all__ = ["MeasureSettings", "Measurement", "LENSES", "MEASURES", "DESCRIPTIONS", "check", "measure", "as_row",
           "place"]

LENSES = ("accuracy", "hfc", "landscape", "hessian", "pgd", "lbfgs", "intrinsic",
          "dist_init", "path_norm", "spectral", "pacbayes", "weightwatcher")

MEASURES: dict[str, str] = {  # column -> the lens that yields it, in column order
    "train_acc": "accuracy", "test_acc": "accuracy", "gap": "accuracy",
    "hf_reliance": "hfc",
    "sharpness": "landscape",
    "hessian_top": "hessian", "hessian_trace": "hessian",
    "pgd_acc": "pgd",
    "lbfgs_distortion": "lbfgs",
    "id_last": "intrinsic",
    "dist_init": "dist_init",
    "path_norm": "path_norm",
    "spectral_margin": "spectral",
    "pacbayes_flatness": "pacbayes",
    "ww_alpha": "weightwatcher",
}

DESCRIPTIONS: dict[str, str] = {
    "train_acc": "accuracy on the full training set (fraction)",
    "test_acc": "accuracy on the full test set (fraction)",
    "gap": "generalization gap: train_acc - test_acc (fraction)",
    "hf_reliance": "accuracy on the rescaled high-frequency part of test images at the hfc chapter's radius "
                   "(fraction; Wang et al. 2020, chapter hfc)",
    "sharpness": "rise of the training loss half-way out, 1/2 [f(-a) + f(a)] - f(0), along filter-normalized random "
                 "directions, mean over directions (nats; Li et al. 2018, chapter landscape)",
    "hessian_top": "top eigenvalue of the Hessian of the training loss (nats per squared parameter; Yao et al. "
                   "2018, chapter hessian)",
    "hessian_trace": "trace of the Hessian of the training loss, Hutchinson's estimate (nats per squared parameter; "
                     "chapter hessian)",
    "pgd_acc": "test accuracy under an L-inf PGD attack (fraction; Madry et al. 2018, chapter adversarial)",
    "lbfgs_distortion": "mean minimum distortion sqrt(sum r^2 / n) of successful targeted box-constrained L-BFGS "
                        "attacks on training images (pixel scale [0, 1]; Szegedy et al. 2014, chapter adversarial)",
    "id_last": "TwoNN intrinsic dimension of the last hidden layer (dimensions; Ansuini et al. 2019, chapter "
               "intrinsic)",
    "dist_init": "distance of the parameters from their initialization (parameter units; Jiang et al. 2020)",
    "path_norm": "path norm: the squared-weights network on an all-ones input (Jiang et al. 2020)",
    "spectral_margin": "log of the product of the layers' spectral norms over the squared margin quantile "
                       "(log units; Bartlett et al. 2017, Jiang et al. 2020)",
    "pacbayes_flatness": "magnitude-aware PAC-Bayes flatness: 1 / sigma'^2 of the largest relative perturbation "
                         "that raises the training error by the target deviation (Jiang et al. 2020)",
    "ww_alpha": "WeightWatcher's mean power-law exponent alpha of the layers' eigenvalue spectra "
                "(Martin and Mahoney 2021)",
}


@dataclass(frozen=True)
class MeasureSettings:
    """Sizes of every lens for one small model on a CPU (defaults: all lenses of a small MNIST CNN in about four
    seconds on two cores). The images come from stratified subsets of `data` fixed by the measurement's seed:
    `n_train` training and `n_test` test images; a lens that needs fewer takes the first n of its subset."""

    n_train: int = 1000  # training images under the train-set measures (ID, margins; the pool of the others)
    n_test: int = 1000  # test images under the accuracy-like measures (HF reliance; the pool of PGD)
    hf_radius: float = 4.0  # radius of the low/high-frequency split (frequency bins; the hfc chapter's quick figures)
    hf_rescale: bool = True  # divide each part by its per-image maximum before the model sees it (the paper's code)
    n_sharpness: int = 256  # training images of the sharpness loss (the landscape chapter's quick 1-D plots: 500)
    sharpness_directions: int = 3  # filter-normalized random directions (seeds seed, seed + 1, ...; landscape: 5)
    sharpness_alpha: float = 0.5  # step along each direction, in units of the filter norms (landscape: 1/2)
    n_hessian: int = 128  # training images the Hessian's loss averages over (the hessian chapter: 1,000; 256 moved
    # the top eigenvalue of the zoo's base CNN by 6% and doubled the time)
    hessian_tol: float = 1e-2  # Lanczos: stop when the top residual is <= this times |lambda_max| (relative)
    hessian_max_iter: int = 20  # Lanczos steps at most (one Hessian-vector product each)
    trace_probes: int = 6  # Rademacher probes of Hutchinson's trace (one block; the standard error is in the note)
    pgd_eps: float = 0.1  # L-inf radius of PGD (pixel scale [0, 1]; the adversarial chapter's MNIST radius)
    pgd_steps: int = 10  # PGD steps (the adversarial chapter's quick profile)
    pgd_alpha: float | None = None  # PGD step size (pixel scale; None: 2.5 eps / steps, attacks.pgd's default)
    n_pgd: int = 250  # test images attacked by PGD
    n_lbfgs: int = 25  # training images attacked by L-BFGS (the paper's protocol: training images)
    lbfgs_c_init: float = 0.1  # L-BFGS: first penalty c (the adversarial chapter's quick profile)
    lbfgs_search_steps: int = 4  # L-BFGS: bisection steps on c (quick profile)
    lbfgs_max_iter: int = 20  # L-BFGS: iterations per solve (quick profile)
    id_points: int = 1000  # training images whose representations TwoNN measures
    spectral_quantile: float = 0.1  # margin quantile of the spectral bound (Jiang et al.: 10th percentile)
    n_pacbayes: int = 500  # training images of the PAC-Bayes flatness search
    pacbayes_deviation: float = 0.1  # PAC-Bayes: target rise of the training error (fraction)
    pacbayes_samples: int = 3  # PAC-Bayes: perturbations averaged per candidate sigma
    pacbayes_search_steps: int = 10  # PAC-Bayes: bisection steps on sigma

    def __post_init__(self) -> None:
        counts = ("n_train", "n_test", "n_sharpness", "sharpness_directions", "n_hessian", "hessian_max_iter",
                  "trace_probes", "pgd_steps", "n_pgd", "n_lbfgs", "lbfgs_search_steps", "lbfgs_max_iter",
                  "id_points", "n_pacbayes", "pacbayes_samples", "pacbayes_search_steps")
        bad = [f"{k}={getattr(self, k)!r}" for k in counts
               if isinstance(getattr(self, k), bool) or not isinstance(getattr(self, k), int) or getattr(self, k) < 1]
        bad += [f"{k}={getattr(self, k)!r}" for k in ("hf_radius", "sharpness_alpha", "hessian_tol", "pgd_eps",
                                                       "lbfgs_c_init", "pacbayes_deviation")
                if not getattr(self, k) > 0]
        if self.pgd_alpha is not None and not self.pgd_alpha > 0:
            bad.append(f"pgd_alpha={self.pgd_alpha!r}")
        if not 0 < self.spectral_quantile < 1:
            bad.append(f"spectral_quantile={self.spectral_quantile!r}")
        if bad:
            raise ValueError(f"MeasureSettings: counts must be integers >= 1, sizes > 0 and spectral_quantile in "
                             f"(0, 1); got {', '.join(bad)}")
        if self.trace_probes < 2 or self.id_points < 3:
            raise ValueError(f"MeasureSettings: trace_probes must be >= 2 (a standard error) and id_points >= 3 "
                             f"(TwoNN); got {self.trace_probes}, {self.id_points}")

    def smoke(self) -> MeasureSettings:
        """Everything tiny: the code path only, never the values."""
        return replace(self, n_train=60, n_test=60, n_sharpness=30, sharpness_directions=2, n_hessian=30,
                       hessian_max_iter=3, trace_probes=2, pgd_steps=2, n_pgd=30, n_lbfgs=4, lbfgs_search_steps=1,
                       lbfgs_max_iter=3, id_points=40, n_pacbayes=30, pacbayes_samples=1, pacbayes_search_steps=2)


@dataclass(frozen=True)
class Measurement:
    """One column of one model's row."""

    name: str  # column name, one of MEASURES
    lens: str  # one of LENSES
    value: float  # in the units of DESCRIPTIONS[name]; NaN if not measured (then `note` says why)
    seconds: float  # wall time of this lens, split evenly over the measures one lens call yields
    per_layer: tuple[tuple[str, float], ...] = ()  # (layer, value) where the lens is per layer (ID per probed layer)
    note: str = ""  # why the value is NaN, or what to know about it (non-convergence, attack success, ...)


@dataclass(frozen=True)
class _Context:
    """What every lens sees: the model in eval mode, data on its device, the subsets, settings and seed."""

    model: nn.Module
    data: ImageData  # the full data set (accuracy)
    train: tuple[torch.Tensor, torch.Tensor]  # the n_train subset of the training images
    test: tuple[torch.Tensor, torch.Tensor]  # the n_test subset of the test images
    init: nn.Module | None
    settings: MeasureSettings
    seed: int

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + offset)


@dataclass(frozen=True)
class _Value:
    name: str
    value: float
    per_layer: tuple[tuple[str, float], ...] = ()
    note: str = ""


# ----------------------------------------------------------------------------- the lenses

def _accuracy(ctx: _Context) -> list[_Value]:
    from ..core.train import evaluate

    train = evaluate(ctx.model, ctx.data.x_train, ctx.data.y_train)[1]
    test = evaluate(ctx.model, ctx.data.x_test, ctx.data.y_test)[1]
    return [_Value("train_acc", train), _Value("test_acc", test), _Value("gap", train - test)]


def _hfc(ctx: _Context) -> list[_Value]:
    from ..lenses import fourier

    S = ctx.settings
    _, high = fourier.band_correct(ctx.model, ctx.test, S.hf_radius, rescale=S.hf_rescale)
    return [_Value("hf_reliance", high.float().mean().item())]


def _landscape(ctx: _Context) -> list[_Value]:
    from ..lenses import landscape

    S, a = ctx.settings, ctx.settings.sharpness_alpha
    dirs = [landscape.random_direction(ctx.model, norm="filter", ignore="biasbn", generator=ctx.generator(k))
            for k in range(S.sharpness_directions)]
    K = len(dirs)
    eye = torch.eye(K)
    points = torch.cat([torch.zeros(1, K), -a * eye, a * eye])  # f(0), then f(-a) and f(a) along each direction
    x, y = ctx.train
    loss = landscape.evaluate_points(ctx.model, (x[:S.n_sharpness], y[:S.n_sharpness]), dirs, points).loss.cpu()
    curves = torch.stack([loss[1:K + 1], loss[:1].expand(K), loss[K + 1:]], 1)  # (K, 3) at t = -a, 0, a
    rise = landscape.loss_rise(curves, [-a, 0.0, a], at=a)
    return [_Value("sharpness", rise.mean().item())]


def _hessian(ctx: _Context) -> list[_Value]:
    from ..lenses import hessian

    S = ctx.settings
    x, y = ctx.train
    data = (x[:S.n_hessian], y[:S.n_hessian])
    # on a CPU double backward is the faster way to the same products (forward-over-reverse, vmapped, on a GPU)
    method = "double_backward" if x.device.type == "cpu" else "auto"
    op = hessian.HessianOperator(ctx.model, data, batch_size=S.n_hessian, method=method)
    eig = hessian.eigenpairs(ctx.model, data, tol=S.hessian_tol, max_iter=S.hessian_max_iter, operator=op,
                             generator=ctx.generator())
    tr = hessian.trace(ctx.model, data, tol=S.hessian_tol, max_probes=S.trace_probes, min_probes=S.trace_probes, block=S.trace_probes,
                       operator=op, generator=ctx.generator(1))
    top = eig.eigenvalues[0].item()
    note = "" if eig.converged else (f"Lanczos not converged in {eig.iterations[0]} steps (residual "
                                     f"{eig.residuals[0].item():.2g})")
    return [_Value("hessian_top", top, note=note),
            _Value("hessian_trace", tr.value, note=f"{len(tr.samples)} probes, standard error {tr.std_error:.3g}")]


def _pgd(ctx: _Context) -> list[_Value]:
    from ..lenses import attacks

    S = ctx.settings
    x, y = (t[:S.n_pgd] for t in ctx.test)
    attack = partial(attacks.pgd, ctx.model, eps=S.pgd_eps, steps=S.pgd_steps, alpha=S.pgd_alpha,
                     generator=ctx.generator())
    return [_Value("pgd_acc", attacks.accuracy_under(ctx.model, attack, x, y))]


def _lbfgs(ctx: _Context) -> list[_Value]:
    from ..core.train import predict
    from ..lenses import attacks

    S, K = ctx.settings, ctx.data.num_classes
    x, y = (t[:S.n_lbfgs] for t in ctx.train)
    target = (y + torch.randint(1, K, (len(y),), generator=ctx.generator()).to(y.device)) % K  # a wrong label
    adv = attacks.lbfgs(ctx.model, x, target, c_init=S.lbfgs_c_init, search_steps=S.lbfgs_search_steps,
                        max_iter=S.lbfgs_max_iter)
    hit = predict(ctx.model, adv, mixed_precision=False).argmax(1) == target
    dist = attacks.distortion(x, adv)
    note = f"{int(hit.sum())} of {len(hit)} attacks reached their target"
    value = dist[hit].mean().item() if hit.any() else math.nan
    return [_Value("lbfgs_distortion", value, note=note)]


def _last_linear(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layer whose input is the last hidden layer")
    return names[-1]


def _intrinsic(ctx: _Context) -> list[_Value]:
    from ..core.nn import activations
    from ..lenses import intrinsic

    S = ctx.settings
    note = ""
    try:
        layers = intrinsic.probe_layers(ctx.model)
        layers.pop("input")  # the same for every model of a data set
    except ValueError:  # an architecture the intrinsic chapter does not probe: the input of its last linear layer
        last = _last_linear(ctx.model)
        layers = {"last hidden": f"{last}:in", "output": last}
        note = f"probe_layers does not know {type(ctx.model).__name__}: last hidden = input of {last}"
    reps = activations(ctx.model, ctx.train[0][:S.id_points], layers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = {label: intrinsic.twonn(r) for label, r in reps.items()}
    note = "; ".join([note] * bool(note) + [str(w.message) for w in caught])
    return [_Value("id_last", ids["last hidden"], tuple(ids.items()), note)]


def _complexity():
    """genlens.lenses.complexity, imported only when a baseline runs (through sys.modules, so a test can hide it)."""
    import importlib

    return importlib.import_module("genlens.lenses.complexity")


def _dist_init(ctx: _Context) -> list[_Value]:
    if ctx.init is None:
        return [_Value("dist_init", math.nan, note="needs the model at initialization (init=...)")]
    return [_Value("dist_init", float(_complexity().distance_from_init(ctx.model, ctx.init)))]


def _path_norm(ctx: _Context) -> list[_Value]:
    return [_Value("path_norm", float(_complexity().path_norm(ctx.model, ctx.data.image_shape)))]


def _spectral(ctx: _Context) -> list[_Value]:
    x, y = ctx.train
    value = _complexity().spectral_product_over_margin(ctx.model, x, y, quantile=ctx.settings.spectral_quantile)
    return [_Value("spectral_margin", float(value))]


def _pacbayes(ctx: _Context) -> list[_Value]:
    S = ctx.settings
    x, y = (t[:S.n_pacbayes] for t in ctx.train)
    value = _complexity().pacbayes_mag_flatness(ctx.model, x, y, target_deviation=S.pacbayes_deviation,
                                                n_samples=S.pacbayes_samples, search_steps=S.pacbayes_search_steps,
                                                generator=ctx.generator())
    return [_Value("pacbayes_flatness", float(value))]


def _weightwatcher(ctx: _Context) -> list[_Value]:
    return [_Value("ww_alpha", float(_complexity().weightwatcher_alpha(ctx.model)))]


_RUN: dict[str, Callable[[_Context], list[_Value]]] = {
    "accuracy": _accuracy, "hfc": _hfc, "landscape": _landscape, "hessian": _hessian, "pgd": _pgd, "lbfgs": _lbfgs,
    "intrinsic": _intrinsic, "dist_init": _dist_init, "path_norm": _path_norm, "spectral": _spectral,
    "pacbayes": _pacbayes, "weightwatcher": _weightwatcher,
}
assert tuple(_RUN) == LENSES and set(MEASURES.values()) == set(LENSES) and set(DESCRIPTIONS) == set(MEASURES)


# ----------------------------------------------------------------------------- checks and the row

def _shape(x: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, x)) + ")"


def check(model: nn.Module, data: ImageData, *, lenses: Sequence[str] | None = None,
          init: nn.Module | None = None) -> tuple[str, ...]:
    """The lenses to run (`LENSES` order), after one-line ValueErrors (TypeErrors for wrong types) on bad input:
    unknown lens names, data that do not fit the model (one forward pass on two training images, in eval mode,
    without gradients), an `init` whose parameters differ in name or shape from the model's."""
    check_model(model)
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be a genlens.core.data.ImageData, got {type(data).__name__}")
    if isinstance(lenses, str):
        lenses = [lenses]
    wanted = list(LENSES if lenses is None else lenses)
    unknown = [name for name in wanted if name not in LENSES]
    if unknown:
        raise ValueError(f"unknown lens {', '.join(map(repr, unknown))}; known: {', '.join(LENSES)}")
    if not wanted:
        raise ValueError(f"lenses must name at least one lens; known: {', '.join(LENSES)}")
    if len(data.y_train) < 2 or len(data.y_test) < 1:
        raise ValueError(f"data {data.name} needs at least 2 training and 1 test image, got {len(data.y_train)} "
                         f"and {len(data.y_test)}")
    device = model_device(model)
    shape = _shape(data.image_shape)
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(data.x_train[:2].to(device))
    except (RuntimeError, ValueError, IndexError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"data of shape {shape} does not fit the model: {first}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, data.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        width = out.shape[-1] if isinstance(out, torch.Tensor) and out.dim() == 2 else got
        raise ValueError(f"the model gives {width} outputs per image but data {data.name} has {data.num_classes} "
                         f"classes")
    if init is not None:
        check_model(init, "init")
        mine = {n: tuple(p.shape) for n, p in model.named_parameters()}
        theirs = {n: tuple(p.shape) for n, p in init.named_parameters()}
        if mine != theirs:
            diff = next((n for n in mine if theirs.get(n) != mine[n]), None) or next(n for n in theirs if n not in mine)
            raise ValueError(f"init must have the model's parameters: {diff!r} is {mine.get(diff, 'missing')} in the "
                             f"model, {theirs.get(diff, 'missing')} in init")
    return tuple(name for name in LENSES if name in wanted)


def _subset(data: ImageData, n_train: int, n_test: int, seed: int) -> ImageData:
    return data.subset(min(n_train, len(data.y_train)), min(n_test, len(data.y_test)), seed=seed)


def measure(model: nn.Module, data: ImageData, *, lenses: Sequence[str] | None = None, init: nn.Module | None = None,
            settings: MeasureSettings = MeasureSettings(), seed: int = 0, progress: bool = False) -> list[Measurement]:
    """One `Measurement` per column of `MEASURES` yielded by the requested lenses (default: all), in column order.

    model: a classifier of `data`'s images, inputs (N, C, H, W) in [0, 1] (put any input normalization inside
    it: `core.models.with_normalization`), outputs (N, num_classes) logits; data: on any device (moved to the
    model's); init: the same architecture at initialization (for ``dist_init``). Subsets of `settings.n_train`
    training and `settings.n_test` test images are drawn stratified with `seed`. A lens that cannot run yields
    NaN values with the reason in `note`. `progress`: a tqdm bar over the lenses (on stderr).
    """
    from ..core.device import timer

    if not isinstance(settings, MeasureSettings):
        raise TypeError(f"settings must be a MeasureSettings, got {type(settings).__name__}")
    todo = check(model, data, lenses=lenses, init=init)
    device = model_device(model)
    data = data.to(device)
    sub = _subset(data, settings.n_train, settings.n_test, seed)
    ctx = _Context(model, data, (sub.x_train, sub.y_train), (sub.x_test, sub.y_test), init, settings, seed)
    saved = {n: t.detach().clone() for n, t in model.state_dict(keep_vars=True).items()}
    grads = {n: (p.grad.detach().clone() if p.grad is not None else None) for n, p in model.named_parameters()}
    out: list[Measurement] = []
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc="measure", unit="lens", disable=not progress, leave=False)
    try:
        with eval_mode(model):
            for lens in bar:
                bar.set_postfix_str(lens)
                with torch.random.fork_rng(devices=[device] if device is not None and device.type == "cuda" else []):
                    torch.manual_seed(seed)
                    with timer(device or "cpu") as t:
                        try:
                            values = _RUN[lens](ctx)
                        except Exception as err:  # a lens that cannot run: NaN with the reason
                            reason = (str(err).strip().splitlines() or [""])[0]
                            values = [_Value(name, math.nan, note=f"{type(err).__name__}: {reason}")
                                      for name, owner in MEASURES.items() if owner == lens]
                share = t["s"] / len(values)
                out += [Measurement(v.name, lens, float(v.value), share, v.per_layer, v.note) for v in values]
    finally:
        bar.close()
        with torch.no_grad():  # bitwise as it came, whatever a lens did (also on an exception)
            for n, t in model.state_dict(keep_vars=True).items():
                if not torch.equal(t, saved[n]):
                    t.copy_(saved[n])
            for n, p in model.named_parameters():
                p.grad = grads[n]
    order = list(MEASURES)
    return sorted(out, key=lambda m: order.index(m.name))


def as_row(measurements: Sequence[Measurement]) -> dict[str, float]:
    """name -> value, then name + "_seconds" -> seconds, for every measurement (a row of the zoo's table)."""
    row = {m.name: m.value for m in measurements}
    row.update({f"{m.name}_seconds": m.seconds for m in measurements})
    return row


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_zoo(zoo_csv: str | Path) -> dict[str, list[float]]:
    """The finite values of every `MEASURES` column of a zoo table (one row per model): name -> values.
    Missing file: FileNotFoundError; a table without any measure column: ValueError (one line each)."""
    path = Path(zoo_csv)
    if not path.is_file():
        raise FileNotFoundError(f"zoo table {path} not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c in MEASURES]
        if not columns:
            raise ValueError(f"zoo table {path} has no measure column (expected some of {', '.join(MEASURES)})")
        rows = list(reader)
    values = {c: [_number(r.get(c)) for r in rows] for c in columns}
    return {c: [v for v in vs if math.isfinite(v)] for c, vs in values.items()}


def place(row: Mapping[str, float], zoo_csv: str | Path) -> dict[str, dict]:
    """Where this model stands in a zoo, for each measure in both `row` and the table `zoo_csv`:
    {"percentile": fraction of the zoo's models with a smaller value (NaN if this value is NaN),
     "min", "median", "max": of the zoo's finite values, "n": how many}. Measures the zoo never measured
    (no finite value) are left out."""
    zoo = read_zoo(zoo_csv)
    out: dict[str, dict] = {}
    for name, values in zoo.items():
        if name not in row or not values:
            continue
        v = float(row[name])
        below = sum(z < v for z in values) / len(values) if math.isfinite(v) else math.nan
        out[name] = {"percentile": below, "min": min(values), "median": statistics.median(values),
                     "max": max(values), "n": len(values)}
    return out
