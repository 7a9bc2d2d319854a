"""The zoo chapter's figures, drawn on axes the caller makes (matplotlib is imported by the caller only)."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .analysis import MeasureRanking

__all__ = ["per_factor_matrix", "heatmap_size", "heatmap", "varied_factor", "gap_scatters"]


def per_factor_matrix(order: Sequence[MeasureRanking], factors: Sequence[str]) -> np.ndarray:
    """(len(order), len(factors)): each ranking's granulated tau per factor, NaN where undefined."""
    return np.array([[r.per_factor.get(f, math.nan) for f in factors] for r in order], dtype=float).reshape(
        len(order), len(factors))


def heatmap_size(order: Sequence[MeasureRanking], factors: Sequence[str]) -> tuple[float, float]:
    """A figure size (inches) that fits one cell per (measure, factor) and the labels."""
    return 1 + 0.7 * len(factors), 0.9 + 0.32 * len(order)


def heatmap(ax: Any, order: Sequence[MeasureRanking], factors: Sequence[str]) -> Any:
    """Granulated tau of each ranking (rows) per factor (columns), red-blue over [-1, 1], values written in the
    cells, undefined cells grey; returns the image (for a colorbar)."""
    heat = per_factor_matrix(order, factors)
    shown = ax.imshow(np.ma.masked_invalid(heat), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_facecolor("lightgray")
    ax.set(xticks=range(len(factors)), yticks=range(len(order)), yticklabels=[r.measure for r in order])
    ax.set_xticklabels(factors, rotation=45, ha="right")
    for (i, j), v in np.ndenumerate(heat):
        if not math.isnan(v):
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    return shown


def varied_factor(models: Sequence[str]) -> list[str]:
    """The factor each model varies from the base, from its name: 'base' for the base, 'seed' for its replicates,
    the first factor named otherwise ('width=8,seed=1' -> 'width').

    >>> varied_factor(["base", "seed=1", "width=8", "blocks=1,shortcut=False", "width=8,seed=1"])
    ['base', 'seed', 'width', 'blocks', 'width']
    """
    return [m.split("=")[0].split(",")[0] if m != "base" else "base" for m in models]


def gap_scatters(axes: Sequence[Any], rankings: Sequence[MeasureRanking], table: Mapping[str, Sequence[float]],
                 gap: str = "gap") -> None:
    """One panel per ranking: its measure against the gap, a point per model coloured by the factor it varies
    (black: the base and its seeds), titled with tau and Psi; the last panel carries the legend."""
    import matplotlib.pyplot as plt

    varied = varied_factor(table["model"])
    kinds = list(dict.fromkeys(varied))
    colors = {f: plt.cm.tab10(i % 10) for i, f in enumerate(v for v in kinds if v not in ("base", "seed"))}
    for ax, r in zip(axes, rankings):
        for f in kinds:
            pick = [i for i, v in enumerate(varied) if v == f]
            ax.scatter([table[r.measure][i] for i in pick], [table[gap][i] for i in pick], s=18,
                       color=colors.get(f, "black"), label=f)
        ax.set(xlabel=r.measure, ylabel="generalization gap", title=f"{r.measure}: τ {r.tau:+.2f}, Ψ {r.psi:+.2f}")
    axes[-1].legend(fontsize="x-small", ncol=2)
