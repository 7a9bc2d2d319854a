"""The zoo chapter's tables: its rows as columns, the selections the chapter makes of them, and the rows of
its markdown tables (formatted cells; `genlens.book.report.markdown_table` renders them).

A *row* is one model of `run.run_zoo` (model name, factors, measures, seconds); a *table* is the same data
as columns (`columns`): column name -> one value per model, in the rows' order.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .analysis import MeasureRanking
from .claims import ClaimResult
from .grid import FACTORS, ZooModel
from .measures import MEASURES

__all__ = ["ACCURACIES", "columns", "lens_measures", "measured", "signs_of", "varied_factors", "design_factors", "replicate_gaps",
           "n_fitted", "seconds", "by_psi", "factor_rows", "model_rows", "measure_rows", "ranking_rows",
           "claim_factor_rows"]

ACCURACIES = ("train_acc", "test_acc", "gap")  # the columns every measure is ranked against, not measures


def columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """The rows as columns: name -> one value per row, in the first row's column order."""
    if not rows:
        raise ValueError("no rows")
    return {k: [r[k] for r in rows] for k in rows[0]}


def lens_measures() -> list[str]:
    """Every measure of the zoo's table but the accuracies and the gap, in `measures.MEASURES` order."""
    return [m for m in MEASURES if m not in ACCURACIES]


def measured(table: Mapping[str, Sequence[float]], names: Sequence[str], min_models: int = 3) -> list[str]:
    """The measures of `names` with a value (not NaN) for at least `min_models` models: the ones that can be ranked."""
    return [m for m in names if sum(not math.isnan(v) for v in table[m]) >= min_models]


def signs_of(names: Sequence[str], signs: Mapping[str, int]) -> dict[str, int]:
    """The expected sign of each measure of `names` (`analysis.rank_measures`' `sign`)."""
    return {m: signs[m] for m in names}


def varied_factors(table: Mapping[str, Sequence]) -> list[str]:
    """The factors (`grid.FACTORS`, in order) that take more than one value in the table."""
    return [f for f in FACTORS if len(set(table[f])) > 1]


def design_factors(factors: Sequence[str], replicate: str = "seed") -> list[str]:
    """The hyperparameters among `factors`: the replicate (the seed, the noise floor) left out."""
    return [f for f in factors if f != replicate]


def replicate_gaps(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The gaps of the base model and its seed replicates (models named 'base' and 'seed=...')."""
    return [r["gap"] for r in rows if r["model"] == "base" or r["model"].startswith("seed=")]


def n_fitted(rows: Sequence[Mapping[str, Any]], min_train_acc: float) -> int:
    """How many models reach `min_train_acc` training accuracy (fraction)."""
    return sum(r["train_acc"] >= min_train_acc for r in rows)


def seconds(table: Mapping[str, Sequence[float]], names: Sequence[str]) -> dict[str, float]:
    """Measure -> seconds it took over the whole zoo (the sum of its `<measure>_seconds` column, NaN left out)."""
    return {m: float(np.nansum(table[m + "_seconds"])) for m in names}


def by_psi(ranked: Sequence[MeasureRanking]) -> list[MeasureRanking]:
    """The rankings from the highest Psi to the lowest, undefined Psi last (ties keep their order)."""
    return sorted(ranked, key=lambda r: -r.psi if not math.isnan(r.psi) else math.inf)


def factor_rows(variations: Mapping[str, Sequence], base: ZooModel) -> list[list[str]]:
    """[factor, its values with the base's in bold] per varied factor."""
    return [[f, ", ".join(f"**{v}**" if v == getattr(base, f) else str(v) for v in values)]
            for f, values in variations.items()]


def model_rows(rows: Sequence[Mapping[str, Any]]) -> list[list]:
    """[model, epochs, train acc, test acc, gap] per model, accuracies to 3 decimals."""
    return [[r["model"], r["epochs"], f"{r['train_acc']:.3f}", f"{r['test_acc']:.3f}", f"{r['gap']:.3f}"] for r in rows]


def measure_rows(names: Sequence[str], table: Mapping[str, Sequence[float]], signs: Mapping[str, int],
                 descriptions: Mapping[str, str], lenses: Mapping[str, str]) -> list[list[str]]:
    """[measure, lens, what it is, expected sign, mean seconds per model] per measure."""
    return [[m, lenses[m], descriptions[m], "+" if signs[m] > 0 else "−", f"{np.nanmean(table[m + '_seconds']):.2f}"]
            for m in names]


def ranking_rows(order: Sequence[MeasureRanking]) -> list[list[str]]:
    """[measure, tau [interval], Psi, CMI, conditioning factors, worst factor (its tau)] per ranking."""
    return [[r.measure, f"{r.tau:+.2f} [{r.tau_interval[0]:+.2f}, {r.tau_interval[1]:+.2f}]", f"{r.psi:+.2f}",
             f"{r.cmi:.3f}", ", ".join(r.cmi_given) or "nothing",
             f"{r.worst_factor} ({r.worst_tau:+.2f})" if r.worst_factor else "-"] for r in order]


def claim_factor_rows(results: Sequence[ClaimResult], design: Sequence[str]) -> list[list[str]]:
    """[claim, granulated tau per factor of `design`, signed so that the claim predicts > 0] per whole-zoo claim
    ('-' where no group of the factor defines it)."""
    def cell(r: ClaimResult, f: str) -> str:
        v = r.per_factor[f]
        return "-" if math.isnan(v) else f"{(1 if r.claim.expect == '>' else -1) * v:+.2f}"
    return [[r.claim.id] + [cell(r, f) for f in design] for r in results if r.per_factor]
