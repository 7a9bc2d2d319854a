"""genlens.lenses.fourier against a per-image numpy reference written like the paper's frequencyHelper.py."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import signal

from genlens.lenses import fourier


def reference_split(images: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """HaohanWang/HFC style: per image and channel, fftshift(fft2), disk mask with strict <, ifft2, real."""
    N, C, H, W = images.shape
    mask = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            mask[i, j] = 1.0 if np.sqrt((i - H // 2) ** 2 + (j - W // 2) ** 2) < r else 0.0
    low, high = np.zeros_like(images), np.zeros_like(images)
    for n in range(N):
        for c in range(C):
            fd = np.fft.fftshift(np.fft.fft2(images[n, c]))
            low[n, c] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * mask)))
            high[n, c] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * (1 - mask))))
    return low, high


@pytest.mark.parametrize("method", ["fft", "gemm"])
@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 1, 28, 28), (2, 2, 9, 12)])
@pytest.mark.parametrize("r", [0.5, 4, 7.5, 12])
def test_split_matches_numpy_reference(shape, r, method):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    low, high = fourier.split(x, r, method=method)
    ref_low, ref_high = reference_split(x.numpy(), r)
    np.testing.assert_allclose(low.numpy(), ref_low, atol=1e-12)
    np.testing.assert_allclose(high.numpy(), ref_high, atol=1e-12)


def test_low_plus_high_is_image_float32():
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    low, high = fourier.split(x, 6)
    assert low.dtype == torch.float32 and low.shape == x.shape
    torch.testing.assert_close(low + high, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["fft", "gemm"])
def test_trivial_radii(method):
    x = torch.rand(2, 3, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    low, high = fourier.split(x, 0, method=method)
    assert low.abs().max() == 0 and torch.equal(high, x)
    corner = (14**2 + 14**2) ** 0.5
    low, high = fourier.split(x, corner + 1e-6, method=method)
    torch.testing.assert_close(low, x, atol=1e-12, rtol=0)
    assert high.abs().max() < 1e-12


@pytest.mark.parametrize("method", ["fft", "gemm"])
@pytest.mark.parametrize("ky, kx", [(0, 3), (2, 2), (5, 0), (6, 7), (16, 5)])
def test_sinusoid_lands_on_its_side(ky, kx, method):
    H = W = 32
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    wave = torch.cos(2 * torch.pi * (ky * i / H + kx * j / W) + 0.3)[None, None]  # (1, 1, H, W)
    dist = (ky**2 + kx**2) ** 0.5
    low, high = fourier.split(wave, dist + 0.01, method=method)  # strictly inside: all low
    torch.testing.assert_close(low, wave, atol=1e-12, rtol=0)
    low, high = fourier.split(wave, dist, method=method)  # strict <: a bin at exactly r is high
    torch.testing.assert_close(high, wave, atol=1e-12, rtol=0)
    assert low.abs().max() < 1e-12


def test_radial_mask_counts_match_paper_masks():
    # bins kept by HFC's mask_radial on 32x32 (strict <, centre (16, 16)), counted from its code
    counts = {4: 45, 8: 193, 12: 437, 16: 793, 20: 995, 24: 1024}
    for r, n in counts.items():
        assert int(fourier.radial_mask(32, 32, r).sum()) == n
    centred = fourier.radial_mask(32, 32, 1)
    assert centred[16, 16] and centred.sum() == 1
    assert fourier.radial_mask(32, 32, 1, centered=False)[0, 0]


def test_lowpass_module_is_differentiable_and_keeps_device():
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    out = fourier.LowPass(5)(x)
    out.sum().backward()
    assert x.grad is not None and out.device == x.device
    # the sum only sees the zero frequency, which the filter keeps: gradient is all ones
    torch.testing.assert_close(x.grad, torch.ones_like(x), atol=1e-5, rtol=0)


def test_lowpass_builds_its_basis_once_and_stays_differentiable_after_inference_mode():
    fourier._gemm_operators.cache_clear()
    layer = fourier.LowPass(3.5)
    x = torch.rand(4, 2, 12, 12, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():  # the first call builds the operators here; autograd must still use them later
        first = layer(x)
    xr = x.clone().requires_grad_(True)
    out = layer(xr)
    out.square().sum().backward()
    info = fourier._gemm_operators.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    ref = fourier.low_pass(x.double(), 3.5, method="fft").float()  # the FFT path builds no basis
    torch.testing.assert_close(first, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.detach(), first, atol=0, rtol=0)
    assert xr.grad is not None and xr.grad.abs().sum() > 0


def _toy_models():
    g = torch.Generator().manual_seed(7)
    models = {}
    for name in ("a", "b", "c"):
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        models[name] = net.train()  # evaluated in eval mode, mode restored
    x = torch.rand(40, 2, 8, 8, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    return models, x, y


def _reference_band_accuracy(net, x, y, r):
    """The paper's pipeline: per-image numpy split, each part divided by its maximum, argmax of the logits."""
    parts = [torch.from_numpy(p).float() for p in reference_split(x.double().numpy(), r)]
    out = []
    for part in parts:
        peak = part.flatten(1).amax(1).clamp_min(1e-12)  # no all-zero part among these random images
        with torch.no_grad():
            out.append((net(part / peak.view(-1, 1, 1, 1)).argmax(1) == y).float().mean().item())
    return tuple(out)


