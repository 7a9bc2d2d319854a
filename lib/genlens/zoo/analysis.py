"""How well a measure ranks the generalization gap over a model zoo (Jiang et al. 2020, arXiv:1912.02178).

A zoo is a table: one row per model, a column per hyperparameter (a "factor": numbers, strings or bools,
compared with ``==``), a column per measure, and the generalization gap. Every function takes plain
sequences with one value per model (lists, numpy arrays, 1-D tensors) and returns plain floats:

- `kendall_tau`: Kendall's tau-b of a measure with the gap (Jiang et al. Sec. 5).
- `granulated_tau`, `psi`, `worst_factor`: tau within groups of models that differ only in one factor,
  averaged over the groups (Sec. 5, eq. 4), and the mean of that over the factors (Psi).
- `conditional_mutual_information`: the conditional-independence test of Sec. 6 (also PGDL's score).
- `bootstrap_tau`: tau with a percentile bootstrap interval over models.
- `rank_measures`: all of these for every measure column of a table.

Bad input (lengths that differ, fewer than 3 models, a NaN, an unknown factor) is one ValueError line
naming the problem, raised before any work; a value the data leave undefined (tau of a constant) is NaN.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

__all__ = ["kendall_tau", "granulated_tau", "psi", "worst_factor", "conditional_mutual_information",
           "bootstrap_tau", "MeasureRanking", "rank_measures"]

MIN_MODELS = 3  # fewest models a zoo-level function accepts (kendall_tau alone accepts 2)
_TIE = 1e-12  # normalized CMI values closer than this are equal (the choice of S must not hang on rounding)
_CHUNK_ELEMENTS = 1 << 22  # bootstrap: resamples per chunk * n * n stays below this (memory ~ 32 MB per tensor)


# ---------------------------------------------------------------------------------------------- input checks

def _column(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D float64 array; a ValueError naming `name` if not 1-D numbers or if it holds a NaN."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, one per model") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per model), got shape {tuple(arr.shape)}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at rows {np.flatnonzero(np.isnan(arr)).tolist()}")
    return arr


def _pair(measure: Any, gap: Any, min_models: int = MIN_MODELS) -> tuple[np.ndarray, np.ndarray]:
    """The measure and the gap as float64 arrays of one equal length >= `min_models`."""
    m, g = _column(measure, "measure"), _column(gap, "gap")
    if len(m) != len(g):
        raise ValueError(f"measure and gap differ in length: {len(m)} != {len(g)}")
    if len(m) < min_models:
        raise ValueError(f"need at least {min_models} models, got {len(m)}")
    return m, g


def _factor_columns(factors: Mapping[str, Sequence], n: int, *, require: bool = True) -> dict[str, list]:
    """Each factor column as a list of n hashable values (numpy/torch scalars made Python scalars)."""
    if not isinstance(factors, Mapping):
        raise ValueError(f"factors must be a mapping from factor name to column, got {type(factors).__name__}")
    if require and not factors:
        raise ValueError("factors is empty: need at least one factor column")
    columns: dict[str, list] = {}
    for name, col in factors.items():
        values = col.tolist() if isinstance(col, (np.ndarray, torch.Tensor)) else list(col)
        if len(values) != n:
            raise ValueError(f"factor {name!r} has {len(values)} values, the measure has {n}")
        for i, v in enumerate(values):
            try:
                hash(v)
            except TypeError:
                raise ValueError(f"factor {name!r} has an unhashable value at row {i}: {v!r}") from None
            if v != v:  # NaN of any numeric type: never equal to itself, so it would form groups of one
                raise ValueError(f"factor {name!r} is NaN at row {i}")
        columns[name] = values
    return columns


# ---------------------------------------------------------------------------------------------- Kendall's tau

def _signs(x: torch.Tensor) -> torch.Tensor:
    """sign(x_i - x_j) for every ordered pair, by comparison (so +-inf rank correctly). (..., n) -> (..., n, n)."""
    left, right = x[..., :, None], x[..., None, :]
    return (left > right).to(torch.float64) - (left < right).to(torch.float64)


def _tau_b(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-b of each row pair: (..., n), (..., n) -> (...); NaN where a row is constant.

    tau_b = sum_ij s_a s_b / sqrt(sum_ij |s_a| * sum_ij |s_b|), s = sign of the pairwise differences: the
    numerator is concordant minus discordant pairs, each denominator factor the pairs not tied in that input.
    """
    sa, sb = _signs(a), _signs(b)
    num = (sa * sb).sum(dim=(-2, -1))
    den = torch.sqrt(sa.abs().sum(dim=(-2, -1)) * sb.abs().sum(dim=(-2, -1)))
    return torch.where(den > 0, num / den.clamp_min(1.0), torch.full_like(num, math.nan))


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(_tau_b(torch.from_numpy(a), torch.from_numpy(b)))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (>= 2 values, no NaN; +-inf rank as extremes).

    Ties count as in `scipy.stats.kendalltau`'s default (variant "b"): a pair tied in one input is left out
    of that input's normalization. NaN if either input is constant.

    >>> kendall_tau([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4])  # 5 of the 6 pairs agree
    0.6666666666666666
    """
    x, y = _column(a, "a"), _column(b, "b")
    if len(x) != len(y):
        raise ValueError(f"a and b differ in length: {len(x)} != {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 values, got {len(x)}")
    return _tau(x, y)


# ---------------------------------------------------------------------------------------------- granulated tau

def _granulated(m: np.ndarray, g: np.ndarray, columns: dict[str, list], factor: str) -> tuple[float, int]:
    others = [f for f in columns if f != factor]
    groups: dict[tuple, list[int]] = {}
    for i in range(len(m)):
        groups.setdefault(tuple(columns[f][i] for f in others), []).append(i)
    taus = [_tau(m[idx], g[idx]) for idx in groups.values() if len(idx) >= 2]
    defined = [t for t in taus if not math.isnan(t)]
    return (float(np.mean(defined)) if defined else math.nan), len(defined)


def _per_factor(m: np.ndarray, g: np.ndarray, columns: dict[str, list]) -> dict[str, float]:
    return {f: _granulated(m, g, columns, f)[0] for f in columns}


def granulated_tau(measure: Sequence[float], gap: Sequence[float], factors: Mapping[str, Sequence],
                   factor: str) -> tuple[float, int]:
    """Jiang et al. Sec. 5, eq. 4: tau(measure, gap) within groups where only `factor` varies, averaged.

    The models are grouped by their values of every factor other than `factor` (all models form one group
    if there is no other factor). Models with identical values of every factor (replicates, e.g. seeds)
    share a group and their pairs count too. Returns the mean tau over the groups of >= 2 models whose
    tau is defined (neither input constant within the group) and the number of such groups; (nan, 0) if none.

    >>> factors = {"width": [8, 16, 32, 8, 16], "bn": [True, True, True, False, False]}
    >>> granulated_tau([1, 2, 3, 5, 4], [0.1, 0.2, 0.3, 0.5, 0.6], factors, "width")  # groups bn=True, bn=False
    (0.0, 2)
    """
    m, g = _pair(measure, gap)
    columns = _factor_columns(factors, len(m))
    if factor not in columns:
        raise ValueError(f"unknown factor {factor!r}; the factors are {list(columns)}")
    return _granulated(m, g, columns, factor)


def _mean_defined(values: Sequence[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def psi(measure: Sequence[float], gap: Sequence[float], factors: Mapping[str, Sequence]) -> float:
    """Jiang et al.'s Psi: the mean of `granulated_tau` over the factors where it is defined (nan if none)."""
    m, g = _pair(measure, gap)
    return _mean_defined(list(_per_factor(m, g, _factor_columns(factors, len(m))).values()))


