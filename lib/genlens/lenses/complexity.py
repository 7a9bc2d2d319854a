"""Baseline complexity measures of Jiang et al. (ICLR 2020, "Fantastic generalization measures and where to
find them", Appendix C) and Dziugaite et al. (NeurIPS 2020, "In search of robust measures of generalization").

Each measure matches the common PyTorch reimplementation (nitarshan/robust-generalization-measures,
``data/generation/measures.py``, "nitarshan" below) in definition; where a function differs, its docstring
says where and why. Shared conventions:

* **BatchNorm is folded first**, as nitarshan's ``_reparam`` does: every BatchNorm layer is merged (with its
  running statistics, i.e. the eval-mode function) into the Conv/Linear layer before it in
  ``named_modules()`` order, ``W' = W * s`` and ``b' = s * (b - mean) + beta`` with
  ``s = gamma / sqrt(var + eps)`` per output channel; a layer without a bias gets one. The folded copy computes
  the same function in eval mode. Unlike nitarshan (which sets the BN layer to weight 1, bias 0, mean 0,
  var 1 and so keeps a factor ``1/sqrt(1 + eps)`` per BN layer, and needs conv biases), the BN layer is
  replaced by the identity, and BatchNorm1d after a Linear is folded too. The model passed in is never changed.
* **Weights** are the ``weight`` tensors of Conv and Linear layers (after folding); biases are not weights
  (nitarshan drops every parameter whose name contains ``bias`` or ``bn``).
* Everything is measured in eval mode and in float64 where it is cheap (norms, path norm).

Shown in the chapter ``zoo``, next to the book's own lenses.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import warnings
from typing import Iterator

import torch
from torch import nn

from ..core.nn import check_model, check_tensor, eval_mode, model_device
from ..core.train import predict

__all__ = ["distance_from_init", "path_norm", "margin", "spectral_product_over_margin", "pacbayes_mag_flatness",
           "weightwatcher_alpha", "MAGNITUDE_EPS", "WW_MIN_EVALS"]

MAGNITUDE_EPS = 1e-3
"""epsilon of the magnitude-aware perturbation N(0, sigma'^2 w^2 + epsilon^2) (Jiang et al.; nitarshan's mag_eps)."""

WW_MIN_EVALS = 50
"""Fewest eigenvalues (pooled over a conv's kernel positions) for weightwatcher to fit a layer's power law."""

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DEVIATION_TOLERANCE = 1e-2  # nitarshan's displacement_tolerance: the bisection stops once this close to the target
_EVAL_BATCH = 200  # images per forward pass; on a CPU 100-200 are 2-4x faster per image than 1000 (cache)


# ----------------------------------------------------------------------------- shared helpers

def _out_features(layer: nn.Module) -> int:
    return layer.out_channels if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) else layer.out_features


@torch.no_grad()
def _fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every BatchNorm is folded into the Conv/Linear before it (see the module
    docstring) and replaced by ``nn.Identity``. Raises ValueError if a BatchNorm cannot be folded."""
    folded = copy.deepcopy(model)
    previous: tuple[str, nn.Module] | None = None
    used: set[str] = set()
    for name, module in list(folded.named_modules()):
        if isinstance(module, _WEIGHTED):
            previous = (name, module)
        elif isinstance(module, _BATCHNORM):
            if module.running_mean is None or module.running_var is None:
                raise ValueError(f"cannot fold BatchNorm {name!r}: it keeps no running statistics")
            if previous is None or previous[0] in used or _out_features(previous[1]) != module.num_features:
                before = "nothing" if previous is None else f"{previous[0]!r} ({type(previous[1]).__name__})"
                raise ValueError(f"cannot fold BatchNorm {name!r} ({module.num_features} features): "
                                 f"the Conv/Linear layer before it is {before}")
            layer_name, layer = previous
            used.add(layer_name)
            w, var = layer.weight, module.running_var.double()
            gamma = module.weight.double() if module.weight is not None else torch.ones_like(var)
            beta = module.bias.double() if module.bias is not None else torch.zeros_like(var)
            scale = gamma / (var + module.eps).sqrt()  # (C,)
            bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
            shape = (-1,) + (1,) * (w.ndim - 1)
            layer.weight = nn.Parameter((w.double() * scale.view(shape)).to(w.dtype), requires_grad=w.requires_grad)
            layer.bias = nn.Parameter((scale * (bias - module.running_mean.double()) + beta).to(w.dtype),
                                      requires_grad=w.requires_grad)
            parent_name, _, child = name.rpartition(".")
            setattr(folded.get_submodule(parent_name), child, nn.Identity())
    return folded


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> weight tensor (detached) of every Conv/Linear layer of `model`, in module order."""
    return {name: m.weight.detach() for name, m in model.named_modules() if isinstance(m, _WEIGHTED)}


def _check_data(model: nn.Module, x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) if x is a non-empty float batch and y as many integer labels, both on the model's device."""
    check_model(model)
    device = model_device(model)
    x = check_tensor(x, "x", floating=True, device=device)
    y = check_tensor(y, "y", ndim=1, device=device)
    if len(x) == 0:
        raise ValueError("x is empty: the measure needs at least one example")
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    return x, y


def _margins_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logits (N, K), labels y (N,) -> (N,) true-class logit minus the largest other logit."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"the model must output (N, K) logits with K >= 2 classes, got shape {tuple(logits.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise ValueError(f"labels y must lie in [0, {logits.shape[1]}), got [{int(y.min())}, {int(y.max())}]")
    rows = torch.arange(len(y), device=logits.device)
    others = logits.clone()
    others[rows, y] = float("-inf")
    return logits[rows, y] - others.max(1).values


# ----------------------------------------------------------------------------- norm-based measures

def distance_from_init(model: nn.Module, init: nn.Module) -> float:
    """Jiang's "dist.init": the Frobenius (L2) distance ``sqrt(sum_i ||W_i - W_i^0||_F^2)`` between the weights of
    `model` and those of its initialization `init` (same architecture), in float64.

    Weights are the Conv/Linear weight tensors after folding BatchNorm into them, in both models (nitarshan's
    ``L2_DIST``); biases and BN parameters do not count. Jiang's table (and nitarshan's ``FRO_DIST``) reports
    the square of this number, which ranks models the same way.
    """
    check_model(model)
    check_model(init, "init")
    w, w0 = _weights(_fold_batchnorm(model)), _weights(_fold_batchnorm(init))
    if list(w) != list(w0) or any(w[k].shape != w0[k].shape for k in w):
        raise ValueError("model and init must have the same Conv/Linear layers with the same weight shapes")
    if not w:
        raise ValueError("model has no Conv or Linear layer")
    total = sum(((w[k].double() - w0[k].double().to(w[k].device)) ** 2).sum() for k in w)
    return float(torch.as_tensor(total).sqrt())


@torch.no_grad()
def path_norm(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Jiang's "path.norm": the sum of the outputs of a copy of `model` whose every parameter is squared, on an
    all-ones input of shape ``(1, *input_shape)`` (eval mode, float64, BatchNorm folded first).

    For a ReLU network of Conv/Linear layers this is ``sum over input-output paths of prod of squared weights``
    (a bias is the first weight of the paths that start at it); there is no square root (Jiang's eq. 44,
    Neyshabur et al.'s code as nitarshan adapts it). Max pooling keeps the largest of its window (it does not
    sum paths), average pooling averages: as in nitarshan, the copy runs the model's own forward. Differences from
    nitarshan: every parameter is squared, frozen ones too (nitarshan squares only ``requires_grad`` ones);
    buffers other than BatchNorm's (e.g. a ``Normalize`` layer's mean/std) are used as they are.
    """
    check_model(model)
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list, torch.Size)) else None
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    squared = _fold_batchnorm(model).double()
    for p in squared.parameters():
        p.pow_(2)
    device = model_device(squared) or torch.device("cpu")
    with eval_mode(squared):
        out = squared(torch.ones((1, *shape), dtype=torch.float64, device=device))
    return float(out.sum())


def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Output margins (N,) float32 of `model` on (x, y): the logit of the true class minus the largest other
    logit, in eval mode and float32 (no autocast). Negative for a misclassified example."""
    x, y = _check_data(model, x, y)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with torch.no_grad():
        logits = predict(model, x, batch_size, mixed_precision=False)
    return _margins_from_logits(logits, y)


def spectral_product_over_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                                 quantile: float = 0.1) -> float:
    """``log(prod_i ||W_i||_2^2 / gamma^2)`` over the Conv/Linear layers i (BatchNorm folded): Jiang's
    "prod.of.spec/margin" (eq. 31; nitarshan's ``LOG_PROD_OF_SPEC_OVER_MARGIN``), in nats.

    ||W||_2 is the largest singular value of the weight reshaped to ``(out, in * kernel)`` (nitarshan's main
    spectral measures, the Yoshida & Miyato 2017 approximation for a convolution), not the operator norm of the
    convolution on a given input size (nitarshan's ``*_FFT`` variants). gamma is the margin (`margin`) of the
    ``k = max(1, floor(quantile * N))``-th smallest example of (x, y) (nitarshan's ``kthvalue(m // 10)``),
    taken in absolute value as nitarshan does; gamma = 0 gives +inf. Jiang's "spec.orig" (eq. 30) adds
    ``log sum_i ||W_i||_F^2 / ||W_i||_2^2``; both rank models by the same spectral product over the margin.
    """
    if not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
        raise ValueError(f"quantile must lie in (0, 1), got {quantile!r}")
    x, y = _check_data(model, x, y)
    weights = _weights(_fold_batchnorm(model))
    if not weights:
        raise ValueError("model has no Conv or Linear layer")
    log_spec = sum(2 * torch.linalg.matrix_norm(w.double().reshape(w.shape[0], -1), ord=2).log()
                   for w in weights.values())
    margins = margin(model, x, y, batch_size=_EVAL_BATCH).double()
    k = max(1, math.floor(quantile * len(margins) + 1e-9))
    gamma = margins.kthvalue(k).values.abs()
    return float(log_spec - 2 * gamma.log())


# ----------------------------------------------------------------------------- flatness

def _outcome(deviation: float, target: float) -> int:
    """nitarshan's bisection rule: 0 stop (within the tolerance of the target), 1 too much noise, -1 too little."""
    if abs(deviation - target) < _DEVIATION_TOLERANCE:
        return 0
    return 1 if deviation > target else -1


@torch.no_grad()
def _bisection_step(model: nn.Module, samples: list[dict[str, torch.Tensor]], x: torch.Tensor, y: torch.Tensor,
                    reference: float, target: float) -> int:
    """`_outcome` of the mean accuracy of ``functional_call(model, params)`` over the parameter sets `samples`
    on (x, y) (model in eval mode), in batches of `_EVAL_BATCH` images for every sample in turn.

    Stops as soon as the outcome is certain whatever the images not yet seen (each either right or wrong): the
    same outcome as evaluating all of x, often for a fraction of the work when the deviation is far above target.
    """
    n, total, correct, seen = len(samples), len(x), 0, 0
    for s in range(0, total, _EVAL_BATCH):
        xb, yb = x[s:s + _EVAL_BATCH], y[s:s + _EVAL_BATCH]
        for params in samples:
            correct += int((torch.func.functional_call(model, params, (xb,)).argmax(1) == yb).sum())
        seen += len(xb)
        low, high = correct / (n * total), (correct + n * (total - seen)) / (n * total)  # bounds on the mean
        far = max(abs(low - reference), abs(high - reference))
        near = 0.0 if low <= reference <= high else min(abs(low - reference), abs(high - reference))
        if _outcome(near, target) == _outcome(far, target):
            return _outcome(far, target)
    raise AssertionError("unreachable: after the last batch both bounds are equal")


def pacbayes_mag_flatness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target_deviation: float = 0.1,
                          n_samples: int = 5, search_steps: int = 12,
                          generator: torch.Generator | None = None) -> float:
    """Jiang's "pacbayes.mag.flatness" (eq. 61): ``1 / sigma'^2`` for the largest relative noise scale sigma'
    that moves the accuracy on (x, y) by about `target_deviation`.

    Every parameter w of the BatchNorm-folded copy (weights and biases) is perturbed by u ~ N(0, sigma'^2 w^2 +
    eps^2), eps = `MAGNITUDE_EPS` (1e-3); the deviation is ``|mean over n_samples draws of the perturbed accuracy
    - the unperturbed accuracy|`` on (x, y), in eval mode. Bisection on [0, 2] as nitarshan's ``_pacbayes_sigma``:
    start at sigma' = 1, halve the bracket `search_steps` times (deviation above target: smaller sigma'), stop
    early once the deviation is within 0.01 of the target; the result lies in [0.25, inf). Larger = sharper.
    A step stops evaluating images once its outcome is certain (see `_bisection_step`), which changes no result.

    Differences from nitarshan (which follows the paper's accuracy criterion too): the noise has *variance*
    sigma'^2 w^2 + eps^2 as in the paper (nitarshan passes that expression to ``torch.normal`` as the standard
    deviation); the reference accuracy is the one on x (pass a subset of the training set, e.g. 1,000 images;
    nitarshan uses the whole training set); the n_samples standard-normal draws (float32, on the CPU, for each
    sample every parameter in ``named_parameters`` order of the folded copy) are drawn once from `generator`
    (None: the global one) and reused at every sigma' (common random numbers: the bisection then searches one
    fixed function of sigma'); BN layers are folded away, so their (1, 0) parameters are not perturbed.
    `model` is never changed (the noise enters a copy through ``torch.func.functional_call``).
    """
    if not (isinstance(target_deviation, (int, float)) and 0 < target_deviation < 1):
        raise ValueError(f"target_deviation must lie in (0, 1), got {target_deviation!r}")
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    if not (isinstance(search_steps, int) and search_steps >= 1):
        raise ValueError(f"search_steps must be an int >= 1, got {search_steps!r}")
    x, y = _check_data(model, x, y)
    folded = _fold_batchnorm(model)
    if x.ndim == 4:  # channels-last: max pooling on a CPU is about 2x faster
        folded, x = folded.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    base = {name: p.detach() for name, p in folded.named_parameters()}
    noise = [{name: torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p)
              for name, p in base.items()} for _ in range(n_samples)]
    with eval_mode(folded):
        logits = predict(folded, x, _EVAL_BATCH, mixed_precision=False)
        _margins_from_logits(logits, y)  # checks the label range
        reference = (logits.argmax(1) == y).sum().item() / len(y)
        lower, upper, sigma = 0.0, 2.0, 1.0
        for _ in range(search_steps):
            sigma = (lower + upper) / 2
            samples = [{k: w + z[k] * (sigma ** 2 * w ** 2 + MAGNITUDE_EPS ** 2).sqrt() for k, w in base.items()}
                       for z in noise]
            outcome = _bisection_step(folded, samples, x, y, reference, target_deviation)
            if outcome == 0:
                break
            if outcome > 0:
                upper = sigma
            else:
                lower = sigma
    return 1.0 / sigma ** 2