def test_band_accuracy_matches_the_papers_pipeline_and_splits_once_per_radius(monkeypatch):
    models, x, y = _toy_models()
    calls = []
    real_split = fourier.split
    monkeypatch.setattr(fourier, "split", lambda images, r, **kw: (calls.append(r), real_split(images, r, **kw))[1])
    radii = [1.5, 3, 4.5]  # below the corner of the 8x8 spectrum (5.66): both parts are non-zero
    got = fourier.band_accuracy(models, (x, y), radii)
    assert calls == radii, "the images must be split once per radius, whatever the number of models"
    for name, net in models.items():
        assert got[name].radii == tuple(radii) and net.training
        for k, r in enumerate(radii):
            low, high = _reference_band_accuracy(net, x, y, r)
            assert got[name].low[k] == pytest.approx(low, abs=1e-9) and got[name].high[k] == pytest.approx(high, abs=1e-9)
    assert len({got[n].low for n in models}) > 1, "the toy models should not all agree"


def test_band_tracker_appends_each_epoch():
    models, x, y = _toy_models()
    tracker = fourier.band_tracker((x, y), [2, 5], prefix="t_")
    history = SimpleNamespace(extra={})  # what the callback touches of a core.train.History
    for epoch, net in enumerate(models.values()):
        tracker(epoch, net, history)
    assert sorted(history.extra) == ["t_high_2", "t_high_5", "t_low_2", "t_low_5"]
    expected = [_reference_band_accuracy(net, x, y, 5) for net in models.values()]
    assert history.extra["t_low_5"] == pytest.approx([lo for lo, _ in expected], abs=1e-9)
    assert history.extra["t_high_5"] == pytest.approx([hi for _, hi in expected], abs=1e-9)


def test_rescale_max():
    x = torch.stack([torch.full((1, 2, 2), 0.5), torch.zeros(1, 2, 2)])
    out = fourier.rescale_max(x)
    assert torch.equal(out[0], torch.ones(1, 2, 2)) and torch.equal(out[1], x[1])


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.5, 1.0])
def test_smooth_kernels_matches_scipy(rho):
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mask = np.full((3, 3), rho)
    mask[1, 1] = 1
    ref = np.stack([[signal.convolve2d(w[o, i].numpy(), mask, boundary="symm", mode="same") for i in range(3)]
                    for o in range(4)])
    np.testing.assert_allclose(fourier.smooth_kernels(w, rho).numpy(), ref, atol=1e-12)


