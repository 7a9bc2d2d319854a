"""Bench: genlens.lenses.fourier.split vs a per-image numpy split in the style of HaohanWang/HFC.

Splits 10,000 random 32x32x3 images at radius 12 (the paper's CIFAR-10 setting). The peer follows
the paper's ``generateDataWithDifferentFrequencies_3Channel``: the mask is built once with per-pixel
Python loops, then every image and channel goes through fftshift(fft2), masking, ifftshift, ifft2 and
np.real, once for the low and once for the high part. Both sides run in this process on the same
inputs after a warm-up; the last line is ``speedup: <peer time / genlens time>``.
"""
from __future__ import annotations


import numpy as np
import torch

from genlens.lenses import fourier
from genlens.core.device import best_time

N, C, H, W, RADIUS = 10_000, 3, 32, 32, 12


def peer_split(images: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """images (N, H, W, C) -> (low, high), per image and channel, as in the paper's frequencyHelper.py."""
    n, h, w, c = images.shape
    mask = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            mask[i, j] = 1.0 if np.sqrt((i - h / 2) ** 2 + (j - h / 2) ** 2) < r else 0.0
    low, high = [], []
    for k in range(n):
        lo, hi = np.zeros((h, w, c)), np.zeros((h, w, c))
        for ch in range(c):
            fd = np.fft.fftshift(np.fft.fft2(images[k, :, :, ch]))
            lo[:, :, ch] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * mask)))
            hi[:, :, ch] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * (1 - mask))))
        low.append(lo)
        high.append(hi)
    return np.array(low), np.array(high)


def main() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(N, H, W, C)).astype(np.float32) / 255  # (N, H, W, C), like CIFAR-10
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)

    peer_split(pixels[:100], RADIUS)  # warm-up
    fourier.split(x[:100], RADIUS)
    t_peer = best_time(lambda: peer_split(pixels, RADIUS), repeats=1, warmup=0)[0]
    t_ours = best_time(lambda: fourier.split(x, RADIUS), repeats=5)[0]

    ref_low, ref_high = peer_split(pixels[:500], RADIUS)
    low, high = fourier.split(x[:500], RADIUS)
    err = max(np.abs(low.permute(0, 2, 3, 1).numpy() - ref_low).max(),
              np.abs(high.permute(0, 2, 3, 1).numpy() - ref_high).max())
    if err > 1e-5:
        raise SystemExit(f"genlens and the peer disagree: max abs difference {err:.2e}")
    print(f"split of {N} images {H}x{W}x{C} at radius {RADIUS}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"  peer (per-image numpy, HFC style): {t_peer:.3f} s")
    print(f"  genlens.lenses.fourier.split (batched):   {t_ours:.3f} s")
    print(f"  max abs difference: {err:.1e}")
    print(f"speedup: {t_peer / t_ours:.1f}")


if __name__ == "__main__":
    main()
