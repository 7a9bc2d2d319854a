"""Compare a re-executed chapter's results with the committed ones, within each figure's tolerance.

Floating-point summation order differs between processors (vector width, thread count), so a
re-executed chapter never reproduces every digit of the committed one. What must agree:

- outcomes exactly: the same metrics, checks, findings and paper-vs-run rows; every check; every
  finding's verdict and every recorded outcome (an argmax, a winner), except one that was borderline
  (decided within its tolerance) in either run;
- every figure within the tolerance recorded beside it in the committed results (`report.Tol`), a
  finding's estimate and interval ends included.

Times and memory are never compared. `compare` returns one line per disagreement (empty: they agree).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .report import Tol

__all__ = ["compare", "compare_dirs", "summary"]


def _tol(recorded: dict[str, Any] | None) -> Tol | None:
    return Tol(**recorded) if recorded is not None else None


def _figure(where: str, a: float, b: float, tol: Tol | None) -> list[str]:
    if tol is None:
        return [f"{where}: no tolerance recorded in the committed results"]
    if tol.allows(a, b):
        return []
    return [f"{where}: {b:.6g} re-executed vs {a:.6g} committed, outside {tol.describe()} ({tol.why or 'no reason given'})"]


def _same_keys(where: str, committed: dict, rerun: dict) -> list[str]:
    missing, extra = sorted(set(committed) - set(rerun)), sorted(set(rerun) - set(committed))
    out = [f"{where}: {k!r} committed but not re-executed" for k in missing]
    return out + [f"{where}: {k!r} re-executed but not committed" for k in extra]


def compare(committed: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """Disagreements between the committed results of a chapter and a re-executed run of it, one line each."""
    problems: list[str] = []
    for key in ("chapter", "profile", "seed"):
        if committed.get(key) != rerun.get(key):
            problems.append(f"{key}: {rerun.get(key)!r} re-executed vs {committed.get(key)!r} committed")
    tols = committed.get("tolerances", {})
    cm, rm = committed.get("metrics", {}), rerun.get("metrics", {})
    problems += _same_keys("metric", cm, rm)
    for name in cm.keys() & rm.keys():
        if rerun.get("tolerances", {}).get(name) != tols.get(name):
            problems.append(f"metric {name!r}: its tolerance changed since the committed run")
        borderline = any(r.get("margins", {}).get(name, {}).get("borderline", False) for r in (committed, rerun))
        if not borderline:
            problems += _figure(f"metric {name!r}", cm[name], rm[name], _tol(tols.get(name)))
    cc, rc = committed.get("checks", {}), rerun.get("checks", {})
    problems += _same_keys("check", cc, rc)
    problems += [f"check {k!r}: {'holds' if rc[k] else 'fails'} re-executed but {'holds' if cc[k] else 'fails'} committed"
                 for k in cc.keys() & rc.keys() if cc[k] != rc[k]]
    problems += _findings(committed.get("findings", []), rerun.get("findings", []))
    crows, rrows = committed.get("paper_vs_run", []), rerun.get("paper_vs_run", [])
    if [(r["quantity"], r["paper"], r["source"]) for r in crows] != [(r["quantity"], r["paper"], r["source"]) for r in rrows]:
        problems.append("paper vs. run: the rows (quantity, paper, source) differ from the committed ones")
    else:
        for c, r in zip(crows, rrows):
            if "value" not in c:
                problems.append(f"paper vs. run {c['quantity']!r}: no value recorded in the committed results")
            else:
                problems += _figure(f"paper vs. run {c['quantity']!r}", c["value"], r["value"], _tol(c.get("tolerance")))
    return problems


def _findings(committed: list[dict[str, Any]], rerun: list[dict[str, Any]]) -> list[str]:
    """Findings: the same ids in the same order; verdicts equal unless borderline; estimates within tolerance."""
    if [f["id"] for f in committed] != [f["id"] for f in rerun]:
        return ["findings: the ids differ from the committed ones"]
    problems: list[str] = []
    for c, r in zip(committed, rerun):
        where = f"finding {c['id']!r}"
        if (c["statement"], c["source"], c["test"]) != (r["statement"], r["source"], r["test"]):
            problems.append(f"{where}: its statement, source or test changed since the committed run")
            continue
        if c["verdict"] != r["verdict"] and not (c.get("borderline") or r.get("borderline")):
            problems.append(f"{where}: {r['verdict']} re-executed vs {c['verdict']} committed (not borderline in either run)")
        if c["interval"] is None or r["interval"] is None:
            if c["interval"] != r["interval"]:
                problems.append(f"{where}: tested in one run and not in the other")
            continue
        tol = _tol(c.get("tolerance"))
        problems += _figure(f"{where} estimate", c["run"], r["run"], tol)
        for end, a, b in zip(("low", "high"), c["interval"], r["interval"]):
            problems += _figure(f"{where} interval {end} end", a, b, tol)
    return problems


def compare_dirs(committed_dir: str | Path, rerun_dir: str | Path) -> dict[str, list[str]]:
    """Compare every committed `<chapter>.json` of `committed_dir` with the same file in `rerun_dir`.

    Returns chapter -> disagreements; a chapter with no re-executed results is one disagreement.
    """
    out: dict[str, list[str]] = {}
    for path in sorted(Path(committed_dir).glob("*.json")):
        rerun = Path(rerun_dir) / path.name
        if not rerun.exists():
            out[path.stem] = [f"no re-executed results ({rerun}): the chapter did not run to its end"]
            continue
        out[path.stem] = compare(json.loads(path.read_text()), json.loads(rerun.read_text()))
    return out


def summary(committed: dict[str, Any]) -> str:
    """What a passing comparison checked: '<n> figures within tolerance, <m> outcomes identical (<b> borderline)'."""
    findings = committed.get("findings", [])
    n = len(committed.get("metrics", {})) + len(committed.get("paper_vs_run", [])) + 3 * len(findings)
    outcomes = len(committed.get("checks", {})) + len(findings)
    borderline = sum(bool(m.get("borderline")) for m in committed.get("margins", {}).values())
    borderline += sum(bool(f.get("borderline")) for f in findings)
    return f"{n} figures within tolerance, {outcomes} outcomes identical ({borderline} borderline)"
