"""A paper's claim tested on a run: the test fixed before the run, an interval from the run's own spread, a verdict.

A *finding* quotes the paper, names the quantity measured and the direction the paper predicts
(`Prediction`), and gets its verdict from the interval alone:

- ``reproduced``: the whole interval lies on the paper's side of no effect (and, where the paper gives
  a size, reaches into it);
- ``opposite``: the whole interval lies on the other side;
- ``inconclusive``: the interval covers no effect (or lies on the paper's side but misses its size);
- ``not tested``: the run cannot test it (the reason is recorded).

The interval comes from the run's own spread: seeds where a chapter retrains (`mean_interval`),
random directions or probe vectors (`mean_interval` over them), or a bootstrap of the test set
(`bootstrap_interval`). A finding never fails a run; `Report.finding` records it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch

__all__ = ["VERDICTS", "Prediction", "Finding", "mean_interval", "bootstrap_interval", "scorecard"]

Verdict = Literal["reproduced", "inconclusive", "opposite", "not tested"]
VERDICTS: tuple[str, ...] = ("reproduced", "inconclusive", "opposite", "not tested")


@dataclass(frozen=True)
class Prediction:
    """What the paper predicts for a quantity: `expect` ('>' or '<') relative to `null` (no effect).

    `size` is the paper's own range for the effect where it gives one (e.g. a factor between 1 and 10):
    a reproduced finding's interval must then also reach into it.

    >>> t = Prediction(">", 0.0)
    >>> t.verdict((0.5, 2.0)), t.verdict((-1.0, 2.0)), t.verdict((-3.0, -1.0))
    ('reproduced', 'inconclusive', 'opposite')
    >>> Prediction(">", 1.0, size=(1.0, 10.0)).verdict((20.0, 40.0)), Prediction("<", 0.0).verdict((-2.0, -1.0))
    ('inconclusive', 'reproduced')
    """

    expect: Literal[">", "<"]
    null: float = 0.0
    size: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.expect not in (">", "<"):
            raise ValueError(f"Prediction.expect must be '>' or '<', got {self.expect!r}")
        if self.size is not None and not self.size[0] <= self.size[1]:
            raise ValueError(f"Prediction.size must be (low, high) with low <= high, got {self.size}")

    def describe(self) -> str:
        """The test in words, e.g. '> 0' or '> 1, within [1, 10]'."""
        text = f"{self.expect} {self.null:g}"
        return text + (f", within [{self.size[0]:g}, {self.size[1]:g}]" if self.size else "")

    def verdict(self, interval: tuple[float, float]) -> Verdict:
        """The verdict of an interval (lo, hi) under this test."""
        lo, hi = interval
        if not lo <= hi:
            raise ValueError(f"an interval needs lo <= hi, got ({lo}, {hi})")
        paper_side, other_side = (lo > self.null, hi < self.null) if self.expect == ">" else (hi < self.null, lo > self.null)
        if other_side:
            return "opposite"
        if paper_side and (self.size is None or (hi >= self.size[0] and lo <= self.size[1])):
            return "reproduced"
        return "inconclusive"

    def thresholds(self) -> tuple[float, ...]:
        """The values at which the verdict can change: no effect and the ends of the paper's size."""
        return (self.null,) + (tuple(self.size) if self.size else ())


@dataclass(frozen=True)
class Finding:
    """One claim of a paper tested on this run (the results JSON's `findings` entries)."""

    id: str
    statement: str  # the paper's words
    source: str  # where in the paper: section, figure or table
    quantity: str  # what was measured, with its units
    paper: str  # what the paper reports for it, as quoted
    test: str  # the test, fixed before the run (`Prediction.describe`)
    run: float | None  # this run's estimate (None: not tested)
    interval: tuple[float, float] | None  # from the run's own spread (None: not tested)
    spread_over: str  # what the interval is over: seeds, directions, probes, a bootstrap of the test set
    verdict: Verdict
    note: str = ""  # why it may differ from the paper, or why it was not tested
    borderline: bool = False  # an end of the interval lies within the figure's tolerance of a threshold

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"finding {self.id!r}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.verdict == "not tested":
            if not self.note:
                raise ValueError(f"finding {self.id!r}: 'not tested' needs the reason in `note`")
        elif self.interval is None or self.run is None or not self.spread_over:
            raise ValueError(f"finding {self.id!r}: a tested finding needs run, interval and spread_over")
        if not self.source:
            raise ValueError(f"finding {self.id!r}: give its source in the paper")

    @classmethod
    def from_dict(cls, d: Mapping) -> Finding:
        """A finding as recorded in a results JSON (extra keys such as its tolerance are ignored)."""
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in d.items() if k in names}
        kw["interval"] = tuple(kw["interval"]) if kw.get("interval") is not None else None
        return cls(**kw)

    def run_text(self, fmt: str = "{:.3g}") -> str:
        """'estimate [lo, hi] (spread)' or the reason it was not tested."""
        if self.interval is None or self.run is None:
            return f"not tested: {self.note}"
        lo, hi = self.interval
        return f"{fmt.format(self.run)} [{fmt.format(lo)}, {fmt.format(hi)}] ({self.spread_over})"


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


def mean_interval(values: Sequence[float] | torch.Tensor, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean of independent replicates (seeds, directions, probes) and its Student-t interval at `level`.

    >>> m, (lo, hi) = mean_interval([1.0, 2.0, 3.0])
    >>> m, round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() < 2 or not bool(torch.isfinite(x).all()):
        raise ValueError(f"mean_interval needs at least 2 finite values, got {x.tolist()}")
    mean, se = x.mean().item(), (x.std(unbiased=True) / math.sqrt(x.numel())).item()
    half = _t_quantile(level, x.numel() - 1) * se
    return mean, (mean - half, mean + half)


def bootstrap_interval(values: torch.Tensor, *, level: float = 0.95, n_boot: int = 4000,
                       generator: torch.Generator | None = None) -> tuple[float, tuple[float, float]]:
    """Mean of per-item values (n,) and its percentile-bootstrap interval over the items at `level`.

    For a paired comparison of two models on one test set pass the per-image difference (e.g. correct_a
    - correct_b), so that both are resampled together. All resamples are drawn as one (n_boot, n) index.

    >>> v = torch.tensor([0.0, 1.0] * 50)
    >>> m, (lo, hi) = bootstrap_interval(v, generator=torch.Generator().manual_seed(0))
    >>> m, 0.39 < lo < 0.42, 0.58 < hi < 0.61
    (0.5, True, True)
    """
    x = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    if x.numel() < 2:
        raise ValueError(f"bootstrap_interval needs at least 2 values, got {x.numel()}")
    idx = torch.randint(0, x.numel(), (n_boot, x.numel()), generator=generator)
    means = x[idx].mean(1)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return x.mean().item(), (lo, hi)


def scorecard(findings: Sequence[Mapping]) -> dict[str, int]:
    """How many findings got each verdict.

    >>> scorecard([{"verdict": "reproduced"}, {"verdict": "opposite"}, {"verdict": "reproduced"}])
    {'reproduced': 2, 'inconclusive': 0, 'opposite': 1, 'not tested': 0}
    """
    return {v: sum(f["verdict"] == v for f in findings) for v in VERDICTS}
