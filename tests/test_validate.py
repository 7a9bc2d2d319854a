"""genlens.book.report tolerances and borderline claims, and genlens.book.validate: what must agree between runs."""
import copy
import json
import math

import pytest

from genlens.book import cli, validate
from genlens.book.report import EXACT, Report, Tol, markdown_table


def make_report(acc: float = 0.90, count: int = 7, gap: float = 0.05) -> Report:
    report = Report("toy", "quick", 0, "cpu", tolerances={  # the first matching pattern applies
        "accuracy (%)": Tol(abs=3), "acc*": Tol(abs=0.03, why="3 binomial s.e."), "count": EXACT, "gap": Tol(abs=0.02)})
    report.metric("acc_test", acc)
    report.metric("count", count)
    report.metric("gap", gap)
    report.claim("big_enough", acc >= 0.5, "accuracy above one half", margin=acc - 0.5, tol=0.03)
    report.claim("gap_positive", gap > 0, "the gap is positive", margin=gap, tol=0.02)
    report.claim("seven", count == 7, "seven of them")
    report.paper_vs_run("accuracy (%)", "91", "Table 1", 100 * acc)
    return report


def test_tol_allows():
    t = Tol(abs=0.03)
    assert t.allows(0.90, 0.93) and t.allows(0.93, 0.90) and not t.allows(0.90, 0.931)
    assert Tol(rel=0.1).allows(100, 109) and not Tol(rel=0.1).allows(100, 112)
    assert EXACT.allows(7, 7) and not EXACT.allows(7, 8)
    assert EXACT.allows(math.nan, math.nan) and not Tol(abs=1).allows(math.nan, 0.0)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        Tol(abs=-1)


def test_every_figure_needs_a_stated_tolerance():
    report = Report("toy", "quick", 0, "cpu", tolerances={"acc*": Tol(abs=0.03)})
    report.metric("acc_train", 1.0)
    with pytest.raises(ValueError, match="no tolerance stated for the figure 'loss'"):
        report.metric("loss", 0.1)
    with pytest.raises(ValueError, match="no tolerance stated"):
        report.paper_vs_run("loss (nats)", "0.1", "Fig. 1", 0.2)


def test_claim_margin_sign_and_borderline():
    report = make_report()
    with pytest.raises(ValueError, match="wrong sign"):
        report.claim("bad", True, "x", margin=-0.1, tol=0.01)
    with pytest.raises(ValueError, match="needs its tolerance"):
        report.claim("bad", True, "x", margin=0.1)
    assert not report.borderline("big_enough") and not report.borderline("gap_positive")  # margin 0.05 > 0.02
    report.claim("gap_positive", False, "the gap is positive", margin=-0.01, tol=0.02)
    assert report.borderline("gap_positive") and report.failed_claims() == []
    report.assert_checks()  # a borderline miss does not fail the run...
    assert "borderline (no" in report.claims_markdown()  # ...and is shown as such
    report.claim("seven", False, "seven of them")
    with pytest.raises(AssertionError, match="seven of them"):
        report.assert_checks()


def test_borderline_is_decided_by_the_margin_against_its_tolerance():
    assert not make_report(gap=0.05).borderline("gap_positive")
    assert make_report(gap=0.015).borderline("gap_positive")


def test_table_cells_escape_pipes():
    table = markdown_table(["claim"], [["|lambda_min/lambda_max| is small"]])
    assert table.splitlines()[2] == "| \\|lambda_min/lambda_max\\| is small |"


def results(report: Report) -> dict:
    return json.loads(json.dumps(report.to_dict()))


def test_compare_accepts_drift_within_tolerance():
    committed, rerun = results(make_report(acc=0.90)), results(make_report(acc=0.92))
    assert validate.compare(committed, rerun) == []


def test_compare_rejects_a_figure_outside_its_tolerance():
    committed, rerun = results(make_report(acc=0.90)), results(make_report(acc=0.95))
    problems = validate.compare(committed, rerun)
    assert any("metric 'acc_test'" in p and "outside +/- 0.03" in p for p in problems), problems
    assert any("paper vs. run 'accuracy (%)'" in p for p in problems), problems


