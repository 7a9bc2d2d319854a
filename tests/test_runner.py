"""genlens.book.runner and the `genlens` command, against a tiny fake checkout built in a temporary folder.

Three real papermill executions in all: one good quick run (shared), one failing run and one `full`
run, each of the last two on its own copy of the executed checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import genlens
from genlens.book import runner
from genlens.book.report import EXACT
from genlens.book.runner import Param, RunError

ALL_IDS = list(runner.CHAPTERS)  # the command must name every registered chapter, in book order

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A fake chapter

"""

PARAMETERS_CELL = """\
```{code-cell} ipython3
:tags: [parameters]

profile = "quick"  # one of: quick, full
seed = 0
device = "auto"  # one of: auto, cpu, cuda, mps
n = 3
scale = 0.5
flag = False
name = "x"
```

"""

BODY = """\
```{code-cell} ipython3
from genlens.core.device import pick_device
from genlens.book.report import EXACT, Report

report = Report("rethinking", profile, seed, str(pick_device(device)), tolerances={"product": EXACT})
product = report.metric("product", n * scale)
report.check("positive", product > 0, "n times scale is positive")
report.paper_vs_run("product", "1.5", "Table 0", product)
print(f"{name}:{flag}")
```

"""

FAILING = """\
```{code-cell} ipython3
raise ValueError("boom\\nsecond line of the message")
```

"""

SAVE = """\
```{code-cell} ipython3
report.save()
```
"""

SIDE = """\
```{code-cell} ipython3
print("side file:", report.save_beside("rethinking.csv", f"n,{n}\\n"))
```

"""

GOOD_SOURCE = HEADER + PARAMETERS_CELL + BODY + SAVE
FAILING_SOURCE = HEADER + PARAMETERS_CELL + BODY + FAILING + SAVE


def make_repo(root: Path, source: str = GOOD_SOURCE) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("title: fake\n")
    (root / "notebooks" / "rethinking.md").write_text(source)
    return root


def one_line(err: BaseException) -> str:
    message = str(err)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"error message is not one line: {message!r}"
    return message