def _worst(per_factor: dict[str, float]) -> tuple[str, float]:
    defined = {f: t for f, t in per_factor.items() if not math.isnan(t)}
    if not defined:
        return "", math.nan
    name = min(defined, key=defined.__getitem__)  # the first in factor order on a tie
    return name, defined[name]


def worst_factor(measure: Sequence[float], gap: Sequence[float], factors: Mapping[str, Sequence]) -> tuple[str, float]:
    """The factor with the smallest defined `granulated_tau` and that tau (first in factor order on a tie);
    ("", nan) if it is defined for no factor."""
    m, g = _pair(measure, gap)
    return _worst(_per_factor(m, g, _factor_columns(factors, len(m))))


# ---------------------------------------------------------------------------------------------- conditional MI

def _normalized_cmi(cell: np.ndarray, v_gap: np.ndarray, v_mu: np.ndarray) -> float:
    """I(V_mu; V_gap | U) / H(V_gap | U) from one row per pair: its cell of U (0..U-1, every cell holding a
    pair), V_gap in {0, 1}, V_mu in {0, 1, 2}; both averaged over the cells with weight p(u). NaN if H = 0."""
    n_cells = int(cell.max()) + 1
    c = np.bincount(cell * 6 + v_gap * 3 + v_mu, minlength=n_cells * 6).reshape(n_cells, 2, 3).astype(np.float64)
    total = c.sum()
    n_u = c.sum(axis=(1, 2))    # (U,) pairs per cell
    c_ug = c.sum(axis=2)        # (U, 2)
    c_um = c.sum(axis=1)        # (U, 3)
    seen = c > 0
    ratio = (c * n_u[:, None, None])[seen] / (c_ug[:, :, None] * c_um[:, None, :])[seen]
    mi = float(np.sum(c[seen] / total * np.log2(ratio)))
    seen_g = c_ug > 0
    p_gap_given_u = c_ug[seen_g] / np.broadcast_to(n_u[:, None], c_ug.shape)[seen_g]
    h_gap = float(-np.sum(c_ug[seen_g] / total * np.log2(p_gap_given_u)))
    if h_gap <= 0.0:
        return math.nan
    return min(max(mi, 0.0), h_gap) / h_gap