def test_lowpass_kernels_radius_one_keeps_the_mean():
    w = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = fourier.lowpass_kernels(w, 1.0)
    torch.testing.assert_close(out, w.mean((2, 3), keepdim=True).expand_as(w), atol=1e-12, rtol=0)


def test_kernel_roughness_closed_forms():
    assert fourier.kernel_roughness(torch.ones(2, 1, 3, 3)) == 0.0
    checker = torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]]).view(1, 1, 3, 3)
    assert fourier.kernel_roughness(checker) == pytest.approx(48 / 9)
    w = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(5))
    assert fourier.kernel_roughness(fourier.smooth_kernels(w, 1.0)) < fourier.kernel_roughness(w)


def test_with_smoothed_kernels_copies_and_smooths_first_conv():
    from genlens.core.models import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(width=4)
    before = [p.clone() for p in net.parameters()]
    out = fourier.with_smoothed_kernels(net, "rho", 0.5)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    torch.testing.assert_close(fourier.first_conv(out).weight, fourier.smooth_kernels(fourier.first_conv(net).weight, 0.5))
    convs = [m for m in out.modules() if isinstance(m, torch.nn.Conv2d)]
    orig = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert torch.equal(convs[1].weight, orig[1].weight)


def test_errors():
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\) must have 4 dimensions, got shape \(3, 28, 28\)"):
        fourier.split(torch.rand(3, 28, 28), 4)
    with pytest.raises(TypeError, match=r"images \(N, C, H, W\) must be a torch.Tensor, got list"):
        fourier.split([[0.0]], 4)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        fourier.split(torch.rand(1, 1, 8, 8), -1)
    with pytest.raises(TypeError, match="floating point"):
        fourier.split(torch.zeros(1, 1, 8, 8, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="method must be 'auto'"):
        fourier.split(torch.rand(1, 1, 8, 8), 2, method="dct")
    with pytest.raises(ValueError, match="method must be"):
        fourier.with_smoothed_kernels(torch.nn.Conv2d(1, 1, 3), "blur", 1.0)
    with pytest.raises(ValueError, match=r"conv weight \(O, I, kH, kW\) must have 4 dimensions, got shape \(3, 3\)"):
        fourier.smooth_kernels(torch.rand(3, 3), 0.1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fourier.with_smoothed_kernels(lambda x: x, "rho", 0.5)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"data: 3 inputs but 2 targets"):
        fourier.band_accuracy({"net": net}, (torch.rand(3, 1, 2, 2), torch.zeros(2, dtype=torch.long)), [1])
    with pytest.raises(ValueError, match="models must hold at least one model"):
        fourier.band_accuracy({}, (torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)), [1])


