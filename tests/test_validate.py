"""genlens.book.report tolerances, checks and borderline outcomes, and genlens.book.validate: what must agree between runs."""
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
    report.check("big_enough", acc >= 0.5, "accuracy above one half")
    report.check("seven", count == 7, "seven of them")
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


def test_a_failing_check_fails_the_run():
    report = make_report()
    report.assert_checks()
    assert "| seven of them | yes |" in report.checks_markdown()
    with pytest.raises(ValueError, match="recorded twice"):
        report.check("seven", True, "again")
    failing = make_report(count=8)
    assert "| seven of them | **no** |" in failing.checks_markdown()
    with pytest.raises(AssertionError, match="seven of them"):
        failing.assert_checks()


def test_table_cells_escape_pipes():
    table = markdown_table(["check"], [["|lambda_min/lambda_max| is small"]])
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


def test_compare_rejects_a_flipped_check():
    committed, rerun = results(make_report()), results(make_report())
    committed["checks"]["seven"] = False
    assert validate.compare(committed, rerun) == ["check 'seven': holds re-executed but fails committed"]


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
    assert "toy: 4 figures within tolerance, 2 outcomes identical (0 borderline)" in capsys.readouterr().out
    wrong = copy.deepcopy(results(make_report()))
    wrong["checks"]["seven"] = False
    (rerun / "toy.json").write_text(json.dumps(wrong))
    assert cli.main(["validate", str(rerun)]) == 1


def test_save_writes_to_the_validation_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GENLENS_RESULTS_PATH", raising=False)
    monkeypatch.setenv("GENLENS_RESULTS_DIR", str(tmp_path))
    path = make_report().save()
    assert path == tmp_path / "quick" / "toy.json" and json.loads(path.read_text())["metrics"]["count"] == 7


def test_outcomes_are_exact_unless_borderline():
    def run(winner: float, margin: float) -> dict:
        report = make_report()
        report.outcome("best_radius", winner, margin=margin, tol=0.02)
        return results(report)

    assert validate.compare(run(4, 0.10), run(4, 0.09)) == []
    assert validate.compare(run(4, 0.10), run(8, 0.10)) == [
        f"metric 'best_radius': 8 re-executed vs 4 committed, outside exact ({EXACT.why})"]
    assert validate.compare(run(4, 0.01), run(8, 0.03)) == []  # borderline in the committed run
