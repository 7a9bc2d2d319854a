"""Low- and high-frequency components of images, and smoothing of convolution kernels.

Wang, Wu, Huang and Xing, "High-frequency Component Helps Explain the Generalization of
Convolutional Neural Networks", CVPR 2020 (arXiv:1905.13545); code HaohanWang/HFC.

The split follows the paper's ``utility/frequencyHelper.py``: per channel, the centred 2-D spectrum
``F = fftshift(fft2(x))`` is multiplied by a binary disk ``M_r`` (1 where the distance of the bin to
the centre is *strictly* below ``r``), and

    low  = real(ifft2(ifftshift(F * M_r))),   high = real(ifft2(ifftshift(F * (1 - M_r)))),

so ``low + high = x``. The centre is the zero-frequency bin of the shifted spectrum, ``(H // 2, W // 2)``,
which is the paper's ``(H / 2, H / 2)`` for its square, even-sized images. The disk is symmetric under
``k -> -k``, so both parts are real (``np.real`` in the paper's code drops round-off only); they are
computed either with the real-input FFT or, faster on small images, as matrix products in the real
Fourier basis. The chapter ``hfc`` shows it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nn import check_model, check_pair, check_tensor, eval_mode_batch_stats
from ..core.train import evaluate, predict

__all__ = ["radial_mask", "split", "low_pass", "LowPass", "rescale_max", "smooth_kernels", "lowpass_kernels",
           "kernel_roughness", "kernel_roughness_each", "first_conv", "with_smoothed_kernels",
           "band_parts", "band_predictions", "band_correct", "hf_only_excess", "BandAccuracy", "band_accuracy",
           "band_tracker"]


def _check_images(images: torch.Tensor, radius: float) -> None:
    check_tensor(images, "images (N, C, H, W)", ndim=4, floating=True)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")


def _frequencies(n: int, device: torch.device | str | None = None, *, half: bool = False) -> torch.Tensor:
    """Integer frequencies of an n-point DFT in ``torch.fft.fftfreq`` order (``rfftfreq`` if half): (n,) int64."""
    k = torch.arange(n // 2 + 1 if half else n, device=device)
    return k if half else torch.where(k < (n - 1) // 2 + 1, k, k - n)


def _squared_threshold(radius: float) -> int | float:
    """The smallest integer t >= 0 with sqrt(t) >= radius, sqrt correctly rounded on the host (inf if none).

    A bin at squared integer distance d2 is low exactly when d2 < t, which is the paper's test
    ``np.sqrt(d2) < radius`` (a bin exactly on the radius is high) evaluated with IEEE square roots, so
    every processor draws the same disk (vectorized device square roots can be an ulp off).
    """
    if not math.isfinite(radius):
        return math.inf
    t = max(0, math.floor(radius * radius) - 2)
    while t > 0 and math.sqrt(t - 1) >= radius:
        t -= 1
    while math.sqrt(t) < radius:
        t += 1
    return t


def _inside(fy: torch.Tensor, fx: torch.Tensor, radius: float) -> torch.Tensor:
    """True where integer frequencies (fy, fx) lie strictly inside the disk of `radius` (broadcast, bool)."""
    threshold = _squared_threshold(radius)
    d2 = fy.long() ** 2 + fx.long() ** 2
    return torch.ones_like(d2, dtype=torch.bool) if threshold == math.inf else d2 < threshold


def radial_mask(height: int, width: int, radius: float, *, device: torch.device | str | None = None,
                centered: bool = True) -> torch.Tensor:
    """The paper's low-pass disk: (H, W) bool, True where the bin's distance to the centre is < radius.

    centered=True gives the mask for the fftshift-ed spectrum (centre at (H // 2, W // 2), as drawn in
    the paper); centered=False gives it in the unshifted layout of ``torch.fft.fft2``. Distances are in
    frequency bins (cycles per image).
    """
    fy = _frequencies(height, device)  # (H,) integer frequencies
    fx = _frequencies(width, device)  # (W,)
    mask = _inside(fy[:, None], fx[None, :], radius)  # (H, W), unshifted layout
    return torch.fft.fftshift(mask) if centered else mask


@lru_cache(maxsize=64)
def _half_mask(height: int, width: int, radius: float, device: torch.device) -> torch.Tensor:
    """The disk on the half-spectrum of ``rfft2``: (H, W // 2 + 1) bool, built once per arguments."""
    with torch.inference_mode(False):
        fy = _frequencies(height, device)  # (H,)
        fx = _frequencies(width, device, half=True)  # (W // 2 + 1,)
        return _inside(fy[:, None], fx[None, :], radius)


def _real_dft_basis(n: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal real Fourier basis of length-n signals, columns with frequency |f| < radius only.

    Returns (basis (n, k) float64, frequencies (k,) float64): a cosine for every 0 <= f <= n/2 and a
    sine for every 0 < f < n/2, each normalized, in order of frequency.
    """
    t = torch.arange(n, dtype=torch.float64)
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64)
    freqs = freqs[freqs < radius]
    cos = torch.cos(2 * torch.pi * freqs[None, :] * t[:, None] / n)  # (n, k_cos)
    has_sin = (freqs > 0) & (freqs < n / 2)
    sin = torch.sin(2 * torch.pi * freqs[has_sin][None, :] * t[:, None] / n)  # (n, k_sin)
    basis = torch.cat([cos, sin], 1)
    return basis / basis.norm(dim=0), torch.cat([freqs, freqs[has_sin]])


@lru_cache(maxsize=64)
def _gemm_operators(height: int, width: int, radius: float, device: torch.device,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B_H (H, kh), B_W (W, kw), K (kw, kh)) of `_low_pass_gemm` on `device` in `dtype`, built once per
    arguments (a filter inside PGD runs on every step with the same shape and radius). Built outside
    inference mode, so a later autograd pass may use them."""
    with torch.inference_mode(False):
        bh, fh = _real_dft_basis(height, radius)  # (H, kh)
        bw, fw = _real_dft_basis(width, radius)  # (W, kw)
        keep = _inside(fh[:, None], fw[None, :], radius).T  # (kw, kh)
        return (bh.to(device=device, dtype=dtype), bw.to(device=device, dtype=dtype),
                keep.to(device=device, dtype=dtype))


def _low_pass_gemm(images: torch.Tensor, radius: float) -> torch.Tensor:
    """The same filter as four matrix products in the separable real Fourier basis.

    A product of a cosine or sine of row frequency f_y and one of column frequency f_x is a sum of the
    2-D waves (f_y, f_x) and (f_y, -f_x), which lie at the same distance from the zero frequency; so the
    disk is diagonal in this basis: low = B_H (K * (B_H^T x B_W)) B_W^T, with K the 0/1 disk on the
    coefficients and B_H, B_W truncated to the frequencies below the radius.
    """
    N, C, H, W = images.shape
    bh, bw, keep = _gemm_operators(H, W, float(radius), images.device, images.dtype)
    kh, kw = bh.shape[1], bw.shape[1]
    if kh == 0 or kw == 0:
        return torch.zeros_like(images)
    y = (images.reshape(-1, W) @ bw).reshape(N * C, H, kw)  # (NC, H, kw): rows transformed
    y = y.transpose(1, 2).reshape(-1, H) @ bh  # (NC*kw, kh): columns transformed
    y = y.reshape(N * C, kw, kh) * keep  # (NC, kw, kh): the disk
    y = (y.reshape(-1, kh) @ bh.T).reshape(N * C, kw, H)  # (NC, kw, H)
    y = y.transpose(1, 2).reshape(-1, kw) @ bw.T  # (NC*H, W)
    return y.reshape(N, C, H, W)


def _low_pass_fft(images: torch.Tensor, radius: float) -> torch.Tensor:
    """The filter with the real-input FFT: irfft2(rfft2(x) * disk)."""
    N, C, H, W = images.shape
    spectrum = torch.fft.rfft2(images)  # (N, C, H, W // 2 + 1), complex
    mask = _half_mask(H, W, float(radius), images.device)  # (H, W // 2 + 1)
    return torch.fft.irfft2(spectrum * mask, s=(H, W)).to(images.dtype)


def low_pass(images: torch.Tensor, radius: float, *, method: Literal["auto", "fft", "gemm"] = "auto") -> torch.Tensor:
    """The low-frequency part of `images` (N, C, H, W): frequencies at distance < radius kept. Differentiable.

    method "fft" uses rfft2/irfft2; "gemm" four matrix products in the real Fourier basis, which is
    faster on small images (both give the same result up to round-off); "auto" picks "gemm" for images
    of at most 64x64 pixels and "fft" above.
    """
    _check_images(images, radius)
    if method not in ("auto", "fft", "gemm"):
        raise ValueError(f"method must be 'auto', 'fft' or 'gemm', got {method!r}")
    if method == "auto":
        method = "gemm" if max(images.shape[-2:]) <= 64 else "fft"
    return _low_pass_gemm(images, radius) if method == "gemm" else _low_pass_fft(images, radius)


def split(images: torch.Tensor, radius: float, *, method: Literal["auto", "fft", "gemm"] = "auto"
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) frequency components of `images` (N, C, H, W), per channel, batched on their device.

    low keeps the spectrum inside the disk of `radius` bins around the zero frequency, high the rest;
    low + high == images. radius 0 gives (0, images); a radius beyond the spectrum's corner,
    sqrt((H/2)^2 + (W/2)^2), gives (images, 0). method: see `low_pass`.
    """
    low = low_pass(images, radius, method=method)
    return low, images - low


class LowPass(nn.Module):
    """``x -> low_pass(x, radius)`` as a layer, e.g. a low-pass input filter before a classifier.

    The filter's operators are built once per (image shape, radius, device, dtype) and reused, so the
    layer costs only its matrix products on every step of an attack that runs through it."""

    def __init__(self, radius: float):
        super().__init__()
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.radius = float(radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return low_pass(x, self.radius)

    def extra_repr(self) -> str:
        return f"radius={self.radius}"


def rescale_max(images: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each image by its maximum over (C, H, W), as the paper's code does before a model sees a
    low- or high-frequency image (``td[i] / max(td[i])``). Images whose maximum is <= eps are left as is."""
    peak = images.flatten(1).amax(dim=1)  # (N,)
    peak = torch.where(peak > eps, peak, torch.ones_like(peak))
    return images / peak.view(-1, *[1] * (images.ndim - 1))


# ----------------------------------------------------------------------------- kernels

def smooth_kernels(weight: torch.Tensor, rho: float) -> torch.Tensor:
    """The paper's kernel smoothing: each (out, in) slice of a conv weight (O, I, k, k) is convolved with
    the 3x3 mask [[rho, rho, rho], [rho, 1, rho], [rho, rho, rho]] ('same' size, symmetric boundary, as
    scipy's ``convolve2d(..., boundary='symm', mode='same')`` in ``generateSmoothKernel``). rho=0 is the
    identity. Returns a new tensor of the same shape.
    """
    check_tensor(weight, "conv weight (O, I, kH, kW)", ndim=4)
    O, I, kH, kW = weight.shape
    mask = torch.full((3, 3), float(rho), dtype=weight.dtype, device=weight.device)
    mask[1, 1] = 1.0
    slices = weight.reshape(O * I, 1, kH, kW)  # (O*I, 1, kH, kW)
    padded = F.pad(slices, (1, 1, 1, 1), mode="replicate")  # symmetric padding of width 1 = edge copy
    return F.conv2d(padded, mask.view(1, 1, 3, 3)).reshape(O, I, kH, kW)


def lowpass_kernels(weight: torch.Tensor, radius: float) -> torch.Tensor:
    """Low-pass filter each (out, in) slice of a conv weight (O, I, k, k) in the frequency domain with the
    disk of `radius` bins (for a 3x3 kernel: radius <= 1 keeps the mean only, radius in (1, 1.42] the mean
    and the four nearest frequencies)."""
    check_tensor(weight, "conv weight (O, I, kH, kW)", ndim=4)
    return low_pass(weight, radius)


def kernel_roughness(weight: torch.Tensor) -> float:
    """How rough the kernels of a conv layer are: mean over its (out, in) slices of
    sum of squared differences between horizontally and vertically adjacent weights / sum of squared weights.

    0 for constant kernels; 16/3 for a 3x3 checkerboard of +-1; larger means less smooth. Slices that are
    all zero are skipped. weight: (O, I, kH, kW).
    """
    each = kernel_roughness_each(weight)
    keep = ~each.isnan()
    return float(each[keep].mean()) if keep.any() else 0.0


def kernel_roughness_each(weight: torch.Tensor) -> torch.Tensor:
    """The roughness of `kernel_roughness` for every (out, in) slice of a conv weight (O, I, kH, kW), in
    order out-major: (O * I,) float64, NaN for an all-zero slice. Two models trained from the same
    initialisation can be compared slice by slice."""
    check_tensor(weight, "conv weight (O, I, kH, kW)", ndim=4)
    w = weight.detach().double().flatten(0, 1)  # (O*I, kH, kW)
    diffs = (w[:, 1:, :] - w[:, :-1, :]).pow(2).sum((1, 2)) + (w[:, :, 1:] - w[:, :, :-1]).pow(2).sum((1, 2))
    energy = w.pow(2).sum((1, 2))  # (O*I,)
    return torch.where(energy > 0, diffs / energy.clamp_min(1e-300), torch.full_like(energy, math.nan))


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of `model` in module order (the layer the paper smooths)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"model {type(model).__name__} has no Conv2d layer")


def with_smoothed_kernels(model: nn.Module, method: Literal["rho", "lowpass"], value: float,
                          layers: Literal["first", "all"] = "first") -> nn.Module:
    """A copy of `model` whose conv kernels are smoothed: method "rho" is `smooth_kernels(w, value)`,
    "lowpass" is `lowpass_kernels(w, value)`. layers="first" smooths the first conv only, as the paper's
    code does; "all" smooths every conv with kernels larger than 1x1. The original is not changed."""
    check_model(model)
    if method not in ("rho", "lowpass"):
        raise ValueError(f"method must be 'rho' or 'lowpass', got {method!r}")
    if layers not in ("first", "all"):
        raise ValueError(f"layers must be 'first' or 'all', got {layers!r}")
    smoothed = copy.deepcopy(model)
    convs = [first_conv(smoothed)] if layers == "first" else [
        m for m in smoothed.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    fn = smooth_kernels if method == "rho" else lowpass_kernels
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(fn(conv.weight, value))
    return smoothed


# ----------------------------------------------------------------------------- accuracy on the two parts

def band_parts(images: torch.Tensor, radius: float, *, rescale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) parts of `images` (N, C, H, W) at `radius`, each divided by its per-image maximum when
    `rescale`, as the paper's code does before a model sees them."""
    low, high = split(images, radius)
    return (rescale_max(low), rescale_max(high)) if rescale else (low, high)


@torch.no_grad()
def band_predictions(model: nn.Module, images: torch.Tensor, radius: float, *, rescale: bool = True,
                     batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N, K) of `model` (in eval mode) on the two `band_parts` of `images`
    (N, C, H, W) at `radius`. The model's mode is restored."""
    check_model(model)
    low, high = band_parts(images, radius, rescale=rescale)
    return predict(model, low, batch_size).softmax(1), predict(model, high, batch_size).softmax(1)


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int, batch_stats: bool) -> torch.Tensor:
    """Logits (N, K) float32 of `model` on x in batches: `predict` (eval mode), or with batch_stats every
    BatchNorm layer normalized by the statistics of each batch (`core.nn.eval_mode_batch_stats`)."""
    if not batch_stats:
        return predict(model, x, batch_size)
    with eval_mode_batch_stats(model):
        return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


def _batch_size(batch_size: int | None, batch_stats: bool) -> int:
    size = batch_size if batch_size is not None else (100 if batch_stats else 1000)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    return size


def band_correct(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], radius: float, *, rescale: bool = True,
                 batch_stats: bool = False, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image correctness (low (N,), high (N,), bool) of `model` on the two `band_parts` of
    data = (images (N, C, H, W), labels (N,)) at `radius`, for intervals over the test images.

    batch_stats=False evaluates in eval mode (BatchNorm with its running averages); batch_stats=True
    normalizes every BatchNorm layer with the statistics of each batch of `batch_size` images (default
    100, the batch size of HaohanWang/HFC, whose models evaluate this way), in the images' order.
    Models without BatchNorm give the same answer either way. The model's state is restored.

    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    >>> [t.shape for t in band_correct(net, (torch.rand(6, 1, 4, 4), torch.zeros(6, dtype=torch.long)), 1)]
    [torch.Size([6]), torch.Size([6])]
    """
    images, labels = check_pair(model, data)
    size = _batch_size(batch_size, batch_stats)
    low, high = band_parts(images, radius, rescale=rescale)
    return tuple(_logits(model, part, size, batch_stats).argmax(1) == labels for part in (low, high))


def hf_only_excess(high_correct: torch.Tensor, low_correct: torch.Tensor) -> torch.Tensor:
    """Per-image terms (N,) float64 whose mean is the fraction of images right on the HFC and wrong on the
    LFC minus the fraction expected if the two were independent, mean(h (1 - l)) - mean(h) (1 - mean(l)):
    the term of image i is -(h_i - mean(h)) (l_i - mean(l)). Positive: right-on-HFC-only happens more often
    than the two accuracies alone predict. (A bootstrap of these terms keeps the two means fixed.)

    >>> h, l = torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1])
    >>> hf_only_excess(h, l).mean().item()  # 2/4 observed, 1/2 * 1/2 expected
    0.25
    """
    h = check_tensor(high_correct, "high_correct", ndim=1).double()
    l = check_tensor(low_correct, "low_correct", ndim=1).double()
    if h.shape != l.shape:
        raise ValueError(f"high_correct and low_correct must have the same shape, got {tuple(h.shape)} and {tuple(l.shape)}")
    return -(h - h.mean()) * (l - l.mean())


@dataclass(frozen=True)
class BandAccuracy:
    """Accuracy (fraction in [0, 1]) of one model on the low- and high-frequency parts at each radius."""

    radii: tuple[float, ...]  # frequency bins
    low: tuple[float, ...]  # accuracy on the low-frequency part at each radius
    high: tuple[float, ...]  # accuracy on the high-frequency part at each radius


def band_accuracy(models: Mapping[str, nn.Module], data: tuple[torch.Tensor, torch.Tensor], radii: Sequence[float],
                  *, rescale: bool = True, batch_stats: bool = False, batch_size: int | None = None
                  ) -> dict[str, BandAccuracy]:
    """Accuracy of each model (in eval mode) on the `band_parts` of data = (images (N, C, H, W), labels (N,))
    at every radius: name -> `BandAccuracy`. The images are split once per radius for all the models.
    batch_stats=True normalizes BatchNorm layers with each batch's statistics instead (see `band_correct`).

    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    >>> band_accuracy({"net": net}, (torch.rand(6, 1, 4, 4), torch.zeros(6, dtype=torch.long)), [1, 2])["net"].radii
    (1, 2)
    """
    checked = [check_pair(model, data) for model in models.values()]
    if not checked:
        raise ValueError("models must hold at least one model, got none")
    images, labels = checked[0]
    low: dict[str, list[float]] = {name: [] for name in models}
    high: dict[str, list[float]] = {name: [] for name in models}
    for r in radii:
        lo, hi = band_parts(images, r, rescale=rescale)
        for name, model in models.items():
            if batch_stats:
                size = _batch_size(batch_size, True)
                low[name].append((_logits(model, lo, size, True).argmax(1) == labels).float().mean().item())
                high[name].append((_logits(model, hi, size, True).argmax(1) == labels).float().mean().item())
            else:
                low[name].append(evaluate(model, lo, labels)[1])
                high[name].append(evaluate(model, hi, labels)[1])
    return {name: BandAccuracy(tuple(radii), tuple(low[name]), tuple(high[name])) for name in models}


def band_tracker(data: tuple[torch.Tensor, torch.Tensor], radii: Sequence[float], *, prefix: str = "",
                 rescale: bool = True) -> Callable[[int, nn.Module, Any], None]:
    """A `train` callback that appends, after each epoch, the model's accuracy on the `band_parts` of
    data = (images, labels) at each radius to ``history.extra[f"{prefix}low_{r:g}"]`` and ``[f"{prefix}high_{r:g}"]``.
    The parts are computed once, here."""
    images, labels = data
    check_tensor(labels, "data[1]", ndim=1)
    parts = {r: band_parts(images, r, rescale=rescale) for r in radii}

    def callback(epoch: int, model: nn.Module, history: Any) -> None:
        for r, (lo, hi) in parts.items():
            for name, x in (("low", lo), ("high", hi)):
                history.extra.setdefault(f"{prefix}{name}_{r:g}", []).append(evaluate(model, x, labels)[1])

    return callback
