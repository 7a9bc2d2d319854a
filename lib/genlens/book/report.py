"""What a chapter records about its run: metrics, checks, findings, and the "paper vs. this run" table.

A chapter builds one `Report`, adds the metrics computed by the run, the *checks* its experiment needs
to mean anything (a failing check fails the run), the paper's claims as *findings* with an interval
and a verdict (`genlens.book.findings`; a finding never fails the run), quotes the paper's figures
with their source, and calls `save()` and `assert_checks()` at the end. When the runner executes the chapter it
sets ``GENLENS_RESULTS_PATH`` and `save()` writes there; otherwise (a reader's own kernel, nbval)
nothing is written.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..core.cache import atomic_write_bytes, atomic_write_json
from ..core.device import describe, peak_rss_mb
from .findings import Finding, Prediction, scorecard
from .runner import RunError, repo_root, results_path, side_path  # the runner imports papermill, jupytext only to run


def versions() -> dict[str, str]:
    """Versions of python, torch and genlens (and torchvision if importable)."""
    from .. import __version__

    out = {"python": platform.python_version(), "torch": torch.__version__, "genlens": __version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # pragma: no cover
        pass
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the checkout containing `path` (default: this package), or None."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:
        return None


def _cell(value: Any) -> str:
    """A table cell: str(value) with the characters that would break a markdown table row escaped."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; cells are formatted with str() and `|` is escaped so a cell stays one cell."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Tol:
    """How far a re-executed run's figure may lie from the recorded one: |a - b| <= abs + rel * max(|a|, |b|).

    `why` says where the tolerance comes from (a test set's binomial error, the spread over seeds, the
    drift measured between processors); it is recorded beside the figure in the results JSON.
    """

    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def __post_init__(self) -> None:
        if not (self.abs >= 0 and self.rel >= 0):
            raise ValueError(f"a tolerance must be >= 0, got abs={self.abs}, rel={self.rel}")

    def allows(self, a: float, b: float) -> bool:
        """Whether figures a and b agree within this tolerance (two NaNs agree; NaN and a number do not)."""
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= self.abs + self.rel * max(abs(a), abs(b)) + 1e-12 * max(1.0, abs(a), abs(b))

    def width(self, value: float) -> float:
        """The tolerance at `value`, in its units."""
        return self.abs + self.rel * abs(value)

    def describe(self) -> str:
        parts = ([f"{self.abs:g}"] if self.abs or not self.rel else []) + ([f"{100 * self.rel:g}%"] if self.rel else [])
        return "exact" if not self.abs and not self.rel else "+/- " + " + ".join(parts)


EXACT = Tol(why="a count, an argmax or a construction: the same on every processor")


