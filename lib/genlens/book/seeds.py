"""Per-seed comparisons for findings: paired differences, ratios and slopes, one value per seed.

A chapter that retrains a network under several settings with the same seeds compares them seed by
seed (the same initialisation, batch order and data draw on both sides), and hands the per-seed values
to `genlens.book.findings.mean_interval`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["paired_differences", "ratios", "slopes"]


def _check_lengths(named: Mapping[str, Sequence[float]]) -> int:
    lengths = {k: len(v) for k, v in named.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"need one value per seed for every entry, the same number each; got lengths {lengths}")
    return next(iter(lengths.values()))


def paired_differences(values: Mapping[str, Sequence[float]], baseline: str) -> dict[str, list[float]]:
    """values[k][i] - values[baseline][i] for every k other than `baseline`, seed by seed (index i).

    >>> paired_differences({"none": [0.90, 0.92], "wd": [0.91, 0.92]}, "none")
    {'wd': [0.010000000000000009, 0.0]}
    """
    if baseline not in values:
        raise ValueError(f"baseline {baseline!r} is not one of {list(values)}")
    _check_lengths(values)
    base = values[baseline]
    return {k: [float(a) - float(b) for a, b in zip(v, base)] for k, v in values.items() if k != baseline}


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """numerator[i] / denominator[i], seed by seed; every denominator must be positive.

    >>> ratios([30, 44], [10, 11])
    [3.0, 4.0]
    """
    _check_lengths({"numerator": numerator, "denominator": denominator})
    if min(denominator) <= 0:
        raise ValueError(f"denominators must be > 0, got {list(denominator)}")
    return [float(a) / float(b) for a, b in zip(numerator, denominator)]


def slopes(x: Sequence[float], y: Sequence[Sequence[float]]) -> list[float]:
    """Least-squares slope of y against x for each seed: y[j][i] is the value at x[j] for seed i.

    >>> slopes([0.0, 1.0, 2.0], [[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]])
    [2.0, 0.0]
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need y[j] for each of at least 2 x values; got {len(x)} x and {len(y)} rows")
    n_seeds = _check_lengths({f"x={xj:g}": row for xj, row in zip(x, y)})
    mx = sum(x) / len(x)
    sxx = sum((xj - mx) ** 2 for xj in x)
    if sxx == 0:
        raise ValueError(f"x must not be constant, got {list(x)}")
    out = []
    for i in range(n_seeds):
        col = [float(row[i]) for row in y]
        my = sum(col) / len(col)
        out.append(sum((xj - mx) * (yj - my) for xj, yj in zip(x, col)) / sxx)
    return out