def _codes(values: list) -> np.ndarray:
    """Each value's index among the distinct values (by ==), in order of first appearance. (n,) int64."""
    lookup: dict[Any, int] = {}
    return np.array([lookup.setdefault(v, len(lookup)) for v in values], dtype=np.int64)


def conditional_mutual_information(measure: Sequence[float], gap: Sequence[float], factors: Mapping[str, Sequence],
                                   *, max_conditioning: int = 2) -> tuple[float, tuple[str, ...]]:
    """Jiang et al. Sec. 6: min over S, |S| <= max_conditioning, of I(V_mu; V_gap | U_S) / H(V_gap | U_S).

    Pairs: every ordered pair of models (i, j), i != j, whose gaps differ. PGDL's scoring program
    (``scoring_program/mutual_information.py``) also enumerates ordered pairs; it counts i == j too and
    reads a tie (in gap or measure) as "less": we drop pairs tied in the gap (V_gap is undefined for them)
    and keep a tie in the measure as its own value. Counting each unordered pair both ways makes the cells
    (a, b) and (b, a) of U_S mirror images and V_gap exactly balanced in a cell (a, a), whatever the order
    of the rows. Per pair: V_gap = sign(gap_i - gap_j) in {-1, +1}, V_mu = sign(mu_i - mu_j) in
    {-1, 0, +1} (a constant measure carries no information), U_S = the ordered pair of values
    ((f_i, f_j) for f in S).

    Normalization: I(V_mu; V_gap | U_S) = sum_u p(u) I(V_mu; V_gap | U_S = u) and H(V_gap | U_S) =
    sum_u p(u) H(V_gap | U_S = u), p(u) the fraction of the pairs in cell u, as in Jiang et al.'s
    definition; PGDL's code instead averages both unweighted over every cell of its grid of values, which
    in a one-factor-at-a-time zoo would weigh a cell of two pairs like the base model's cell of hundreds.
    S ranges over every subset of the factors with |S| <= max_conditioning, the empty set included
    (Jiang: |S| <= 2; PGDL: exactly 2 factors). A subset with H(V_gap | U_S) = 0 (the factors in S alone
    decide which gap is larger in every cell, e.g. one pair per cell) leaves nothing to explain and is skipped.

    Returns the minimum in [0, 1] (1: V_mu decides V_gap in every cell -- the test is blind to the direction,
    so -gap scores 1 as well; 0: independent given U_S) and the S attaining it, the first (values within
    1e-12 tie) in the order (), single factors, pairs, ... (factors in their mapping order); (nan, ()) if
    no S is defined.
    """
    m, g = _pair(measure, gap)
    columns = _factor_columns(factors, len(m), require=False)
    if isinstance(max_conditioning, bool) or not isinstance(max_conditioning, int) or max_conditioning < 0:
        raise ValueError(f"max_conditioning must be an int >= 0, got {max_conditioning!r}")
    codes = {f: _codes(col) for f, col in columns.items()}
    i, j = np.nonzero(g[:, None] != g[None, :])
    if len(i) == 0:
        return math.nan, ()
    v_gap = (g[i] > g[j]).astype(np.int64)
    v_mu = (m[i] > m[j]).astype(np.int64) - (m[i] < m[j]).astype(np.int64) + 1
    best, best_s = math.inf, ()
    names = list(columns)
    for size in range(min(max_conditioning, len(names)) + 1):
        for subset in itertools.combinations(names, size):
            if subset:
                keys = np.stack([k for f in subset for k in (codes[f][i], codes[f][j])], axis=1)
                cell = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
            else:
                cell = np.zeros(len(i), dtype=np.int64)
            value = _normalized_cmi(cell, v_gap, v_mu)
            if value < best - _TIE:  # a value within rounding of the best so far ties: the first S stays
                best, best_s = value, subset
    return (best, best_s) if best < math.inf else (math.nan, ())