@pytest.mark.parametrize("H, W", [(32, 32), (28, 28), (9, 12)])
def test_disk_matches_host_square_roots(H, W):
    # oracle: the paper's rule, one bin at a time with Python's correctly rounded math.sqrt
    import math

    radii = [0, 0.5, 1, 2, 2.5, 7.5, 12, 100] + [math.sqrt(k) for k in range(1, 60)]
    for r in radii:
        mask = fourier.radial_mask(H, W, r, centered=True)
        ref = torch.tensor([[math.sqrt((i - H // 2) ** 2 + (j - W // 2) ** 2) < r for j in range(W)] for i in range(H)])
        assert torch.equal(mask, ref), r


def test_disk_does_not_depend_on_how_the_processor_rounds_sqrt(monkeypatch):
    # a processor whose vectorized sqrt is one ulp low (seen on AVX-512: sqrt(8) -> 2.82842712474619)
    # must draw the same disk: bins exactly on the radius stay high
    before = {r: fourier.radial_mask(32, 32, r) for r in (8**0.5, 5.0, 13**0.5)}
    real_sqrt = torch.sqrt
    monkeypatch.setattr(torch, "sqrt", lambda x: torch.nextafter(real_sqrt(x), torch.zeros_like(x)))
    for r, mask in before.items():
        assert torch.equal(fourier.radial_mask(32, 32, r), mask)
        assert not fourier.radial_mask(32, 32, r)[16 + 2, 16 + 2] or r > 8**0.5


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_filters_and_band_accuracy_follow_the_data_device(device):
    models, x, y = _toy_models()
    on_cpu = fourier.band_accuracy(models, (x, y), [2, 4])
    x64 = x.double()
    expected = fourier.low_pass(x64, 3, method="fft")
    for method in ("fft", "gemm"):
        out = fourier.low_pass(x64.to(device), 3, method=method)
        assert out.device.type == device and out.dtype == torch.float64
        torch.testing.assert_close(out.cpu(), expected, atol=1e-10, rtol=0)
    moved = {name: net.to(device) for name, net in models.items()}
    on_device = fourier.band_accuracy(moved, (x.to(device), y.to(device)), [2, 4])
    for name in models:  # up to a few of the 40 images whose top logits are near a tie (CUDA evaluates in bf16)
        assert on_device[name].low == pytest.approx(on_cpu[name].low, abs=0.1)
        assert on_device[name].high == pytest.approx(on_cpu[name].high, abs=0.1)
    if device != "cpu":
        with pytest.raises(ValueError, match="model is on cuda"):
            fourier.band_accuracy(moved, (x, y), [2])


def _bn_net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    with torch.no_grad():  # running averages far from any batch's moments, so the two protocols differ
        net[1].running_mean.fill_(3.0)
        net[1].running_var.fill_(0.01)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
    return net.train()


def _batch_moments_logits(net, x):
    """HaohanWang/HFC's test-time BatchNorm written out: tf.nn.moments of the batch (biased variance)."""
    conv, bn, _, _, lin = net
    h = conv(x)
    mean, var = h.mean((0, 2, 3), keepdim=True), h.var((0, 2, 3), unbiased=False, keepdim=True)
    h = (h - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    return lin(torch.relu(h).flatten(1))


def test_band_correct_with_batch_statistics_matches_batch_moments_and_restores_the_model():
    net = _bn_net()
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(10, 1, 8, 8, generator=g), torch.randint(0, 4, (10,), generator=g)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    low, high = fourier.band_correct(net, (x, y), 2.5, batch_stats=True, batch_size=4)
    parts = fourier.band_parts(x, 2.5)
    with torch.no_grad():
        for got, part in zip((low, high), parts):
            want = torch.cat([_batch_moments_logits(net, part[i:i + 4]) for i in range(0, 10, 4)]).argmax(1) == y
            assert torch.equal(got, want)
        running = [net.eval()(p).argmax(1) == y for p in parts]
    net.train()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "running averages must not move"
    assert net.training and net[1].training
    assert [torch.equal(a, b) for a, b in zip(fourier.band_correct(net, (x, y), 2.5), running)] == [True, True]
    acc = fourier.band_accuracy({"bn": net}, (x, y), [2.5], batch_stats=True, batch_size=4)["bn"]
    assert (acc.low[0], acc.high[0]) == (low.float().mean().item(), high.float().mean().item())


def test_hf_only_excess_is_observed_minus_independent_expectation():
    g = torch.Generator().manual_seed(0)
    h, l = torch.rand(500, generator=g) < 0.3, torch.rand(500, generator=g) < 0.6
    observed = (h & ~l).double().mean()
    expected = h.double().mean() * (1 - l.double().mean())
    assert fourier.hf_only_excess(h, l).mean().item() == pytest.approx((observed - expected).item(), abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        fourier.hf_only_excess(h, l[:3])


def test_kernel_roughness_each_closed_forms():
    w = torch.stack([torch.ones(3, 3), torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]]), torch.zeros(3, 3)])[:, None]
    each = fourier.kernel_roughness_each(w)
    assert each[:2].tolist() == [0.0, pytest.approx(16 / 3)] and each[2].isnan()
    assert fourier.kernel_roughness(w) == pytest.approx(8 / 3)