@dataclass
class PaperRow:
    quantity: str
    paper: str  # the paper's figure as quoted, e.g. "100.0 %"
    source: str  # where in the paper, e.g. "Table 1"
    run: str  # this run's figure, formatted from a computed number
    value: float = math.nan  # the same figure, unformatted
    tolerance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Metrics (name -> number), checks, findings and paper-vs-run rows of one chapter run.

    `tolerances` maps glob patterns (over metric names and paper-vs-run quantities) to the `Tol` within
    which a re-executed run must reproduce the figure; the first matching pattern applies and a figure
    that matches none is refused, so every recorded figure carries a stated tolerance.
    """

    chapter: str
    profile: str
    seed: int
    device: str
    tolerances: dict[str, Tol] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_tol: dict[str, Tol] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_text: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    finding_tol: dict[str, Tol] = field(default_factory=dict)
    margins: dict[str, dict[str, Any]] = field(default_factory=dict)  # outcome -> margin, tol, borderline
    rows: list[PaperRow] = field(default_factory=list)
    smoke: bool = False  # a smoke run (every setting shrunk): checks are recorded, not enforced; never validated

    def tolerance(self, key: str) -> Tol:
        """The tolerance of the figure named `key`: the first pattern of `tolerances` that matches it."""
        for pattern, tol in self.tolerances.items():
            if fnmatch.fnmatchcase(key, pattern):
                return tol
        raise ValueError(f"{self.chapter}: no tolerance stated for the figure {key!r}; "
                         f"add a pattern for it to the chapter's tolerances")

    def metric(self, name: str, value: float) -> float:
        """Record a computed number (with the tolerance its name matches) and return it."""
        value = float(value)
        self.metric_tol[name] = self.tolerance(name)
        self.metrics[name] = value
        return value

    def outcome(self, name: str, value: float, *, margin: float, tol: float) -> float:
        """Record an outcome that is compared exactly (an argmax, a winner), with the margin that decided it.

        `margin` (>= 0) is how far the decision was from going the other way (best minus runner-up) and `tol`
        the tolerance of that margin in the same units; within it the outcome is borderline and may differ
        between runs without failing the validation. Returns `value`.
        """
        value = float(value)
        if not (tol >= 0):
            raise ValueError(f"outcome {name!r}: tol must be >= 0, got {tol}")
        self.metrics[name] = value
        self.metric_tol[name] = EXACT
        self.margins[name] = {"margin": float(margin), "tol": float(tol), "borderline": abs(margin) <= tol}
        return value

    def timing(self, name: str, seconds: float) -> float:
        """Record a time in seconds: machine-dependent, so shown and kept but never compared across runs."""
        self.timings[name] = float(seconds)
        return float(seconds)

    def check(self, name: str, holds: bool, text: str) -> bool:
        """Record a check: a property the experiment needs to mean anything (e.g. random labels were fitted).

        A check that does not hold fails the run (`assert_checks`); it is not one of the paper's claims.
        """
        if name in self.checks:
            raise ValueError(f"check {name!r} recorded twice")
        self.checks[name] = bool(holds)
        self.check_text[name] = text
        return bool(holds)

    def finding(self, id: str, statement: str, source: str, *, quantity: str, paper: str, test: Prediction,
                run: float, interval: tuple[float, float], spread_over: str, note: str = "") -> Finding:
        """Record one of the paper's claims tested on this run; the verdict follows from `test` and `interval`.

        `statement` quotes the paper and `source` says where; `test` was fixed before the run. The
        interval comes from the run's own spread, named in `spread_over`. The finding's tolerance (the
        pattern of `tolerances` that matches `id`) bounds how far `run` and the interval may move on
        another processor; an interval end within it of a threshold of `test` makes the finding
        borderline (its verdict may then differ there). A finding never fails the run.
        """
        tol = self.tolerance(id)
        lo, hi = float(interval[0]), float(interval[1])
        borderline = any(abs(end - t) <= tol.width(t) for end in (lo, hi) for t in test.thresholds())
        return self._add(Finding(id, statement, source, quantity, paper, test.describe(), float(run), (lo, hi),
                                 spread_over, test.verdict((lo, hi)), note, borderline), tol)

    def not_tested(self, id: str, statement: str, source: str, *, quantity: str, paper: str, reason: str) -> Finding:
        """Record a claim of the paper this run cannot test, with the reason (e.g. "needs ImageNet")."""
        return self._add(Finding(id, statement, source, quantity, paper, "", None, None, "", "not tested", reason), None)

    def _add(self, finding: Finding, tol: Tol | None) -> Finding:
        if any(f.id == finding.id for f in self.findings):
            raise ValueError(f"finding {finding.id!r} recorded twice")
        self.findings.append(finding)
        if tol is not None:
            self.finding_tol[finding.id] = tol
        return finding

    def findings_markdown(self, fmt: str = "{:.3g}") -> str:
        """The findings as a markdown table: the paper's statement and source, its figure, this run, the verdict."""
        def verdict(f: Finding) -> str:
            return f"**{f.verdict}**" + (" (borderline)" if f.borderline else "")
        return markdown_table(["finding (the paper's words)", "source", "paper", "test", "this run [interval]", "verdict"],
                              [[f"{f.statement} ({f.quantity})", f.source, f.paper, f.test or "-", f.run_text(fmt), verdict(f)]
                               for f in self.findings])

    def checks_markdown(self) -> str:
        """The checks as a markdown table: what the experiment needs, and whether it held."""
        return markdown_table(["check", "holds"], [[self.check_text[k], "yes" if v else "**no**"] for k, v in self.checks.items()])

    def paper_vs_run(self, quantity: str, paper: str, source: str, run: float, fmt: str = "{:.1f}") -> None:
        """Add a row: the paper's figure (quoted, with its source) beside this run's computed value."""
        tol = self.tolerance(quantity)
        self.rows.append(PaperRow(quantity, paper, source, fmt.format(run), float(run), asdict(tol)))

    def table_markdown(self) -> str:
        """The "paper vs. this run" table as markdown."""
        return markdown_table(["quantity", "paper", "source", "this run"],
                              [[r.quantity, r.paper, r.source, r.run] for r in self.rows])

    def assert_checks(self) -> None:
        """Raise AssertionError naming every check that does not hold.

        Findings are never asserted: a claim of the paper that does not reproduce is a result.
        """
        failed = [self.check_text[k] for k, v in self.checks.items() if not v]
        if failed and self.smoke:  # a smoke run tests the code path; its tiny settings need not meet the checks
            print(f"smoke run: {len(failed)} check(s) not enforced: " + "; ".join(failed))
        elif failed:
            raise AssertionError("checks that do not hold in this run: " + "; ".join(failed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "profile": self.profile,
            "seed": self.seed,
            **({"smoke": True} if self.smoke else {}),
            "device": describe(self.device),
            "versions": versions(),
            "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "metrics": self.metrics,
            "tolerances": {k: asdict(t) for k, t in self.metric_tol.items()},
            "timings": self.timings,
            **({"checks": self.checks, "check_text": self.check_text,
                "findings": [asdict(f) | ({"tolerance": asdict(self.finding_tol[f.id])} if f.id in self.finding_tol else {})
                             for f in self.findings],
                "scorecard": scorecard([asdict(f) for f in self.findings])} if self.findings or self.checks else {}),
            "margins": self.margins,
            "paper_vs_run": [asdict(r) for r in self.rows],
        }

    def _target(self) -> Path | None:
        target = os.environ.get("GENLENS_RESULTS_PATH")
        if not target and os.environ.get("GENLENS_RESULTS_DIR"):
            target = str(results_path(os.environ["GENLENS_RESULTS_DIR"], self.profile, self.chapter, checkout=False))
        return Path(target) if target else None

    def save(self) -> Path | None:
        """Write the report to $GENLENS_RESULTS_PATH (set by the runner) or, where validation asked for it,
        to $GENLENS_RESULTS_DIR/<profile>/<chapter>.json; return the path (None: nothing written)."""
        target = self._target()
        if target is None:
            return None
        atomic_write_json(target, self.to_dict())
        return target

    def save_beside(self, filename: str, text: str) -> Path | None:
        """Write a table the run produced (e.g. zoo.csv) atomically beside the results JSON (`runner.side_path`:
        while the runner runs the chapter, at a partial name it moves into place only if the chapter succeeds);
        None where the run saves no results (a notebook opened by hand)."""
        target = self._target()
        if target is None:
            return None
        path = side_path(target, filename)
        atomic_write_bytes(path, text.encode())
        return path


def load_results(path: str | Path) -> dict[str, Any] | None:
    """A results JSON, or None if the file is absent."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def recorded_results(chapter: str, profile: str) -> dict[str, Any] | None:
    """The committed results of `chapter` in `profile` (`runner.results_path`), if any (None outside a checkout)."""
    try:
        root = repo_root()
    except RunError:
        return None
    return load_results(results_path(root, profile, chapter))


def beside_recorded(report: Report, recorded: dict[str, Any] | None) -> str:
    """The paper-vs-run table with a column for a recorded run of another profile (e.g. `full` on a GPU)."""
    if not recorded:
        return "No run of this profile has been recorded yet."
    other = {row["quantity"]: row["run"] for row in recorded.get("paper_vs_run", [])}
    from ..core.data import display_name

    dataset = recorded.get("params", {}).get("dataset") or ""
    on = f"{display_name(dataset)}, " if dataset else ""
    label = f"{recorded['profile']} ({on}{recorded['device']}, {recorded['date']})"
    return markdown_table(["quantity", "paper", "source", f"this run ({report.profile})", label],
                          [[r.quantity, r.paper, r.source, r.run, other.get(r.quantity, "-")] for r in report.rows])