def test_compare_rejects_a_deliberately_wrong_committed_figure():
    committed, rerun = results(make_report()), results(make_report())
    committed["metrics"]["count"] = 8
    assert validate.compare(committed, rerun) == ["metric 'count': 7 re-executed vs 8 committed, outside exact "
                                                  f"({EXACT.why})"]


def test_compare_rejects_a_flipped_outcome_but_not_a_borderline_one():
    committed, rerun = results(make_report()), results(make_report())
    committed["claims"]["seven"] = False
    assert validate.compare(committed, rerun) == [
        "claim 'seven': holds re-executed but fails committed (not borderline in either run)"]
    # the gap claim flips between runs, but its margin lies within the tolerance in one of them: allowed
    committed, rerun = results(make_report(gap=0.01)), results(make_report(gap=-0.005))
    assert validate.compare(committed, rerun) == []
    # a flip far outside the tolerance is caught twice: the figure and the outcome
    committed, rerun = results(make_report(gap=0.1)), results(make_report(gap=-0.1))
    problems = validate.compare(committed, rerun)
    assert any(p.startswith("metric 'gap'") for p in problems) and any(p.startswith("claim 'gap_positive'") for p in problems)


def test_compare_rejects_missing_or_new_figures_and_changed_tolerances():
    committed, rerun = results(make_report()), results(make_report())
    del rerun["metrics"]["count"]
    rerun["metrics"]["new"] = 1.0
    rerun["tolerances"]["acc_test"] = {"abs": 0.5, "rel": 0.0, "why": ""}
    problems = validate.compare(committed, rerun)
    assert "metric: 'count' committed but not re-executed" in problems
    assert "metric: 'new' re-executed but not committed" in problems
    assert "metric 'acc_test': its tolerance changed since the committed run" in problems


def test_validate_command(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("")
    committed = root / "book" / "results" / "quick"
    committed.mkdir(parents=True)
    (committed / "toy.json").write_text(json.dumps(results(make_report())))
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    monkeypatch.setenv("GENLENS_ROOT", str(root))
    assert cli.main(["validate", str(rerun)]) == 1
    assert "did not run to its end" in capsys.readouterr().out
    (rerun / "toy.json").write_text(json.dumps(results(make_report(acc=0.91))))
    assert cli.main(["validate", str(rerun)]) == 0
    assert "toy: 4 figures within tolerance, 3 outcomes identical (0 borderline)" in capsys.readouterr().out
    wrong = copy.deepcopy(results(make_report()))
    wrong["claims"]["seven"] = False
    (rerun / "toy.json").write_text(json.dumps(wrong))
    assert cli.main(["validate", str(rerun)]) == 1


def test_save_writes_to_the_validation_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GENLENS_RESULTS_PATH", raising=False)
    monkeypatch.setenv("GENLENS_RESULTS_DIR", str(tmp_path))
    path = make_report().save()
    assert path == tmp_path / "quick" / "toy.json" and json.loads(path.read_text())["metrics"]["count"] == 7


def test_margin_from_recorded_figures():
    report = make_report(acc=0.90, gap=0.05)
    assert report.margin(("acc_test", ">=", 0.5)) == pytest.approx({"margin": 0.40, "tol": 0.03})
    assert report.margin(("gap", "<", "acc_test")) == pytest.approx({"margin": 0.85, "tol": 0.05})
    # of several comparisons, the one nearest its boundary in units of its tolerance decides
    both = report.margin(("acc_test", ">=", 0.5), ("gap", ">", 0.04))
    assert both == pytest.approx({"margin": 0.01, "tol": 0.02})
    report.claim("both", True, "both", **both)
    assert report.borderline("both")
    with pytest.raises(ValueError, match="not a recorded metric"):
        report.margin(("nothing", ">", 0))
    with pytest.raises(ValueError, match="op must be"):
        report.margin(("gap", "=", 0))


def test_outcomes_are_exact_unless_borderline():
    def run(winner: float, margin: float) -> dict:
        report = make_report()
        report.outcome("best_radius", winner, margin=margin, tol=0.02)
        return results(report)

    assert validate.compare(run(4, 0.10), run(4, 0.09)) == []
    assert validate.compare(run(4, 0.10), run(8, 0.10)) == [
        f"metric 'best_radius': 8 re-executed vs 4 committed, outside exact ({EXACT.why})"]
    assert validate.compare(run(4, 0.01), run(8, 0.03)) == []  # borderline in the committed run