def quiet(*_args: object) -> None:
    pass


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A fake checkout after one good quick run with n=4, flag=true, name='hi there'."""
    root = make_repo(tmp_path_factory.mktemp("executed") / "repo")
    before = os.environ.get("GENLENS_RESULTS_PATH")
    results = runner.run("rethinking", "quick", {"n": "4", "flag": "true", "name": "hi there"}, root=root, log=quiet)
    assert os.environ.get("GENLENS_RESULTS_PATH") == before, "run() leaked GENLENS_RESULTS_PATH"
    return root, results


def copy_of(executed_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(executed_root, root)
    return root


# --------------------------------------------------------------------------- parameters

def test_read_parameters_names_defaults_choices(repo: Path) -> None:
    params = runner.read_parameters(repo / "notebooks" / "rethinking.md")
    assert list(params) == ["profile", "seed", "device", "n", "scale", "flag", "name"]
    assert params["profile"] == Param("profile", "quick", ("quick", "full"))
    assert params["device"] == Param("device", "auto", ("auto", "cpu", "cuda", "mps"))
    assert params["seed"] == Param("seed", 0, None)
    assert params["n"] == Param("n", 3, None)
    assert params["scale"] == Param("scale", 0.5, None)
    assert params["flag"] == Param("flag", False, None)
    assert params["name"] == Param("name", "x", None)


def test_resolve_parameters_defaults(repo: Path) -> None:
    values = runner.resolve_parameters("rethinking", "quick", {}, repo)
    assert values == {"profile": "quick", "seed": 0, "device": "auto", "n": 3, "scale": 0.5,
                      "flag": False, "name": "x"}


def test_resolve_parameters_converts_each_type(repo: Path) -> None:
    values = runner.resolve_parameters(
        "rethinking", "full",
        {"n": "7", "scale": "1e-3", "flag": "true", "name": "hello world", "device": "cpu", "seed": "12"}, repo)
    assert values == {"profile": "full", "seed": 12, "device": "cpu", "n": 7, "scale": 0.001,
                      "flag": True, "name": "hello world"}
    assert type(values["n"]) is int and type(values["seed"]) is int
    assert type(values["scale"]) is float and type(values["flag"]) is bool
    # an integer given for a float parameter is a float; 0/False spellings of a bool are False
    values = runner.resolve_parameters("rethinking", "quick", {"scale": "2", "flag": "0"}, repo)
    assert type(values["scale"]) is float and values["scale"] == 2.0
    assert values["flag"] is False
    values = runner.resolve_parameters("rethinking", "quick", {"flag": "False", "profile": "quick"}, repo)
    assert values["flag"] is False and values["profile"] == "quick"


@pytest.mark.parametrize("chapter, profile, overrides, expected", [
    pytest.param("nosuch", "quick", {}, ["'nosuch'", *ALL_IDS], id="unknown-chapter"),
    pytest.param("landscape", "quick", {}, ["'landscape'", "notebooks/landscape.md"], id="chapter-not-written"),
    pytest.param("rethinking", "quick", {"bogus": "1"}, ["'bogus'", "rethinking"], id="unknown-parameter"),
    pytest.param("rethinking", "quick", {"n": "abc"}, ["'n'", "int", "'abc'"], id="not-an-int"),
    pytest.param("rethinking", "quick", {"n": "3.5"}, ["'n'", "int", "'3.5'"], id="float-for-int"),
    pytest.param("rethinking", "quick", {"scale": "big"}, ["'scale'", "float", "'big'"], id="not-a-float"),
    pytest.param("rethinking", "quick", {"flag": "maybe"}, ["'flag'", "bool", "'maybe'"], id="not-a-bool"),
    pytest.param("rethinking", "quick", {"device": "tpu"}, ["'device'", "tpu", "auto, cpu, cuda, mps"],
                 id="bad-choice"),
    pytest.param("rethinking", "huge", {}, ["'huge'", "quick", "full"], id="bad-profile"),
    pytest.param("rethinking", "quick", {"profile": "full"}, ["--profile"], id="profile-conflict"),
])
def test_resolve_parameters_errors(repo: Path, chapter: str, profile: str, overrides: dict, expected: list) -> None:
    with pytest.raises(RunError) as info:
        runner.resolve_parameters(chapter, profile, overrides, repo)
    message = one_line(info.value)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


@pytest.mark.parametrize("pairs", [["n3"], ["n=3", "scale"], ["=3"]])
def test_parse_pairs_rejects_malformed(pairs: list[str]) -> None:
    with pytest.raises(RunError) as info:
        runner.parse_pairs(pairs)
    message = one_line(info.value)
    assert "name=value" in message
    bad = next(p for p in pairs if "=" not in p or p.startswith("="))
    assert repr(bad) in message


def test_parse_pairs() -> None:
    assert runner.parse_pairs([]) == {}
    assert runner.parse_pairs(["n=3", " name = a=b ", "name2="]) == {"n": "3", "name": "a=b", "name2": ""}


@pytest.mark.parametrize("edit, expected", [
    pytest.param(lambda s: s.replace('seed = 0\n', ''), "'seed'", id="missing-seed"),
    pytest.param(lambda s: s.replace(':tags: [parameters]\n', ''), "parameters", id="no-parameters-cell"),
    pytest.param(lambda s: s.replace('n = 3\n', 'n = 3\nprint(n)\n'), "simple assignments", id="not-an-assignment"),
])
def test_malformed_parameters_cell(repo: Path, edit, expected: str) -> None:
    source = repo / "notebooks" / "rethinking.md"
    source.write_text(edit(source.read_text()))
    with pytest.raises(RunError) as info:
        runner.resolve_parameters("rethinking", "quick", {}, repo)
    assert expected in one_line(info.value)


def test_run_validates_before_executing(repo: Path) -> None:
    with pytest.raises(RunError, match="'n'"):
        runner.run("rethinking", "quick", {"n": "abc"}, root=repo, log=quiet)
    assert not (repo / "book").exists(), "run() wrote files for a request it rejected"


# --------------------------------------------------------------------------- the command

def genlens_cmd(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENLENS_ROOT": str(root)}
    env.pop("GENLENS_RESULTS_PATH", None)
    return subprocess.run([sys.executable, "-m", "genlens", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=root)


@pytest.mark.parametrize("args, expected", [
    pytest.param(["run", "nosuch"], "'nosuch'", id="unknown-chapter"),
    pytest.param(["run", "rethinking", "-p", "bogus=1"], "'bogus'", id="unknown-parameter"),
    pytest.param(["run", "rethinking", "-p", "n3"], "'n3'", id="malformed-pair"),
])
def test_cli_errors_are_one_line(repo: Path, args: list[str], expected: str) -> None:
    proc = genlens_cmd(repo, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{proc.stderr}"
    assert lines[0].startswith("genlens: error:") and expected in lines[0]
    assert proc.stdout == ""
    assert not (repo / "book").exists()


def test_cli_list(repo: Path) -> None:
    proc = genlens_cmd(repo, "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ALL_IDS
    assert "not written yet" not in lines[0]
    assert all("not written yet" in line for line in lines[1:])


# --------------------------------------------------------------------------- executing a chapter

def test_run_writes_notebook_results_and_page(executed: tuple[Path, dict]) -> None:
    root, results = executed
    notebook_path = root / "book" / "chapters" / "rethinking.ipynb"
    results_path = root / "book" / "results" / "quick" / "rethinking.json"

    nb = nbformat.read(notebook_path, as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata, cell.metadata
    tagged = {t: [c for c in nb.cells if t in c.metadata.get("tags", [])] for t in ("parameters", "injected-parameters")}
    assert len(tagged["parameters"]) == 1 and len(tagged["injected-parameters"]) == 1
    for cells in tagged.values():
        assert "hide-cell" in cells[0].metadata["tags"]
    assert "n = 4" in tagged["injected-parameters"][0].source
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "hi there:True" in printed

    on_disk = json.loads(results_path.read_text())
    assert on_disk == results
    required = {"chapter", "profile", "params", "seed", "device", "versions", "wall_s", "peak_rss_mb",
                "metrics", "checks", "paper_vs_run"}
    assert required <= set(on_disk), required - set(on_disk)
    assert on_disk["chapter"] == "rethinking" and on_disk["profile"] == "quick"
    assert on_disk["params"] == {"profile": "quick", "seed": 0, "device": "auto", "n": 4, "scale": 0.5,
                                 "flag": True, "name": "hi there"}
    assert on_disk["seed"] == 0
    assert on_disk["device"].startswith("cpu")
    import torch

    assert on_disk["versions"]["genlens"] == genlens.__version__
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["versions"]["python"].count(".") == 2
    assert isinstance(on_disk["wall_s"], (int, float)) and on_disk["wall_s"] >= 0
    assert on_disk["peak_rss_mb"] > 0
    assert on_disk["metrics"] == {"product": 2.0}  # n * scale = 4 * 0.5
    assert on_disk["checks"] == {"positive": True}
    assert on_disk["tolerances"] == {"product": {"abs": 0.0, "rel": 0.0, "why": EXACT.why}}
    assert on_disk["paper_vs_run"] == [{"quantity": "product", "paper": "1.5", "source": "Table 0", "run": "2.0",
                                        "value": 2.0, "tolerance": {"abs": 0.0, "rel": 0.0, "why": EXACT.why}}]

    page = (root / "book" / "results.md").read_text()
    quick = page.split("## Profile `quick`")[1].split("## Profile `full`")[0]
    assert "| rethinking | 0 | 0 | 0 | 0 | 1/1 checks |" in quick
    assert "n times scale is positive" in quick
    assert "No chapter has been run in this profile yet." in page.split("## Profile `full`")[1]

    # nothing temporary is left behind
    leftovers = [p.name for p in (root / "book").rglob("*") if p.name.startswith(".") or ".failed." in p.name]
    assert leftovers == []


def test_failing_chapter_keeps_previous_outputs(executed: tuple[Path, dict], tmp_path: Path) -> None:
    root = copy_of(executed[0], tmp_path)
    kept = [root / "book" / "chapters" / "rethinking.ipynb", root / "book" / "results" / "quick" / "rethinking.json",
            root / "book" / "results.md"]
    before = {p: p.read_bytes() for p in kept}
    (root / "notebooks" / "rethinking.md").write_text(FAILING_SOURCE)

    with pytest.raises(RunError) as info:
        runner.run("rethinking", "quick", root=root, log=quiet)
    message = one_line(info.value)
    failed = root / "book" / "chapters" / "rethinking.failed.ipynb"
    assert failed.exists()
    assert "'rethinking'" in message and str(failed) in message
    assert "ValueError" in message and "boom" in message

    nb = nbformat.read(failed, as_version=4)
    errored = [c for c in nb.cells if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert len(errored) == 1 and "raise ValueError" in errored[0].source
    assert f"cell {errored[0].execution_count}" in message
    # the cells before the failure ran and their outputs are in the partial notebook
    assert any("x:False" in o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)

    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed after a failed run"
    assert not [p.name for p in (root / "book").rglob(".*")], "temporary files left behind"


def test_a_side_file_replaces_the_recorded_one_only_when_the_chapter_succeeds(executed: tuple[Path, dict],
                                                                            tmp_path: Path) -> None:
    root = copy_of(executed[0], tmp_path)
    recorded = root / "book" / "results" / "quick" / "rethinking.csv"
    recorded.write_text("the recorded table\n")
    notebook = root / "notebooks" / "rethinking.md"

    notebook.write_text(HEADER + PARAMETERS_CELL + BODY + SIDE + FAILING + SAVE)  # fails after writing its table
    with pytest.raises(RunError, match="boom"):
        runner.run("rethinking", "quick", {"n": "5"}, root=root, log=quiet)
    assert recorded.read_text() == "the recorded table\n", "a failed run replaced the recorded side file"
    assert not [p.name for p in (root / "book").rglob(".*")], "temporary files left behind"
    failed = nbformat.read(root / "book" / "chapters" / "rethinking.failed.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in failed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert ".rethinking.partial.rethinking.csv" in printed  # written, under the partial name

    notebook.write_text(HEADER + PARAMETERS_CELL + BODY + SIDE + SAVE)
    runner.run("rethinking", "quick", {"n": "7"}, root=root, log=quiet)
    assert recorded.read_text() == "n,7\n"
    assert not [p.name for p in (root / "book").rglob(".*")], "temporary files left behind"


def test_save_beside_writes_beside_the_results_outside_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genlens.book.report import Report

    monkeypatch.delenv("GENLENS_RESULTS_PATH", raising=False)
    monkeypatch.delenv("GENLENS_RESULTS_DIR", raising=False)
    assert Report("zoo", "quick", 0, "cpu").save_beside("zoo.csv", "a\n") is None  # a notebook opened by hand
    monkeypatch.setenv("GENLENS_RESULTS_DIR", str(tmp_path))  # validation's folder: no runner, no rename
    assert Report("zoo", "quick", 0, "cpu").save_beside("zoo.csv", "a\n") == tmp_path / "quick" / "zoo.csv"
    assert (tmp_path / "quick" / "zoo.csv").read_text() == "a\n"
    with pytest.raises(ValueError, match="a side file is a plain name"):
        runner.side_path(tmp_path / "zoo.json", "../zoo.csv")


def test_full_profile_writes_beside_its_results(executed: tuple[Path, dict], tmp_path: Path) -> None:
    root = copy_of(executed[0], tmp_path)
    quick_notebook = root / "book" / "chapters" / "rethinking.ipynb"
    quick_results = root / "book" / "results" / "quick" / "rethinking.json"
    before = {p: p.read_bytes() for p in (quick_notebook, quick_results)}

    results = runner.run("rethinking", "full", {"scale": "2"}, root=root, log=quiet)
    full_notebook = root / "book" / "results" / "full" / "rethinking.ipynb"
    full_results = root / "book" / "results" / "full" / "rethinking.json"
    assert full_notebook.exists() and full_results.exists()
    assert json.loads(full_results.read_text()) == results
    assert results["profile"] == "full" and results["params"]["profile"] == "full"
    assert results["metrics"] == {"product": 6.0}  # default n=3 times scale=2
    nb = nbformat.read(full_notebook, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'profile = "full"' in injected[0].source
    for path, data in before.items():
        assert path.read_bytes() == data, f"a full run changed {path}"
    assert sorted(p.name for p in (root / "book" / "chapters").iterdir()) == ["rethinking.ipynb"]
    page = (root / "book" / "results.md").read_text()
    assert "| rethinking |" in page.split("## Profile `full`")[1]


# --------------------------------------------------------------------------- failures without a kernel
# papermill.execute_notebook is replaced by a stand-in that writes a partial notebook and then returns or
# raises, to reach the paths a real kernel reaches only by dying, hanging or being interrupted.

def fake_papermill(monkeypatch: pytest.MonkeyPatch, error: BaseException | None) -> None:
    import papermill

    def execute_notebook(input_path, output_path, **_kwargs):
        nb = nbformat.read(input_path, as_version=4)
        nbformat.write(nb, output_path)
        if error is not None:
            raise error
        return nb

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)


def outputs_of(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (root / "book").rglob("*") if p.is_file()}


@pytest.mark.parametrize("error, expected", [
    pytest.param(None, "did not save its report", id="no-report-saved"),
    pytest.param(RuntimeError("Kernel died\nwhile running cell 3"), "RuntimeError: Kernel died", id="kernel-died"),
])
def test_run_failure_without_a_kernel_is_one_line(executed: tuple[Path, dict], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, error, expected: str) -> None:
    root = copy_of(executed[0], tmp_path)
    before = outputs_of(root)
    fake_papermill(monkeypatch, error)
    with pytest.raises(RunError) as info:
        runner.run("rethinking", "quick", root=root, log=quiet)
    message = one_line(info.value)
    failed = root / "book" / "chapters" / "rethinking.failed.ipynb"
    assert expected in message and "'rethinking'" in message and str(failed) in message
    after = outputs_of(root)
    assert after.pop(failed, None) is not None, "the partial notebook was not kept"
    assert after == before, "a failed run changed or left files under book/"
    assert "GENLENS_RESULTS_PATH" not in os.environ


def test_interrupted_run_keeps_partial_notebook(executed: tuple[Path, dict], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_of(executed[0], tmp_path)
    before = outputs_of(root)
    fake_papermill(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        runner.run("rethinking", "quick", root=root, log=quiet)
    after = outputs_of(root)
    assert after.pop(root / "book" / "chapters" / "rethinking.failed.ipynb", None) is not None
    assert after == before
    assert "GENLENS_RESULTS_PATH" not in os.environ


# --------------------------------------------------------------------------- finding the checkout

def test_repo_root_honours_genlens_root(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENLENS_ROOT", str(repo))
    assert runner.repo_root() == repo
    # a GENLENS_ROOT that is not a checkout is an error, never a silent fall-back to another checkout
    monkeypatch.setenv("GENLENS_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(RunError) as info:
        runner.repo_root()
    assert "GENLENS_ROOT" in one_line(info.value) and "nowhere" in str(info.value)


def test_recorded_results_reads_what_run_wrote(executed: tuple[Path, dict], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from genlens.book.report import recorded_results

    root, results = executed
    monkeypatch.setenv("GENLENS_ROOT", str(root))
    assert recorded_results("rethinking", "quick") == results
    assert recorded_results("rethinking", "full") is None
    monkeypatch.setenv("GENLENS_ROOT", str(tmp_path / "nowhere"))  # not a checkout: nothing recorded, no error
    assert recorded_results("rethinking", "quick") is None


def test_report_save_mirrors_the_committed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` points GENLENS_RESULTS_DIR at a folder that `genlens validate` compares with book/results."""
    from genlens.book.report import Report

    monkeypatch.delenv("GENLENS_RESULTS_PATH", raising=False)
    monkeypatch.setenv("GENLENS_RESULTS_DIR", str(tmp_path))
    written = Report("hfc", "full", 3, "cpu").save()
    assert written == tmp_path / "full" / "hfc.json"
    assert json.loads(written.read_text())["seed"] == 3
    assert runner.output_paths("hfc", "full", Path("repo"))[1] == Path("repo/book/results/full/hfc.json")


