"""The checkout's packaging and book configuration agree with each other and with the runner."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from genlens.book import runner
from genlens.book.findings import Finding

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def yaml_file(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def pyproject_requirements() -> list[str]:
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["book"], *extras["test"]]


def environment_requirements() -> list[str]:
    (pip,) = [d["pip"] for d in yaml_file("environment.yml")["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [r for r in pip if r.replace(" ", "") != "-e."]


# --------------------------------------------------------------------------- dependencies

def test_environment_yml_mirrors_pyproject() -> None:
    ours, theirs = pyproject_requirements(), environment_requirements()
    for side in (ours, theirs):
        names = [canonicalize_name(Requirement(r).name) for r in side]
        assert len(names) == len(set(names)), f"a package is listed twice: {sorted(names)}"
    # packaging compares requirements by canonical name, extras, specifier set (in any order) and marker
    ours_set, theirs_set = {Requirement(r) for r in ours}, {Requirement(r) for r in theirs}
    assert ours_set == theirs_set, (f"only in pyproject.toml: {sorted(map(str, ours_set - theirs_set))}; "
                                    f"only in environment.yml: {sorted(map(str, theirs_set - ours_set))}")
    pip = [d["pip"] for d in yaml_file("environment.yml")["dependencies"] if isinstance(d, dict)][0]
    assert "-e ." in pip, "environment.yml must install the package itself (-e .)"


@pytest.mark.parametrize("requirements", [pyproject_requirements, environment_requirements])
def test_torch_and_torchvision_ranges(requirements) -> None:
    reqs = {canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in requirements()}
    torch, torchvision = reqs["torch"], reqs["torchvision"]
    for ok in ("2.10.0", "2.11.0", "2.14.1"):
        assert torch.contains(ok), f"torch {ok} should be allowed by {torch}"
    for bad in ("2.9", "2.9.1", "2.8.0"):
        assert not torch.contains(bad), f"torch {bad} predates the weights_only fixes but {torch} allows it"
    for ok in ("0.26.0", "0.29.1"):
        assert torchvision.contains(ok), f"torchvision {ok} should be allowed by {torchvision}"


def test_console_script_runs_and_refuses_an_unknown_chapter(capsys: pytest.CaptureFixture) -> None:
    """The `genlens` entry point in pyproject resolves to a command that answers, and fails in one line."""
    main = pkgutil.resolve_name(pyproject()["project"]["scripts"]["genlens"])
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(runner.CHAPTERS)
    assert main(["run", "nosuch"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("genlens: error: unknown chapter 'nosuch'")


def test_import_genlens_is_light() -> None:
    """`import genlens` (and the command's module) pull in no plotting, progress-bar or notebook machinery."""
    code = (
        "import json, sys\n"
        "import genlens\n"
        "light = sorted(m for m in ('matplotlib', 'tqdm', 'IPython', 'papermill') if m in sys.modules)\n"
        "import genlens.book.cli, genlens.book.report\n"
        "cli = sorted(m for m in ('matplotlib', 'IPython', 'papermill', 'jupytext', 'nbformat') if m in sys.modules)\n"
        "print(json.dumps([light, cli]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    light, cli = json.loads(proc.stdout.splitlines()[-1])
    assert light == [], f"`import genlens` imports {light}"
    assert cli == [], f"`import genlens.book.cli, genlens.book.report` imports {cli} (the runner imports them only when running)"


# --------------------------------------------------------------------------- the book

def test_config_never_executes_notebooks() -> None:
    config = yaml_file("_config.yml")
    assert "execute_notebooks" not in config, "execute_notebooks must sit under execute:, not at the top level"
    assert config["execute"]["execute_notebooks"] == "off"  # a string: an unquoted YAML off would be False
    assert config["only_build_toc_files"] is True
    bibfiles = config["bibtex_bibfiles"]
    assert bibfiles, "no bibtex_bibfiles"
    for bib in bibfiles:
        assert (ROOT / bib).is_file(), f"bibtex file {bib} does not exist"


def toc_files(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["root"]] if "root" in node else []) + ([node["file"]] if "file" in node else []) + \
            [f for v in node.values() for f in toc_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in toc_files(v)]
    return []


def test_toc_lists_exactly_the_written_chapters() -> None:
    files = toc_files(yaml_file("_toc.yml"))
    assert len(files) == len(set(files)), f"_toc.yml lists a file twice: {files}"
    in_toc = [f.removeprefix("book/chapters/") for f in files if f.startswith("book/chapters/")]
    sources = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    unknown = sorted(set(in_toc + sources) - set(runner.CHAPTERS))
    assert not unknown, f"not chapter ids (see runner.CHAPTERS): {unknown}"
    assert sorted(in_toc) == sources, (f"in _toc.yml without a source: {sorted(set(in_toc) - set(sources))}; "
                                       f"written but not in _toc.yml: {sorted(set(sources) - set(in_toc))}")
    for chapter in sources:
        assert (ROOT / "book" / "chapters" / f"{chapter}.ipynb").is_file(), f"{chapter} has no executed notebook"
        results = ROOT / "book" / "results" / "quick" / f"{chapter}.json"
        assert results.is_file(), f"{chapter} has no quick results JSON"
        assert json.loads(results.read_text())["chapter"] == chapter


def test_toc_files_exist() -> None:
    missing = [f for f in toc_files(yaml_file("_toc.yml"))
               if not any((ROOT / f"{f}{ext}").is_file() for ext in ("", ".md", ".ipynb"))]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_ci_runs_make_test_and_fails_on_failure() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.split("#")[0].strip() for line in script.splitlines()]
    assert "make test" in commands, ".ci/run must call `make test`"
    assert "set -euo pipefail" in commands or "set -e" in commands
    assert "|| true" not in script and "set +e" not in script


@pytest.mark.parametrize("chapter", runner.available(ROOT))
def test_executed_chapter_matches_its_source(chapter: str) -> None:
    """The committed executed notebook was produced from the current source (no stale chapter)."""
    import jupytext
    import nbformat

    source = [cell.source for cell in jupytext.read(ROOT / "notebooks" / f"{chapter}.md").cells]
    executed = nbformat.read(ROOT / "book" / "chapters" / f"{chapter}.ipynb", as_version=4)
    ran = [cell.source for cell in executed.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
    assert ran == source, f"book/chapters/{chapter}.ipynb is stale: rerun `genlens run {chapter}`"
    results = json.loads((ROOT / "book" / "results" / "quick" / f"{chapter}.json").read_text())
    assert results.get("checks") and all(results["checks"].values()), f"{chapter}: no checks, or a check does not hold"
    assert results.get("findings"), f"{chapter}: records no findings"
    for f in results.get("findings", []):
        Finding.from_dict(f)  # a verdict of the four, an interval and its spread unless not tested, a source
    assert set(results.get("tolerances", {})) == set(results["metrics"]), f"{chapter}: a figure has no tolerance"
    assert all("tolerance" in row for row in results["paper_vs_run"]), f"{chapter}: a paper-vs-run row has no tolerance"
