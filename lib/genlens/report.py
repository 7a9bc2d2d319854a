"""What a chapter records about its run: metrics, claims, and the "paper vs. this run" table.

A chapter builds one `Report`, adds metrics and claims computed by the run, quotes the paper's
figures with their source, and calls `save()` at the end. When the runner executes the chapter it
sets ``GENLENS_RESULTS_PATH`` and `save()` writes there; otherwise (a reader's own kernel, nbval)
nothing is written.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .cache import atomic_write_json
from .device import describe, peak_rss_mb


def versions() -> dict[str, str]:
    """Versions of python, torch and genlens (and torchvision if importable)."""
    from . import __version__

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


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; cells are formatted with str()."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class PaperRow:
    quantity: str
    paper: str  # the paper's figure as quoted, e.g. "100.0 %"
    source: str  # where in the paper, e.g. "Table 1"
    run: str  # this run's figure, formatted from a computed number


@dataclass
class Report:
    """Metrics (name -> number), claims (name -> bool) and paper-vs-run rows of one chapter run."""

    chapter: str
    profile: str
    seed: int
    device: str
    metrics: dict[str, float] = field(default_factory=dict)
    claims: dict[str, bool] = field(default_factory=dict)
    claim_text: dict[str, str] = field(default_factory=dict)
    rows: list[PaperRow] = field(default_factory=list)

    def metric(self, name: str, value: float) -> float:
        """Record a computed number and return it."""
        value = float(value)
        self.metrics[name] = value
        return value

    def claim(self, name: str, holds: bool, text: str) -> bool:
        """Record whether the claim `text` holds in this run."""
        self.claims[name] = bool(holds)
        self.claim_text[name] = text
        return bool(holds)

    def paper_vs_run(self, quantity: str, paper: str, source: str, run: float, fmt: str = "{:.1f}") -> None:
        """Add a row: the paper's figure (quoted, with its source) beside this run's computed value."""
        self.rows.append(PaperRow(quantity, paper, source, fmt.format(run)))

    def claims_markdown(self) -> str:
        """The claims as a markdown table: claim, and whether it holds in this run."""
        return markdown_table(["claim", "holds in this run"],
                              [[self.claim_text[k], "yes" if v else "**no**"] for k, v in self.claims.items()])

    def table_markdown(self) -> str:
        """The "paper vs. this run" table as markdown."""
        return markdown_table(["quantity", "paper", "source", "this run"],
                              [[r.quantity, r.paper, r.source, r.run] for r in self.rows])

    def failed_claims(self) -> list[str]:
        return [k for k, v in self.claims.items() if not v]

    def check(self) -> None:
        """Raise AssertionError naming every claim that does not hold in this run."""
        failed = self.failed_claims()
        if failed:
            raise AssertionError("claims that do not hold in this run: " + "; ".join(self.claim_text[k] for k in failed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "profile": self.profile,
            "seed": self.seed,
            "device": describe(self.device),
            "versions": versions(),
            "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "metrics": self.metrics,
            "claims": self.claims,
            "claim_text": self.claim_text,
            "paper_vs_run": [vars(r) for r in self.rows],
        }

    def save(self) -> Path | None:
        """Write the report to $GENLENS_RESULTS_PATH if the runner set it; return the path."""
        target = os.environ.get("GENLENS_RESULTS_PATH")
        if not target:
            return None
        atomic_write_json(Path(target), self.to_dict())
        return Path(target)


def load_results(path: str | Path) -> dict[str, Any] | None:
    """A results JSON, or None if the file is absent."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def recorded_results(chapter: str, profile: str) -> dict[str, Any] | None:
    """The committed results of `chapter` in `profile` (book/results/<profile>/<chapter>.json), if any."""
    root = Path(os.environ.get("GENLENS_ROOT") or Path(__file__).resolve().parents[2])
    return load_results(root / "book" / "results" / profile / f"{chapter}.json")


def beside_recorded(report: Report, recorded: dict[str, Any] | None) -> str:
    """The paper-vs-run table with a column for a recorded run of another profile (e.g. `full` on a GPU)."""
    if not recorded:
        return "No run of this profile has been recorded yet."
    other = {row["quantity"]: row["run"] for row in recorded.get("paper_vs_run", [])}
    from .data import display_name

    dataset = recorded.get("params", {}).get("dataset") or ""
    on = f"{display_name(dataset)}, " if dataset else ""
    label = f"{recorded['profile']} ({on}{recorded['device']}, {recorded['date']})"
    return markdown_table(["quantity", "paper", "source", f"this run ({report.profile})", label],
                          [[r.quantity, r.paper, r.source, r.run, other.get(r.quantity, "-")] for r in report.rows])