def test_beside_recorded_adds_the_other_profile_column():
    from genlens.book.report import Report, Tol, beside_recorded

    report = Report("rethinking", "quick", 0, "cpu", tolerances={"*": Tol(abs=1)})
    report.paper_vs_run("test accuracy (%)", "85.75", "Table 1", 96.44)
    report.paper_vs_run("slowdown (x)", "small", "Fig. 1a", 7.0)
    assert beside_recorded(report, None).startswith("No run")
    recorded = {"profile": "full", "device": "NVIDIA H100", "date": "2026-11-23",
                "paper_vs_run": [{"quantity": "test accuracy (%)", "run": "88.1"}]}
    table = beside_recorded(report, recorded)
    assert "full (NVIDIA H100, 2026-11-23)" in table.splitlines()[0]
    assert "| test accuracy (%) | 85.75 | Table 1 | 96.4 | 88.1 |" in table
    assert "| slowdown (x) | small | Fig. 1a | 7.0 | - |" in table


def test_beside_recorded_names_a_proxy_dataset():
    from genlens.core.data import display_name
    from genlens.book.report import Report, Tol, beside_recorded

    report = Report("hfc", "quick", 0, "cpu", tolerances={"*": Tol(abs=1)})
    report.paper_vs_run("test accuracy (%)", "85.75", "Table 1", 96.44)
    recorded = {"profile": "full", "device": "NVIDIA H100", "date": "2026-11-23",
                "params": {"dataset": "imagefolder:/x/.device/cifar10-jpeg-35k.zip"},
                "paper_vs_run": [{"quantity": "test accuracy (%)", "run": "88.1"}]}
    assert "full (CIFAR-10 (JPEG proxy), NVIDIA H100, 2026-11-23)" in beside_recorded(report, recorded)
    assert display_name("mnist5k").startswith("MNIST-5k") and display_name("cifar10") == "CIFAR-10"
    assert display_name("imagefolder:/data/birds") == "image folder birds"