# ----------------------------------------------------------------------------- spectral (weightwatcher)

@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence weightwatcher: its prints, warnings, tqdm bars and loggers; keep the root logger unconfigured
    (weightwatcher calls ``logging.basicConfig`` at import)."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(guard)  # makes weightwatcher's basicConfig a no-op
    names = ("weightwatcher", "WeightWatcher", "powerlaw", "matplotlib")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        if added:
            root.removeHandler(guard)


def weightwatcher_alpha(model: nn.Module) -> float:
    """Mean power-law exponent alpha of the layers' eigenvalue spectra (Martin & Mahoney), from the
    ``weightwatcher`` package (``WeightWatcher(model).analyze()``, its default fit), over the layers it fits
    with a finite alpha. Smaller alpha: more heavy-tailed, "better trained" layers.

    Layer sizes: weightwatcher pools a conv's kernel positions (``pool=True``), so a layer has ``M * rf``
    eigenvalues (M = min(in, out) channels, rf = kernel area), and by default fits every layer with at least 8.
    That keeps a 1-channel input conv (9 eigenvalues) and a 10-class output layer (10), whose fits it flags as
    "SMALL N PL FIT". Here ``min_evals = WW_MIN_EVALS`` (50, weightwatcher's earlier default) drops those and
    keeps the hidden layers (a 16x16x3x3 conv has 144). A model whose every layer is smaller raises ValueError.
    The model's own weights are analysed (BatchNorm not folded, as weightwatcher is used).
    Its prints, progress bars and logging are silenced. Needs ``pip install genlens[zoo]``.
    """
    check_model(model)
    try:
        with _quiet():
            import weightwatcher
    except ImportError:
        raise ImportError("weightwatcher_alpha needs the weightwatcher package: pip install genlens[zoo]") from None
    with _quiet():
        details = weightwatcher.WeightWatcher(model=model).analyze(min_evals=WW_MIN_EVALS)
    alphas = [float(a) for a in details["alpha"]] if "alpha" in details else []
    alphas = [a for a in alphas if math.isfinite(a) and a > 0]
    if not alphas:
        raise ValueError(f"weightwatcher fitted no layer: every Conv/Linear layer has fewer than "
                         f"{WW_MIN_EVALS} eigenvalues (min(in, out) x kernel area)")
    return sum(alphas) / len(alphas)