# ---------------------------------------------------------------------------------------------- bootstrap

def bootstrap_tau(measure: Sequence[float], gap: Sequence[float], *, n_boot: int = 2000, level: float = 0.95,
                  generator: torch.Generator | None = None) -> tuple[float, tuple[float, float]]:
    """Kendall's tau-b and a percentile bootstrap interval over models.

    Each of `n_boot` resamples draws n rows with replacement (torch.randint with `generator`, CPU; the
    global generator if None), so the interval is deterministic given the generator's state. A row drawn
    twice forms a pair tied in both inputs, which tau-b leaves out. Resamples whose tau is undefined (a
    constant resample) are left out; the interval is the (1 - level)/2 and (1 + level)/2 quantiles
    (linear interpolation) of the rest, (nan, nan) if none is defined. Vectorized: tau of a chunk of
    resamples at once from a (chunk, n, n) sign tensor.
    """
    m, g = _pair(measure, gap)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n = len(m)
    a, b = torch.from_numpy(m), torch.from_numpy(g)
    index = torch.randint(n, (n_boot, n), generator=generator)
    chunk = max(1, _CHUNK_ELEMENTS // (n * n))
    taus = torch.cat([_tau_b(a[idx], b[idx]) for idx in index.split(chunk)])
    taus = taus[~torch.isnan(taus)]
    if len(taus) == 0:
        interval = (math.nan, math.nan)
    else:
        q = torch.quantile(taus, torch.tensor([(1.0 - level) / 2, (1.0 + level) / 2], dtype=torch.float64))
        interval = (float(q[0]), float(q[1]))
    return _tau(m, g), interval


# ---------------------------------------------------------------------------------------------- ranking

@dataclass(frozen=True)
class MeasureRanking:
    """How one measure ranks the gap over a zoo. Every tau is of sign * measure (see `rank_measures`)."""

    measure: str                        # the measure's column name
    tau: float                          # Kendall's tau-b with the gap over the n_models models
    tau_interval: tuple[float, float]   # percentile bootstrap interval of tau over models
    per_factor: dict[str, float]        # factor -> granulated tau (nan where no group defines it)
    psi: float                          # mean of the defined per_factor values
    cmi: float                          # normalized conditional mutual information (sign-blind), in [0, 1]
    cmi_given: tuple[str, ...]          # the conditioning factors that attain cmi
    worst_factor: str                   # the factor with the smallest defined granulated tau ("" if none)
    worst_tau: float                    # its granulated tau
    n_models: int                       # models with a measured (non-NaN) value: the rest are dropped
    sign: int                           # +1 or -1: the measure was multiplied by it before ranking


def rank_measures(table: Mapping[str, Sequence], measures: Sequence[str], factors: Sequence[str], gap: str = "gap",
                  *, sign: Mapping[str, int] | None = None, generator: torch.Generator | None = None,
                  n_boot: int = 2000, level: float = 0.95, max_conditioning: int = 2,
                  replicate: str | None = None) -> list[MeasureRanking]:
    """One `MeasureRanking` per measure, in the order of `measures`.

    table: column name -> one value per model; it must hold `gap`, every measure and every factor.
    sign: measure -> +1 or -1 (default +1 for every measure): the direction in which the measure is
    expected to grow with the gap, taken as given. Each measure is multiplied by its sign first, so every
    recorded tau (tau, tau_interval, per_factor, psi, worst_tau) is the signed one: positive means the
    measure orders the models as expected; the raw tau is sign * tau. cmi is the same for either sign.
    Rows whose measure is NaN are dropped for that measure (n_models counts the rest); a measure with
    fewer than 3 models left gets NaN everywhere. The gap may hold no NaN.
    Bootstrap: every measure resamples from the same state of `generator` (the same resamples for
    measures over the same models, whatever their order); the generator ends as after one bootstrap.
    None: a generator seeded from torch's global generator.
    replicate: a factor that only replicates models (the seed): it separates the groups of the granulated
    tau and keeps its own entry in per_factor (the noise floor), but psi, the worst factor and the CMI's
    conditioning leave it out.
    """
    if replicate is not None and replicate not in factors:
        raise ValueError(f"replicate {replicate!r} is not one of the factors {list(factors)}")
    if not isinstance(table, Mapping):
        raise ValueError(f"table must be a mapping from column name to values, got {type(table).__name__}")
    if isinstance(measures, str) or isinstance(factors, str):
        raise ValueError("measures and factors must be sequences of column names, not one string")
    if not measures:
        raise ValueError("measures is empty: name at least one measure column")
    if len(set(measures)) != len(measures):
        raise ValueError(f"measures repeats a name: {list(measures)}")
    for column in [gap, *measures, *factors]:
        if column not in table:
            raise ValueError(f"table has no column {column!r}; it has {list(table)}")
    signs = dict(sign or {})
    for name, s in signs.items():
        if name not in measures:
            raise ValueError(f"sign names {name!r}, which is not one of the measures {list(measures)}")
        if isinstance(s, bool) or s not in (1, -1):
            raise ValueError(f"sign of {name!r} must be +1 or -1, got {s!r}")
    g_all = _column(table[gap], f"gap column {gap!r}")
    n = len(g_all)
    if n < MIN_MODELS:
        raise ValueError(f"need at least {MIN_MODELS} models, got {n}")
    columns_all = _factor_columns({f: table[f] for f in factors}, n)
    values: dict[str, np.ndarray] = {}
    for name in measures:
        col = table[name]
        col = col.detach().cpu().numpy() if isinstance(col, torch.Tensor) else col
        try:
            values[name] = np.asarray(col, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"measure {name!r} must be numbers, one per model") from None
        if values[name].shape != (n,):
            raise ValueError(f"measure {name!r} has shape {values[name].shape}, the gap has ({n},)")
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(1 << 62, (1,)).item()))
    state = generator.get_state()

    rankings = []
    for name in measures:
        s = signs.get(name, 1)
        keep = ~np.isnan(values[name])
        n_models = int(keep.sum())
        if n_models < MIN_MODELS:
            rankings.append(MeasureRanking(name, math.nan, (math.nan, math.nan), {f: math.nan for f in factors},
                                           math.nan, math.nan, (), "", math.nan, n_models, s))
            continue
        m, g = s * values[name][keep], g_all[keep]
        columns = {f: [v for v, k in zip(col, keep) if k] for f, col in columns_all.items()}
        generator.set_state(state)
        tau, interval = bootstrap_tau(m, g, n_boot=n_boot, level=level, generator=generator)
        per_factor = _per_factor(m, g, columns)
        design = {f: t for f, t in per_factor.items() if f != replicate}
        cmi, given = conditional_mutual_information(m, g, {f: c for f, c in columns.items() if f != replicate},
                                                    max_conditioning=max_conditioning)
        worst, worst_tau = _worst(design)
        rankings.append(MeasureRanking(name, tau, interval, per_factor, _mean_defined(list(design.values())),
                                       cmi, given, worst, worst_tau, n_models, s))
    return rankings
