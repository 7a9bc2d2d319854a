import itertools
import math
from collections import Counter

import numpy as np
import pytest
import scipy.stats
import torch

from genlens.zoo.analysis import (MeasureRanking, bootstrap_tau, conditional_mutual_information, granulated_tau,
                                  kendall_tau, psi, rank_measures, worst_factor)
from genlens.zoo import analysis


def _ofat(base: dict, variants: dict) -> dict[str, list]:
    """Factor columns of a one-factor-at-a-time zoo: the base model, then each variant of each factor."""
    rows = [dict(base)] + [{**base, f: v} for f, values in variants.items() for v in values]
    return {f: [r[f] for r in rows] for f in base}


def _hb(p: float) -> float:
    """Binary entropy in bits."""
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


# 2 x 3 full grid, factors f in {a, b} and g in {1, 2, 3}; one tie in the gap, one in the measure.
GRID = {"f": ["a", "a", "a", "b", "b", "b"], "g": [1, 2, 3, 1, 2, 3]}
GRID_GAP = [0.10, 0.20, 0.30, 0.15, 0.15, 0.40]
GRID_MEASURE = [1.0, 3.0, 2.0, 5.0, 4.0, 2.0]
# By hand. Factor g (groups f=a, f=b): f=a: pairs (1,2) C, (1,3) C, (2,3) D -> tau = 1/3;
#   f=b: (1,2) tied gap, (1,3) D, (2,3) D -> tau_b = -2 / sqrt(2 * 3).
# Factor f (groups g=1,2,3 of two models): g=1 C -> 1; g=2 D -> -1; g=3 tied measure -> undefined.
PSI_G = (1 / 3 - 2 / math.sqrt(6)) / 2
PSI_F = (1 - 1) / 2


