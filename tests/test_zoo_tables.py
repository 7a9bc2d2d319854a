"""genlens.zoo.tables and plots: the zoo chapter's selections, table rows and figures, on small hand-made tables."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from genlens.book.settings_zoo import PROFILES, SIGNS
from genlens.zoo import claims, grid, plots, tables
from genlens.zoo.analysis import MeasureRanking

matplotlib.use("Agg")

ROWS = [
    {"model": "base", "width": 16, "seed": 0, "train_acc": 1.0, "test_acc": 0.9, "gap": 0.1, "sharpness": 2.0,
     "sharpness_seconds": 0.5, "epochs": 3},
    {"model": "width=8", "width": 8, "seed": 0, "train_acc": 0.94, "test_acc": 0.7, "gap": 0.24, "sharpness": math.nan,
     "sharpness_seconds": math.nan, "epochs": 4},
    {"model": "seed=1", "width": 16, "seed": 1, "train_acc": 0.99, "test_acc": 0.92, "gap": 0.07, "sharpness": 1.0,
     "sharpness_seconds": 1.5, "epochs": 2},
    {"model": "width=8,seed=1", "width": 8, "seed": 1, "train_acc": 0.96, "test_acc": 0.8, "gap": 0.16, "sharpness": 3.0,
     "sharpness_seconds": 0.25, "epochs": 5},
]


def ranking(name: str, psi: float, per_factor: dict[str, float] | None = None) -> MeasureRanking:
    return MeasureRanking(name, 0.5, (0.1, 0.9), per_factor or {}, psi, 0.2, ("width",), "width", -0.5, 4, 1)


def test_columns_selections_and_counts_against_the_rows_read_by_hand() -> None:
    table = tables.columns(ROWS)
    assert list(table) == list(ROWS[0]) and table["gap"] == [0.1, 0.24, 0.07, 0.16]
    assert tables.varied_factors(table | {f: [getattr(grid.ZooModel(), f)] * 4 for f in grid.FACTORS
                                          if f not in ("width", "seed")}) == ["width", "seed"]
    assert tables.design_factors(["width", "seed", "lr"]) == ["width", "lr"]
    assert tables.replicate_gaps(ROWS) == [0.1, 0.07]  # base and seed=1, not width=8,seed=1
    assert tables.n_fitted(ROWS, 0.95) == 3
    assert tables.measured(table, ["sharpness"], min_models=3) == ["sharpness"]
    assert tables.measured(table, ["sharpness"], min_models=4) == []
    assert tables.seconds(table, ["sharpness"]) == {"sharpness": 2.25}
    assert tables.signs_of(["sharpness", "pgd_acc"], SIGNS) == {"sharpness": 1, "pgd_acc": -1}
    assert set(tables.lens_measures()) == set(SIGNS)
    with pytest.raises(ValueError, match="no rows"):
        tables.columns([])


def test_table_rows_format_what_the_chapter_shows() -> None:
    assert tables.model_rows(ROWS[:1]) == [["base", 3, "1.000", "0.900", "0.100"]]
    assert tables.factor_rows({"width": (8, 16)}, grid.ZooModel()) == [["width", "8, **16**"]]
    rows = tables.measure_rows(["sharpness"], tables.columns(ROWS), {"sharpness": -1}, {"sharpness": "what"},
                               {"sharpness": "landscape"})
    assert rows == [["sharpness", "landscape", "what", "−", "0.75"]]  # nanmean of 0.5, 1.5, 0.25
    assert tables.ranking_rows([ranking("m", 0.3)]) == [["m", "+0.50 [+0.10, +0.90]", "+0.30", "0.200", "width",
                                                         "width (-0.50)"]]


def test_by_psi_puts_the_highest_first_and_undefined_last() -> None:
    order = tables.by_psi([ranking("a", 0.1), ranking("b", math.nan), ranking("c", 0.7), ranking("d", -0.2)])
    assert [r.measure for r in order] == ["c", "a", "d", "b"]


def test_claim_rows_sign_each_factor_as_the_claim_predicts() -> None:
    up, down = claims.CLAIMS[0], claims.CLAIMS[1]  # expect ">" and "<"
    results = [claims.ClaimResult(up, 0.5, (0.1, 0.9), 8, {"width": 0.25, "lr": math.nan}),
               claims.ClaimResult(down, -0.5, (-0.9, -0.1), 8, {"width": 0.25, "lr": -1.0}),
               claims.ClaimResult(down, -0.5, (-0.9, -0.1), 5, {})]  # a one-factor claim: no row
    assert tables.claim_factor_rows(results, ["width", "lr"]) == [[up.id, "+0.25", "-"], [down.id, "-0.25", "+1.00"]]


def test_evaluate_all_draws_each_claim_from_its_own_seeded_generator() -> None:
    table = {"model": ["base", "width=8", "width=32", "lr=0.1", "lr=0.2", "seed=1"],
             "width": [16, 8, 32, 16, 16, 16], "lr": [0.05, 0.05, 0.05, 0.1, 0.2, 0.05], "seed": [0, 0, 0, 0, 0, 1],
             "sharpness": [2.0, 3.0, 1.0, 9.0, 0.0, 2.5], "gap": [0.1, 0.2, 0.05, 0.0, 0.3, 0.1]}
    picked = (claims.CLAIMS[0], claims.CLAIMS[1])
    both = claims.evaluate_all(picked, table, ["width", "lr", "seed"], n_boot=100, seed=3)
    alone = [claims.evaluate(c, table, ["width", "lr", "seed"], n_boot=100, generator=torch.Generator().manual_seed(3))
             for c in picked]
    assert both == alone
    assert claims.evaluate_all(picked[1:], table, ["width", "lr", "seed"], n_boot=100, seed=3) == alone[1:]


def test_settings_jobs_are_one_per_model_of_the_grid_on_the_profiles_images() -> None:
    S = PROFILES["quick"]
    jobs = S.jobs("mnist5k", "cpu")
    assert [j.model for j in jobs] == list(S.grid())
    assert {j.data_key() for j in jobs} == {("mnist5k", S.n_train, S.n_test, S.pool, "cpu")}
    assert all(j.base == S.base and j.measures == S.measures and j.lenses is None and j.max_epochs == S.max_epochs
               for j in jobs)


def test_plots_draw_one_cell_per_measure_and_factor_and_one_point_per_model() -> None:
    import matplotlib.pyplot as plt

    order = [ranking("sharpness", 0.3, {"width": 0.5}), ranking("gap_like", 0.1, {"width": math.nan, "seed": -1.0})]
    heat = plots.per_factor_matrix(order, ["width", "seed"])
    assert heat.shape == (2, 2) and heat[0, 0] == 0.5 and np.isnan(heat[0, 1]) and np.isnan(heat[1, 0])
    assert plots.per_factor_matrix([], ["width"]).shape == (0, 1)
    fig, ax = plt.subplots(figsize=plots.heatmap_size(order, ["width", "seed"]))
    shown = plots.heatmap(ax, order, ["width", "seed"])
    assert shown.get_array().shape == (2, 2) and len(ax.texts) == 2  # the two defined cells are written
    fig, axes = plt.subplots(1, 2)
    table = tables.columns(ROWS)
    plots.gap_scatters(axes, (order[0], order[0]), table)
    points = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert points == len(ROWS) and axes[1].get_legend() is not None
    plt.close("all")
