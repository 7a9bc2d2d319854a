"""Plot helpers for the chapters: each takes the axes first, draws, labels, and returns the axes.

None of them calls plt.show() or savefig, and importing this module changes no global setting.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def curves(ax, series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str | None = None,
           logy: bool = False, styles: Mapping[str, str] | None = None):
    """One line per named series against its 1-based index (e.g. epochs)."""
    for label, ys in series.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, (styles or {}).get(label, "-"), label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if logy else ""))
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def mean_and_spread(ax, x: Sequence[float], samples: Sequence[Sequence[float]], *, xlabel: str, ylabel: str,
                    label: str | None = None, marker: str = "o"):
    """Mean over samples (rows: x values, columns: seeds) with min-max bars."""
    values = np.asarray(samples, dtype=float)  # (len(x), n_seeds)
    mean = values.mean(axis=1)
    spread = np.stack([mean - values.min(axis=1), values.max(axis=1) - mean])
    ax.errorbar(x, mean, yerr=spread, marker=marker, capsize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if label:
        ax.legend(fontsize="small")
    return ax


def image_grid(ax, images, labels: Sequence[str] | None = None, *, ncols: int = 8, stretch: bool = False):
    """Tile images (N, C, H, W) in [0, 1] into one picture; optional label under each. stretch: map each
    image's own range [min, max] to [0, 1] first (for images that are not in [0, 1], e.g. kernels or HFCs)."""
    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    N, C, H, W = images.shape
    if N == 0:  # nothing to show (e.g. no image met a figure's condition): an empty panel, not an error
        ax.set_axis_off()
        return ax
    if stretch:
        low, high = images.min(axis=(1, 2, 3), keepdims=True), images.max(axis=(1, 2, 3), keepdims=True)
        images = (images - low) / np.where(high > low, high - low, 1.0)  # a constant image becomes 0
    nrows = -(-N // ncols)
    canvas = np.ones((nrows * (H + 2), ncols * (W + 2), C))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (H + 2) + 1 : r * (H + 2) + 1 + H, c * (W + 2) + 1 : c * (W + 2) + 1 + W] = img.transpose(1, 2, 0)
    ax.imshow(canvas.squeeze(-1) if C == 1 else canvas.clip(0, 1), cmap="gray" if C == 1 else None, vmin=0, vmax=1)
    if labels is not None:
        for i, text in enumerate(labels):
            r, c = divmod(i, ncols)
            ax.text(c * (W + 2) + W / 2, (r + 1) * (H + 2) - 1, text, ha="center", va="top", fontsize=7)
    ax.set_axis_off()
    return ax


def image_with_box(ax, image, *, box: Sequence[int] | None = None, heat=None, title: str | None = None,
                   color: str = "yellow"):
    """Show one image (C, H, W) in [0, 1]; optionally overlay a heat map (H, W) and draw an inclusive
    (top, bottom, left, right) pixel box, e.g. a ProtoPNet patch. Returns the axes."""
    from matplotlib.patches import Rectangle

    img = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image).transpose(1, 2, 0)
    ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img.clip(0, 1), cmap="gray", vmin=0, vmax=1)
    if heat is not None:
        ax.imshow(np.asarray(heat.detach().cpu() if hasattr(heat, "detach") else heat), cmap="jet", alpha=0.4)
    if box is not None:
        top, bottom, left, right = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                               edgecolor=color, linewidth=1.5))
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return ax
