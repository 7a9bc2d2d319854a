"""The book's papers' claims, tested across a model zoo as rank correlations.

A claim names two columns of the zoo's table and the sign of Kendall's tau the paper predicts between
them, over the whole zoo or over the models of one factor (the base, the models that vary only that factor,
and their seed replicates). Its interval is a bootstrap over those models (`analysis.bootstrap_tau`); over the whole zoo
it is also broken down by factor (granulated tau), which shows the factors it depends on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch

from ..book.findings import Prediction
from . import analysis

__all__ = ["Claim", "ClaimResult", "CLAIMS", "evaluate", "evaluate_all"]


@dataclass(frozen=True)
class Claim:
    """A paper's claim as a predicted sign of tau(x, y) over the zoo, or over one factor's models."""

    id: str
    statement: str  # the paper's words
    source: str  # paper, section or figure
    quantity: str  # what is measured, in words
    paper: str  # what the paper reports
    x: str  # table columns
    y: str
    expect: Literal[">", "<"]  # the predicted sign of tau(x, y)
    factor: str | None = None  # None: the whole zoo; else the models that differ from the base only in this
    # factor and in their seed
    note: str = ""  # how the zoo differs from the paper's setting


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    tau: float  # nan: fewer than 3 models measured both columns (not tested)
    interval: tuple[float, float]  # percentile bootstrap over the models
    n_models: int
    per_factor: dict[str, float]  # granulated tau(x, y) per factor (whole-zoo claims only), raw sign

    def record(self, report, n_boot: int):
        """Record the claim as a finding of `report` (a `genlens.book.report.Report`), or as not tested."""
        c = self.claim
        if math.isnan(self.tau) or math.isnan(self.interval[0]):
            return report.not_tested(f"claim_{c.id}", c.statement, c.source, quantity=c.quantity, paper=c.paper,
                                     reason=f"only {self.n_models} models measured both {c.x} and {c.y}, "
                                            f"or their tau is undefined")
        return report.finding(f"claim_{c.id}", c.statement, c.source, quantity=c.quantity, paper=c.paper,
                              test=Prediction(c.expect, 0.0), run=self.tau, interval=self.interval,
                              spread_over=f"a bootstrap over the {self.n_models} models ({n_boot} resamples)",
                              note=c.note)


def _models_of(table: Mapping[str, Sequence], factor: str | None, factors: Sequence[str],
               replicate: str | None) -> list[int]:
    """Rows of the claim: every model, or those that differ from the base (the row named 'base') only in
    `factor` and the `replicate` (its seed replicates)."""
    if factor is None:
        return list(range(len(table["model"])))
    if factor not in factors:  # the zoo does not vary it: the claim is not tested
        return []
    base = list(table["model"]).index("base")
    fixed = [f for f in factors if f not in (factor, replicate)]
    return [i for i in range(len(table["model"])) if all(table[f][i] == table[f][base] for f in fixed)]


def evaluate(claim: Claim, table: Mapping[str, Sequence], factors: Sequence[str], *, n_boot: int = 2000,
             generator: torch.Generator | None = None, replicate: str | None = "seed") -> ClaimResult:
    """tau(x, y) over the claim's models with its bootstrap interval, and (whole zoo) its granulated tau per
    factor other than `replicate`. `table` maps column names (with "model": 'base', 'width=32', ...) to values."""
    for column in ("model", claim.x, claim.y):
        if column not in table:
            raise ValueError(f"claim {claim.id!r}: the table has no column {column!r}")
    pick = _models_of(table, claim.factor, factors, replicate)
    x = [float(table[claim.x][i]) for i in pick]
    y = [float(table[claim.y][i]) for i in pick]
    keep = [i for i, (a, b) in enumerate(zip(x, y)) if not (math.isnan(a) or math.isnan(b))]
    x, y, pick = [x[i] for i in keep], [y[i] for i in keep], [pick[i] for i in keep]
    if len(pick) < analysis.MIN_MODELS:
        return ClaimResult(claim, math.nan, (math.nan, math.nan), len(pick), {})
    tau, interval = analysis.bootstrap_tau(x, y, n_boot=n_boot, generator=generator)
    per_factor = {}
    if claim.factor is None:
        columns = {f: [table[f][i] for i in pick] for f in factors}
        per_factor = {f: analysis.granulated_tau(x, y, columns, f)[0] for f in factors if f != replicate}
    return ClaimResult(claim, tau, interval, len(pick), per_factor)



def evaluate_all(claims: Sequence[Claim], table: Mapping[str, Sequence], factors: Sequence[str], *, n_boot: int = 2000,
                 seed: int = 0, replicate: str | None = "seed") -> list[ClaimResult]:
    """`evaluate` for each claim, in order, each bootstrap drawn from its own generator seeded by `seed` (a claim's
    interval does not depend on the claims before it)."""
    return [evaluate(c, table, factors, n_boot=n_boot, generator=torch.Generator().manual_seed(seed), replicate=replicate)
            for c in claims]


CLAIMS: tuple[Claim, ...] = (
    Claim("sharpness_gap",
          "Using the filter-normalized plots in Figure 3, we can make side-by-side comparisons between minimizers, "
          "and we see that now sharpness correlates well with generalization error.",
          "Li et al. 2018, Sec. 5, Fig. 3",
          "Kendall τ(filter-normalized sharpness, generalization gap) over the zoo",
          "sharper minimizers (large batches) had the higher test error, for VGG-9 on CIFAR-10",
          "sharpness", "gap", ">",
          note="the paper compares pairs of minimizers by eye; here a rank correlation over every model of the zoo"),
    Claim("width_flatter",
          "increased network width resulted in flat minima and wide regions of apparent convexity",
          "Li et al. 2018, Sec. 6, Fig. 6",
          "Kendall τ(width, filter-normalized sharpness) over the base, the models varying the width, and their seed replicates",
          "wider ResNet-56 variants had visibly flatter, more convex surfaces",
          "width", "sharpness", "<", factor="width"),
    Claim("large_batch_sharper",
          "the results consistently show that large batch converges to points with noticeably higher Hessian spectrum",
          "Yao et al. 2018, Abstract; Sec. 4, Fig. 3",
          "Kendall τ(batch size, top Hessian eigenvalue) over the base, the models varying the batch size, and their seed replicates",
          "the top eigenvalue grew with the batch size (Fig. 3)",
          "batch_size", "hessian_top", ">", factor="batch_size",
          note="the paper trains every batch size for the same epochs; here each stops once it fits its training labels"),
    Claim("large_batch_accuracy_loss",
          "Large batch size training of Neural Networks has been shown to incur accuracy loss when trained with the "
          "current methods.",
          "Yao et al. 2018, Abstract; Sec. 4, Tables 1-2",
          "Kendall τ(batch size, test accuracy) over the base, the models varying the batch size, and their seed replicates",
          "test accuracy fell as the batch size grew (Tables 1-2)",
          "batch_size", "test_acc", "<", factor="batch_size"),
    Claim("hessian_less_robust",
          "points with large Hessian spectrum show poor robustness to adversarial perturbation",
          "Yao et al. 2018, Abstract; Sec. 5, Fig. 6",
          "Kendall τ(top Hessian eigenvalue, PGD accuracy) over the zoo",
          "large-batch models, with the larger spectrum, were less robust to adversarial perturbation (Fig. 6)",
          "hessian_top", "pgd_acc", "<",
          note="the paper varies the batch size only; here every factor of the zoo"),
    Claim("id_predicts_accuracy",
          "the ID of the last hidden layer predicts classification accuracy on the test set",
          "Ansuini et al. 2019, Abstract; Fig. 4",
          "Kendall τ(last-hidden-layer ID, test accuracy) over the zoo",
          "across ImageNet architectures, a lower last-layer ID went with a higher test accuracy",
          "id_last", "test_acc", "<",
          note="the paper compares architectures trained on ImageNet; here every factor of a small zoo, "
               "including label noise, which the paper does not vary in Fig. 4"),
)