def test_kendall_tau_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 40):
        for _ in range(5):
            a = rng.integers(0, 4, n).astype(float)  # many ties
            b = a + rng.integers(-2, 3, n)
            if len(set(a)) > 1 and len(set(b)) > 1:
                assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    a = [1.0, math.inf, -math.inf, 2.0, 2.0]
    b = [0.3, 0.9, 0.1, 0.2, 0.5]
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # scipy: nan too
    assert kendall_tau(torch.tensor([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == -1.0


def test_batched_tau_matches_scipy_row_by_row():
    rng = np.random.default_rng(1)
    n = 9
    idx = rng.integers(0, n, (20, n))  # bootstrap-like rows: repeated models are pairs tied in both inputs
    a, b = rng.normal(size=n), rng.normal(size=n)
    got = analysis._tau_b(torch.from_numpy(a[idx]), torch.from_numpy(b[idx]))
    want = [scipy.stats.kendalltau(a[row], b[row]).statistic for row in idx]
    assert got.numpy() == pytest.approx(np.array(want), abs=1e-12, nan_ok=True)


def test_granulated_tau_by_hand_on_a_2x3_grid():
    tau_g, groups_g = granulated_tau(GRID_MEASURE, GRID_GAP, GRID, "g")
    tau_f, groups_f = granulated_tau(GRID_MEASURE, GRID_GAP, GRID, "f")
    assert (tau_g, groups_g) == (pytest.approx(PSI_G, abs=1e-12), 2)
    assert (tau_f, groups_f) == (pytest.approx(PSI_F, abs=1e-12), 2)
    assert psi(GRID_MEASURE, GRID_GAP, GRID) == pytest.approx((PSI_F + PSI_G) / 2, abs=1e-12)
    name, value = worst_factor(GRID_MEASURE, GRID_GAP, GRID)
    assert (name, value) == ("g", pytest.approx(PSI_G, abs=1e-12))
    # one factor only: one group of all models, i.e. the plain tau
    assert granulated_tau(GRID_MEASURE, GRID_GAP, {"g": GRID["g"]}, "g") == (
        pytest.approx(scipy.stats.kendalltau(GRID_MEASURE, GRID_GAP).statistic, abs=1e-12), 1)
    # no group of >= 2 models with a defined tau
    assert granulated_tau([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], {"f": [1, 2, 3], "g": [1, 2, 3]}, "f")[1] == 0
    assert math.isnan(psi([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], {"f": [1, 2, 3], "g": [1, 2, 3]}))
    assert worst_factor([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], {"f": [1, 2, 3]})[0] == "f"


def test_measure_equal_to_the_gap_scores_one_and_random_scores_near_zero():
    factors = _ofat({"width": 16, "depth": 2, "bn": True},
                    {"width": [4, 8, 32, 64, 128], "depth": [1, 3, 4, 5], "bn": [False]})
    n = len(factors["width"])
    rng = np.random.default_rng(2)
    gap = rng.uniform(0.0, 0.3, n)
    for measure, expected in ((gap, 1.0), (-gap, -1.0)):
        assert kendall_tau(measure, gap) == pytest.approx(expected)
        assert psi(measure, gap, factors) == pytest.approx(expected)
        assert conditional_mutual_information(measure, gap, factors)[0] == pytest.approx(1.0)  # blind to sign

    # Random measure, no ties: given (), a fraction (1 + tau) / 2 of the pairs agree and V_gap is balanced, so
    # the normalized CMI is 1 - hb((1 + tau) / 2) ~ tau^2 / (2 ln 2): near 0, up to the models' sampling noise
    # (sd of tau ~ sqrt(4 / 9n) = 0.047 for n = 201; 0.02 needs |tau| > 0.17, 3.5 sd)
    big = _ofat({"a": 0, "b": 0, "c": 0}, {f: list(range(1, 68)) for f in "abc"})  # 202 models
    n = len(big["a"])
    gap = rng.uniform(size=n)
    for _ in range(3):
        measure = rng.uniform(size=n)
        given_nothing = 1 - _hb((1 + kendall_tau(measure, gap)) / 2)
        assert conditional_mutual_information(measure, gap, big, max_conditioning=0)[0] == pytest.approx(given_nothing)
        value = conditional_mutual_information(measure, gap, big)[0]
        assert value <= given_nothing + 1e-12 and value < 0.02


def test_a_measure_right_within_every_factor_but_offset_across_them():
    # gap = 3f + g (f dominates), measure = f + 3g (g dominates): every within-factor group ranks right
    f = [0, 0, 0, 1, 1, 1]
    g = [0, 1, 2, 0, 1, 2]
    gap = [3 * a + b for a, b in zip(f, g)]
    measure = [a + 3 * b for a, b in zip(f, g)]
    factors = {"f": f, "g": g}
    assert granulated_tau(measure, gap, factors, "f") == (1.0, 3)
    assert granulated_tau(measure, gap, factors, "g") == (1.0, 2)
    assert psi(measure, gap, factors) == 1.0
    # 15 pairs; discordant: (f=0, g') vs (f=1, g) with g' > g, 3 of them -> tau = (12 - 3) / 15
    assert kendall_tau(measure, gap) == pytest.approx(9 / 15)
    # S = (): 30 ordered pairs, 24 agree -> I = 1 - hb(0.2) bits, H(V_gap) = 1
    assert conditional_mutual_information(measure, gap, factors, max_conditioning=0) == (
        pytest.approx(1 - _hb(0.2)), ())
    # S = (g,): 3 cells g_i = g_j with 2 pairs each (differ in f: agree, I = H = 1 bit); 6 cells g_i != g_j
    # with 4 pairs each, V_mu constant (I = 0) and V_gap 1:3 (H = hb(1/4)). S = (f,): 1. S = (f, g):
    # one pair per cell, H = 0, undefined. So the minimum is S = (g,):
    expected = (6 * 1.0) / (6 * 1.0 + 24 * _hb(0.25))
    for k in (1, 2):
        value, given = conditional_mutual_information(measure, gap, factors, max_conditioning=k)
        assert (value, given) == (pytest.approx(expected), ("g",))


def _brute_cmi(measure, gap, factors, subset):
    """Normalized CMI from the definition: count (U, V_gap, V_mu) over ordered pairs, entropies in bits."""
    n = len(gap)
    rows = []
    for i in range(n):
        for j in range(n):
            if i == j or gap[i] == gap[j]:
                continue
            u = tuple((factors[f][i], factors[f][j]) for f in subset)
            v_gap = 1 if gap[i] > gap[j] else -1
            v_mu = int(measure[i] > measure[j]) - int(measure[i] < measure[j])
            rows.append((u, v_gap, v_mu))

    def entropy(counter):
        total = sum(counter.values())
        return -sum(c / total * math.log2(c / total) for c in counter.values())

    h_u = entropy(Counter(u for u, _, _ in rows))
    h_ug = entropy(Counter((u, vg) for u, vg, _ in rows))
    h_um = entropy(Counter((u, vm) for u, _, vm in rows))
    h_ugm = entropy(Counter(rows))
    cmi = h_ug + h_um - h_ugm - h_u  # I(V_mu; V_gap | U)
    h_gap_given_u = h_ug - h_u
    return cmi / h_gap_given_u if h_gap_given_u > 1e-12 else math.nan


def test_conditional_mutual_information_matches_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(6):
        n = 14
        factors = {"a": rng.integers(0, 2, n).tolist(), "b": rng.choice(["x", "y", "z"], n).tolist(),
                   "c": rng.integers(0, 3, n).tolist()}
        gap = rng.integers(0, 6, n).astype(float)  # ties in the gap
        measure = gap + rng.integers(-3, 4, n)     # ties in the measure
        for k in (0, 1, 2, 3):
            brute = {s: _brute_cmi(measure, gap, factors, s)
                     for size in range(k + 1) for s in itertools.combinations(factors, size)}
            defined = {s: v for s, v in brute.items() if not math.isnan(v)}
            value, given = conditional_mutual_information(measure, gap, factors, max_conditioning=k)
            assert value == pytest.approx(min(defined.values()), abs=1e-12)
            assert brute[given] == pytest.approx(value, abs=1e-12)


def test_conditional_mutual_information_undefined_cases():
    assert conditional_mutual_information([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], {"f": [1, 2, 3]}) == (
        pytest.approx(math.nan, nan_ok=True), ())  # no pair differs in the gap
    # a constant measure carries no information: 0 given (); given f each cell holds one pair (H = 0, skipped)
    value, given = conditional_mutual_information([5.0, 5.0, 5.0], [1.0, 2.0, 3.0], {"f": [1, 2, 3]})
    assert (value, given) == (0.0, ())


def test_bootstrap_interval_contains_tau_is_deterministic_and_narrows_with_more_models():
    rng = np.random.default_rng(4)
    n = 60
    gap = rng.normal(size=n)
    measure = gap + rng.normal(size=n)
    tau, (lo, hi) = bootstrap_tau(measure, gap, generator=torch.Generator().manual_seed(0))
    assert tau == pytest.approx(kendall_tau(measure, gap))
    assert lo < tau < hi
    again = bootstrap_tau(measure, gap, generator=torch.Generator().manual_seed(0))
    other = bootstrap_tau(measure, gap, generator=torch.Generator().manual_seed(1))
    assert again == (tau, (lo, hi))
    assert other[1] != (lo, hi)
    _, (lo_few, hi_few) = bootstrap_tau(measure[:12], gap[:12], generator=torch.Generator().manual_seed(0))
    assert hi_few - lo_few > hi - lo
    _, (lo_80, hi_80) = bootstrap_tau(measure, gap, level=0.8, generator=torch.Generator().manual_seed(0))
    assert lo <= lo_80 and hi_80 <= hi


def _table():
    factors = _ofat({"width": 16, "bn": True, "lr": 0.1}, {"width": [4, 8, 32, 64], "bn": [False], "lr": [0.01, 0.3]})
    n = len(factors["width"])
    rng = np.random.default_rng(5)
    gap = rng.uniform(0.0, 0.3, n)
    noisy = gap + rng.normal(scale=0.05, size=n)
    noisy[[1, 4]] = np.nan
    table = {**factors, "gap": gap.tolist(), "exact": gap.tolist(), "robust": (-gap).tolist(), "noisy": noisy.tolist(),
             "broken": [math.nan] * (n - 2) + [1.0, 2.0]}
    return table, gap, noisy, factors


def test_rank_measures_against_the_functions_it_combines():
    table, gap, noisy, factors = _table()
    rankings = rank_measures(table, ["exact", "robust", "noisy", "broken"], list(factors), sign={"robust": -1},
                             generator=torch.Generator().manual_seed(7), n_boot=500)
    exact, robust, rnoisy, broken = rankings
    assert all(isinstance(r, MeasureRanking) for r in rankings)
    assert (exact.tau, exact.psi, exact.n_models, exact.sign) == (pytest.approx(1.0), pytest.approx(1.0), len(gap), 1)
    assert exact.per_factor == {f: pytest.approx(1.0) for f in factors}  # bn has 1 group of 2 models
    assert (robust.tau, robust.sign, robust.sign * robust.tau) == (pytest.approx(1.0), -1, pytest.approx(-1.0))
    assert robust.cmi == pytest.approx(1.0) and exact.cmi == pytest.approx(1.0)

    keep = ~np.isnan(noisy)
    m, g = noisy[keep], gap[keep]
    kept = {f: [v for v, k in zip(col, keep) if k] for f, col in factors.items()}
    assert rnoisy.n_models == len(gap) - 2
    assert rnoisy.tau == pytest.approx(kendall_tau(m, g))
    assert rnoisy.per_factor == {f: pytest.approx(granulated_tau(m, g, kept, f)[0], nan_ok=True) for f in factors}
    assert rnoisy.psi == pytest.approx(psi(m, g, kept))
    assert (rnoisy.worst_factor, rnoisy.worst_tau) == worst_factor(m, g, kept)
    assert (rnoisy.cmi, rnoisy.cmi_given) == conditional_mutual_information(m, g, kept)
    assert rnoisy.tau_interval == bootstrap_tau(m, g, n_boot=500, generator=torch.Generator().manual_seed(7))[1]
    assert broken.n_models == 2 and math.isnan(broken.tau) and broken.worst_factor == ""

    # every measure resamples from the same generator state: the order of the measures does not matter
    again = rank_measures(table, ["noisy", "exact"], list(factors), generator=torch.Generator().manual_seed(7),
                          n_boot=500)
    assert again[0] == rnoisy and again[1].tau_interval == exact.tau_interval


def test_bad_input_is_one_clear_value_error():
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="differ in length"):
        psi([1.0, 2.0, 3.0], [1.0, 2.0], {"f": [1, 2, 3]})
    with pytest.raises(ValueError, match="at least 3 models"):
        granulated_tau([1.0, 2.0], [1.0, 2.0], {"f": [1, 2]}, "f")
    with pytest.raises(ValueError, match="at least 3 models"):
        bootstrap_tau([1.0, 2.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="at least 2 values"):
        kendall_tau([1.0], [1.0])
    with pytest.raises(ValueError, match="unknown factor 'depth'"):
        granulated_tau(GRID_MEASURE, GRID_GAP, GRID, "depth")
    with pytest.raises(ValueError, match="factor 'g' has 2 values"):
        psi(GRID_MEASURE, GRID_GAP, {"f": GRID["f"], "g": [1, 2]})
    with pytest.raises(ValueError, match="factor 'g' is NaN at row 0"):
        worst_factor(GRID_MEASURE, GRID_GAP, {"g": [math.nan, 1, 1, 2, 2, 2]})
    with pytest.raises(ValueError, match="gap contains NaN at rows \\[2\\]"):
        conditional_mutual_information(GRID_MEASURE, [0.1, 0.2, math.nan, 0.1, 0.2, 0.3], GRID)
    with pytest.raises(ValueError, match="max_conditioning"):
        conditional_mutual_information(GRID_MEASURE, GRID_GAP, GRID, max_conditioning=-1)
    with pytest.raises(ValueError, match="factors is empty"):
        psi(GRID_MEASURE, GRID_GAP, {})
    with pytest.raises(ValueError, match="level"):
        bootstrap_tau(GRID_MEASURE, GRID_GAP, level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_tau(GRID_MEASURE, GRID_GAP, n_boot=1)
    table, _, _, factors = _table()
    with pytest.raises(ValueError, match="no column 'sharpness'"):
        rank_measures(table, ["sharpness"], list(factors))
    with pytest.raises(ValueError, match="no column 'depth'"):
        rank_measures(table, ["exact"], ["depth"])
    with pytest.raises(ValueError, match="sign of 'exact' must be \\+1 or -1"):
        rank_measures(table, ["exact"], list(factors), sign={"exact": 2})
    with pytest.raises(ValueError, match="sign names 'other'"):
        rank_measures(table, ["exact"], list(factors), sign={"other": -1})
    with pytest.raises(ValueError, match="measure 'exact' has shape"):
        rank_measures({**table, "exact": [1.0, 2.0]}, ["exact"], list(factors))


def test_a_replicate_factor_separates_groups_but_stays_out_of_psi_the_worst_factor_and_the_cmi() -> None:
    table = {"width": [1, 2, 3, 1, 1, 1], "seed": [0, 0, 0, 1, 2, 3],
             "m": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0], "gap": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]}
    with_seed = rank_measures(table, ["m"], ["width", "seed"], n_boot=50, generator=torch.Generator().manual_seed(0))[0]
    rep = rank_measures(table, ["m"], ["width", "seed"], n_boot=50, replicate="seed",
                        generator=torch.Generator().manual_seed(0))[0]
    # the seed group (width 1: seeds 0-3) orders m against the gap: tau -1 there; width orders them: +1
    assert rep.per_factor["seed"] == pytest.approx(with_seed.per_factor["seed"]) and rep.per_factor["seed"] < 0
    assert rep.psi == pytest.approx(rep.per_factor["width"]) and rep.worst_factor == "width"
    assert with_seed.worst_factor == "seed" and with_seed.psi < rep.psi
    assert "seed" not in rep.cmi_given
    with pytest.raises(ValueError, match="replicate 'lr' is not one of the factors"):
        rank_measures(table, ["m"], ["width", "seed"], replicate="lr")
