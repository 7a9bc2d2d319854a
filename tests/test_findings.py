"""genlens.book.findings and Report's checks and findings: verdicts, intervals, validation, the results page."""
import json

import pytest
import torch

from genlens.book import runner, validate
from genlens.book.findings import Finding, Prediction, bootstrap_interval, mean_interval, scorecard
from genlens.book.report import Report, Tol


@pytest.mark.parametrize("test, interval, verdict", [
    (Prediction(">"), (0.1, 0.3), "reproduced"),
    (Prediction(">"), (-0.1, 0.3), "inconclusive"),
    (Prediction(">"), (-0.3, -0.1), "opposite"),
    (Prediction("<"), (-0.3, -0.1), "reproduced"),
    (Prediction("<"), (0.1, 0.3), "opposite"),
    (Prediction(">", null=1.0), (1.0, 2.0), "inconclusive"),  # touching no effect is not on the paper's side
    (Prediction(">", null=1.0, size=(1.0, 10.0)), (2.0, 12.0), "reproduced"),  # reaches into the paper's size
    (Prediction(">", null=1.0, size=(1.0, 10.0)), (11.0, 30.0), "inconclusive"),  # right side, not the paper's size
])
def test_verdict_follows_from_the_interval_alone(test, interval, verdict):
    assert test.verdict(interval) == verdict


def test_test_rejects_bad_input():
    with pytest.raises(ValueError, match="expect must be"):
        Prediction("=")
    with pytest.raises(ValueError, match="lo <= hi"):
        Prediction(">").verdict((1.0, 0.0))


def test_mean_interval_matches_the_t_formula():
    from scipy import stats

    x = [0.3, 0.5, 0.4, 0.9]
    m, (lo, hi) = mean_interval(x, level=0.9)
    ref = stats.t.interval(0.9, len(x) - 1, loc=sum(x) / 4, scale=stats.sem(x))
    assert m == pytest.approx(0.525) and (lo, hi) == pytest.approx(ref)
    with pytest.raises(ValueError, match="at least 2"):
        mean_interval([1.0])


def test_bootstrap_interval_covers_the_binomial_interval():
    # 1,000 Bernoulli(0.8) items: the bootstrap interval of the mean is the normal one, +/- 1.96 * 0.0126
    x = (torch.rand(1000, generator=torch.Generator().manual_seed(1)) < 0.8).double()
    m, (lo, hi) = bootstrap_interval(x, generator=torch.Generator().manual_seed(0))
    se = (m * (1 - m) / 1000) ** 0.5
    assert lo == pytest.approx(m - 1.96 * se, abs=0.004) and hi == pytest.approx(m + 1.96 * se, abs=0.004)


def toy(lo: float = 0.02, hi: float = 0.08, holds: bool = True) -> Report:
    report = Report("toy", "quick", 0, "cpu", tolerances={"gap": Tol(abs=0.01), "acc": Tol(abs=0.01)})
    report.check("fitted", holds, "every training image fitted")
    report.finding("gap", "Regularizers help", "Table 1", quantity="test accuracy gain (fraction)", paper="+0.04",
                   test=Prediction(">"), run=(lo + hi) / 2, interval=(lo, hi), spread_over="3 seeds")
    report.not_tested("imagenet", "It also holds on ImageNet", "Section 4", quantity="top-1 gain", paper="+1.2",
                      reason="needs ImageNet")
    return report


def test_report_records_checks_and_findings():
    report = toy()
    d = json.loads(json.dumps(report.to_dict()))
    assert d["checks"] == {"fitted": True}
    assert [f["verdict"] for f in d["findings"]] == ["reproduced", "not tested"]
    assert d["findings"][0]["interval"] == [0.02, 0.08] and d["findings"][0]["spread_over"] == "3 seeds"
    assert d["scorecard"] == {"reproduced": 1, "inconclusive": 0, "opposite": 0, "not tested": 1}
    assert Finding.from_dict(d["findings"][0]) == report.findings[0]
    assert "**reproduced**" in report.findings_markdown() and "needs ImageNet" in report.findings_markdown()
    report.assert_checks()


def test_a_failing_check_fails_the_run_and_a_finding_never_does():
    toy(lo=-0.08, hi=-0.02).assert_checks()  # an opposite finding is a result, not a failure
    with pytest.raises(AssertionError, match="every training image fitted"):
        toy(holds=False).assert_checks()


def test_finding_needs_a_tolerance_source_and_unique_id():
    report = toy()
    with pytest.raises(ValueError, match="no tolerance stated"):
        report.finding("other", "x", "Fig. 1", quantity="q", paper="p", test=Prediction(">"), run=1, interval=(0, 2),
                       spread_over="seeds")
    with pytest.raises(ValueError, match="recorded twice"):
        report.not_tested("imagenet", "x", "Fig. 1", quantity="q", paper="p", reason="r")
    with pytest.raises(ValueError, match="source"):
        report.not_tested("acc", "x", "", quantity="q", paper="p", reason="r")
    with pytest.raises(ValueError, match="reason"):
        report.not_tested("acc", "x", "Fig. 1", quantity="q", paper="p", reason="")


def test_borderline_when_an_interval_end_is_within_tolerance_of_no_effect():
    assert not toy(0.02, 0.08).findings[0].borderline
    assert toy(0.005, 0.08).findings[0].borderline


def results(report: Report) -> dict:
    return json.loads(json.dumps(report.to_dict()))


def test_validation_compares_verdicts_estimates_and_checks():
    assert validate.compare(results(toy()), results(toy(0.025, 0.085))) == []
    problems = validate.compare(results(toy()), results(toy(-0.08, -0.02)))
    assert any("opposite re-executed vs reproduced committed" in p for p in problems)
    assert any("interval low end" in p for p in problems)
    # a verdict may change where the interval touched no effect within tolerance in either run
    assert validate.compare(results(toy(0.005, 0.03)), results(toy(-0.003, 0.03))) == []
    assert any("check 'fitted'" in p for p in validate.compare(results(toy()), results(toy(holds=False))))


def test_results_page_shows_the_scorecard(tmp_path):
    for chapter, report in {"rethinking": toy(), "hessian": toy(-0.08, -0.02)}.items():
        d = results(report) | {"chapter": chapter, "wall_s": 10.0}
        path = runner.results_path(tmp_path, "quick", chapter)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d))
    (tmp_path / "book").mkdir(exist_ok=True)
    page = runner.write_results_page(tmp_path).read_text()
    assert "| rethinking | 1 | 0 | 0 | 1 | 1/1 checks |" in page
    assert "| hessian | 0 | 0 | 1 | 1 |" in page
    assert "| **whole book** | **1** | **0** | **1** | **2** |" in page
    assert "not tested: needs ImageNet" in page


def test_scorecard_counts_every_verdict():
    assert scorecard([]) == {"reproduced": 0, "inconclusive": 0, "opposite": 0, "not tested": 0}
