"""Run chapters headlessly (jupytext -> papermill) and build the book (Jupyter Book 1.x).

This is the only module that knows about notebooks, papermill or Jupyter Book. A chapter's
parameters are read from its source's `parameters` cell and every override is validated before a
kernel starts: an unknown name, a wrong type or a value outside the cell's stated choices or range
is a `RunError` with a one-line message. A numeric parameter states its meaningful range at the
start of its comment: `n = 5  # >= 2; what it is`, `x = 0.5  # in [0, 1]` (also `>`, `<`, `<=` and
open ends). A chapter executes into a temporary notebook that replaces the committed one only on
success; a failure keeps the partial notebook beside it for inspection. While it runs, the kernel's
stderr is filtered (`is_noise`) and one progress line shows the cell and the elapsed time.
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.cache import atomic_write_bytes, atomic_write_json

PROFILES = ("quick", "gpu", "full")  # CPU minutes; one GPU, the whole book in 10 minutes; the papers' settings


@dataclass(frozen=True)
class Chapter:
    id: str
    title: str
    paper: str


CHAPTERS: dict[str, Chapter] = {c.id: c for c in [
    Chapter("rethinking", "Rethinking generalization: random labels and pixels", "Zhang et al., ICLR 2017"),
    Chapter("landscape", "Loss landscapes with filter normalization", "Li et al., NeurIPS 2018"),
    Chapter("hessian", "Hessian spectrum, batch size and robustness", "Yao et al., NeurIPS 2018"),
    Chapter("hfc", "High-frequency components and CNN generalization", "Wang et al., CVPR 2020"),
    Chapter("adversarial", "Adversarial examples and unit analysis", "Szegedy et al., ICLR 2014"),
    Chapter("intrinsic", "Intrinsic dimension of representations (TwoNN)", "Ansuini et al., NeurIPS 2019"),
    Chapter("protopnet", "Prototypes: this looks like that", "Chen et al., NeurIPS 2019"),
    Chapter("corrections", "Minimal, stable, symbolic corrections", "Zhang et al., NeurIPS 2018"),
    Chapter("zoo", "A model zoo: every lens against the generalization gap", "after Jiang et al., ICLR 2020"),
]}


class RunError(Exception):
    """A problem with what was asked of the runner; its message is one line."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    choices: tuple[str, ...] | None = None  # from a trailing "# one of: a, b" comment
    range: Range | None = None  # from a trailing "# >= 1" or "# in [0, 1]" comment


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOUND = re.compile(rf"^#\s*(>=|>|<=|<)\s*({_NUMBER})\s*(?:;|$)")
_INTERVAL = re.compile(rf"^#\s*in\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*(?:;|$)")


@dataclass(frozen=True)
class Range:
    """A numeric parameter's meaningful range, as its comment states it (None: unbounded on that side).

    >>> r = Range.parse("# in [0, 1]; learning-rate exponent"); (r.low, r.high, r.closed_low, r.closed_high, str(r))
    (0.0, 1.0, True, True, 'in [0, 1]')
    >>> Range.parse("# >= 2; seeds"), Range.parse("# seeds") is None, Range.parse("# > 0").contains(0)
    (Range(low=2.0, high=None, closed_low=True, closed_high=True), True, False)
    """
    low: float | None
    high: float | None
    closed_low: bool = True
    closed_high: bool = True

    @classmethod
    def parse(cls, comment: str) -> Range | None:
        """The range a comment starts with (`# >= 1`, `# > 0`, `# <= 5`, `# in [0, 1)`, ...), or None."""
        comment = comment.strip()
        if m := _BOUND.match(comment):
            op, x = m.group(1), float(m.group(2))
            return cls(x, None, op == ">=") if op.startswith(">") else cls(None, x, closed_high=op == "<=")
        if m := _INTERVAL.match(comment):
            low, high = float(m.group(2)), float(m.group(3))
            if low > high:
                raise RunError(f"empty range in comment {comment!r}")
            return cls(low, high, m.group(1) == "[", m.group(4) == "]")
        return None

    def contains(self, x: float) -> bool:
        low_ok = self.low is None or (x >= self.low if self.closed_low else x > self.low)
        high_ok = self.high is None or (x <= self.high if self.closed_high else x < self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        g = lambda v: f"{v:g}"  # noqa: E731
        if self.low is not None and self.high is not None:
            return f"in {'[' if self.closed_low else '('}{g(self.low)}, {g(self.high)}{']' if self.closed_high else ')'}"
        if self.low is not None:
            return f"{'>=' if self.closed_low else '>'} {g(self.low)}"
        return f"{'<=' if self.closed_high else '<'} {g(self.high)}"


def repo_root() -> Path:
    """The checkout holding notebooks/ and _config.yml: $GENLENS_ROOT, else the package's checkout, else cwd."""
    def is_checkout(path: Path) -> bool:
        return (path / "notebooks").is_dir() and (path / "_config.yml").exists()

    explicit = os.environ.get("GENLENS_ROOT")
    if explicit:  # never fall back to another checkout (and write there) when the one named is wrong
        if not is_checkout(Path(explicit)):
            raise RunError(f"GENLENS_ROOT={explicit} is not a genlens checkout (no notebooks/ or _config.yml there)")
        return Path(explicit)
    for c in (Path(__file__).resolve().parents[3], Path.cwd()):
        if is_checkout(c):
            return c
    raise RunError("cannot find the genlens checkout (a folder with notebooks/ and _config.yml); set GENLENS_ROOT")


def source_path(chapter: str, root: Path) -> Path:
    """The jupytext source of `chapter`; RunError if the id is unknown or not yet written."""
    if chapter not in CHAPTERS:
        raise RunError(f"unknown chapter {chapter!r}; known chapters: {', '.join(CHAPTERS)}")
    path = root / "notebooks" / f"{chapter}.md"
    if not path.exists():
        raise RunError(f"chapter {chapter!r} is not written yet (no {path.relative_to(root)})")
    return path


def available(root: Path) -> list[str]:
    """Chapter ids whose source exists, in book order."""
    return [c for c in CHAPTERS if (root / "notebooks" / f"{c}.md").exists()]


def read_parameters(source: Path) -> dict[str, Param]:
    """Names, defaults, choices and ranges of the assignments in the source's `parameters` cell."""
    import jupytext

    notebook = jupytext.read(source)
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise RunError(f"{source.name} must have exactly one cell tagged 'parameters', found {len(cells)}")
    params: dict[str, Param] = {}
    lines = cells[0].source.splitlines()
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise RunError(f"{source.name}: the parameters cell may only hold simple assignments")
        name = node.targets[0].id
        line = lines[node.lineno - 1]
        match = re.search(r"#\s*one of:\s*(.+)$", line)
        choices = tuple(s.strip() for s in match.group(1).split(",")) if match else None
        default = ast.literal_eval(node.value)
        tail = line[node.end_col_offset:]
        comment = tail[tail.index("#"):] if "#" in tail else ""
        bounds = Range.parse(comment) if comment else None
        if bounds is not None and (isinstance(default, bool) or not isinstance(default, (int, float))):
            raise RunError(f"{source.name}: parameter {name!r} states a range but is not a number")
        if bounds is not None and not bounds.contains(default):
            raise RunError(f"{source.name}: parameter {name!r} has default {default!r}, outside its range {bounds}")
        params[name] = Param(name, default, choices, bounds)
    return params


def _convert(param: Param, text: str) -> Any:
    default, kind = param.default, type(param.default).__name__
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            value: Any = text.lower() in ("true", "1")
        elif isinstance(default, int):
            value = int(text)
        elif isinstance(default, float):
            value = float(text)
        elif isinstance(default, str):
            value = text
        else:
            value = ast.literal_eval(text)
            if type(value) is not type(default):
                raise ValueError
    except (ValueError, SyntaxError):
        raise RunError(f"parameter {param.name!r} expects {kind} (default {default!r}), got {text!r}") from None
    if param.choices is not None and str(value) not in param.choices:
        raise RunError(f"parameter {param.name!r} must be one of {', '.join(param.choices)}, got {text!r}")
    if param.range is not None and not param.range.contains(value):
        raise RunError(f"parameter {param.name!r} must be {param.range}, got {text!r}")
    return value


def resolve_parameters(chapter: str, profile: str, overrides: dict[str, str], root: Path) -> dict[str, Any]:
    """Validate `overrides` (name -> text) against the chapter's parameters cell; return all values."""
    if profile not in PROFILES:
        raise RunError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    declared = read_parameters(source_path(chapter, root))
    for name in ("profile", "seed", "device"):
        if name not in declared:
            raise RunError(f"chapter {chapter!r}: its parameters cell lacks the required parameter {name!r}")
    unknown = [n for n in overrides if n not in declared]
    if unknown:
        raise RunError(f"unknown parameter {unknown[0]!r} for chapter {chapter!r}; parameters: {', '.join(declared)}")
    if "profile" in overrides and overrides["profile"] != profile:
        raise RunError("give the profile with --profile, not -p profile=...")
    values = {n: p.default for n, p in declared.items()}
    values.update({n: _convert(declared[n], v) for n, v in overrides.items()})
    values["profile"] = _convert(declared["profile"], profile)
    return values


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}; RunError on an item without '='."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RunError(f"parameters are given as name=value, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


def _tidy(notebook_path: Path) -> None:
    """Fold the parameter cells, drop per-cell timing metadata (stable diffs)."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "hide-cell" not in tags:
            tags.append("hide-cell")
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if not tags:
            del cell.metadata["tags"]
    nb.metadata.pop("papermill", None)
    atomic_write_bytes(notebook_path, nbformat.writes(nb).encode())


def results_path(root: Path | str, profile: str, chapter: str | None = None, *, checkout: bool = True) -> Path:
    """Where results live: ``<root>/book/results/<profile>/<chapter>.json`` in a checkout, or
    ``<root>/<profile>/<chapter>.json`` in a folder of results (checkout=False, e.g. $GENLENS_RESULTS_DIR);
    without a chapter, the profile's folder. The one place that knows this layout.

    >>> results_path("repo", "quick", "hfc").as_posix(), results_path("/tmp/r", "full", checkout=False).as_posix()
    ('repo/book/results/quick/hfc.json', '/tmp/r/full')
    """
    folder = (Path(root) / "book" / "results" if checkout else Path(root)) / profile
    return folder if chapter is None else folder / f"{chapter}.json"


def output_paths(chapter: str, profile: str, root: Path) -> tuple[Path, Path]:
    """(executed notebook, results JSON): quick chapters go to book/chapters, full runs beside their results."""
    results = results_path(root, profile, chapter)
    notebook = root / "book" / "chapters" / f"{chapter}.ipynb" if profile == "quick" else results.with_suffix(".ipynb")
    return notebook, results


PARTIAL = ".partial"  # a chapter's results while the runner runs it: .<chapter>.partial.json, beside the final ones


def partial_results(results: Path) -> Path:
    """Where the runner has a chapter save its results while it runs: ``.<chapter>.partial.json`` beside `results`;
    moved into place only once the chapter has run to its end.

    >>> partial_results(Path("book/results/quick/zoo.json")).as_posix()
    'book/results/quick/.zoo.partial.json'
    """
    return results.with_name(f".{results.stem}{PARTIAL}{results.suffix}")


def side_path(results: Path, filename: str) -> Path:
    """Where a chapter saving its results to `results` writes a side file (e.g. zoo.csv): beside them, or, where
    `results` are the runner's partial results, at ``.<chapter>.partial.<filename>``, which the runner renames to
    `filename` once the chapter has succeeded and removes if it fails.

    >>> side_path(Path("r/zoo.json"), "zoo.csv").as_posix(), side_path(Path("r/.zoo.partial.json"), "zoo.csv").as_posix()
    ('r/zoo.csv', 'r/.zoo.partial.zoo.csv')
    """
    if "/" in filename or filename.startswith(".") or not filename:
        raise ValueError(f"a side file is a plain name beside the results, got {filename!r}")
    if results.name.startswith(".") and results.stem.endswith(PARTIAL):
        return results.with_name(f"{results.stem}.{filename}")
    return results.with_name(filename)


def _side_partials(partial: Path) -> dict[Path, Path]:
    """The side files a chapter wrote beside its partial results: partial name -> final name."""
    prefix = f"{partial.stem}."
    return {p: p.with_name(p.name[len(prefix):]) for p in sorted(partial.parent.glob(f"{partial.stem}.*"))
            if p != partial and p.name.startswith(prefix)}


def _discard_partials(partial: Path) -> None:
    """Remove a chapter's partial results and partial side files (a failed run's, or a stale one's)."""
    for p in [*_side_partials(partial), partial]:
        p.unlink(missing_ok=True)


# Lines a kernel prints on its own stderr that say nothing to a reader (the chapters' own warnings are in
# the notebook's outputs). Everything else the kernel prints reaches the terminal, each distinct line once.
NOISE = tuple(re.compile(p) for p in (
    r"Kernel is running over TCP without encryption",     # ipykernel >= 7, local kernels over loopback
    r"^\s*\d+\.\d+s - ",                                   # debugpy: "0.00s - Debugger warning: frozen modules"
    r"frozen_modules|PYDEVD_DISABLE_FILE_VALIDATION",
    r"^\s*$",
))


def is_noise(line: str) -> bool:
    """True for a kernel stderr line that says nothing to a reader.

    >>> is_noise("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...")
    True
    >>> is_noise("0.00s - Debugger warning: It seems that frozen modules are being used"), is_noise("UserWarning: x")
    (True, False)
    """
    return any(p.search(line) for p in NOISE)


class _KernelStderr:
    """Route file descriptor 2 (which the kernel inherits) through a filter for the duration of a run.

    Noise lines (`is_noise`) are dropped, every other distinct line is written once to the real stderr.
    `terminal` is a handle on the real stderr for our own progress line, which bypasses the filter.
    """

    def __enter__(self) -> "_KernelStderr":
        import threading

        sys.stderr.flush()
        self._saved = os.dup(2)
        self.terminal = os.fdopen(os.dup(self._saved), "w", buffering=1, encoding="utf-8", errors="replace")
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self._thread.start()
        return self

    def _pump(self, read: int) -> None:
        from tqdm import tqdm

        seen: set[str] = set()
        with os.fdopen(read, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not is_noise(line) and line not in seen:
                    seen.add(line)
                    try:
                        tqdm.write(line.rstrip("\n"), file=self.terminal)  # above the progress line, not inside it
                    except (ValueError, OSError):  # the run is over and the terminal handle closed
                        return

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # the pipe's last writer in this process is gone: the pump sees its end
        os.close(self._saved)
        self._thread.join(timeout=5)
        self.terminal.close()


class _PapermillNoise:
    """A logging filter for papermill's warnings that the runner's own checks make redundant: its parameter
    introspection reads a range comment (`# >= 1`) as a second assignment, and it warns about parameters it
    could not parse, which `resolve_parameters` has already validated."""

    DROP = ("Unable to parse line", "Passed unknown parameter")

    def filter(self, record) -> bool:
        return not any(record.getMessage().startswith(d) for d in self.DROP)

    def __enter__(self) -> "_PapermillNoise":
        import logging

        self._loggers = [logging.getLogger(n) for n in ("papermill", "papermill.translators")]
        for logger in self._loggers:
            logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)


def progress_options(chapter: str, terminal, environ=os.environ) -> dict[str, Any] | bool:
    """papermill's tqdm options: one line per chapter, 'rethinking: cell k of n [elapsed]'; off with TQDM_DISABLE.

    >>> progress_options("hfc", None, {"TQDM_DISABLE": "1"}), progress_options("hfc", None, {})["bar_format"]
    (False, 'hfc: cell {n_fmt} of {total_fmt} [{elapsed}]')
    """
    if environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false"):
        return False
    return {"bar_format": f"{chapter}: cell {{n_fmt}} of {{total_fmt}} [{{elapsed}}]", "file": terminal,
            "mininterval": 1.0, "leave": True, "disable": False, "dynamic_ncols": True}


def run(chapter: str, profile: str = "quick", overrides: dict[str, str] | None = None,
        root: Path | None = None, log=print) -> dict[str, Any]:
    """Execute a chapter with papermill; write its notebook and results JSON; return the results."""
    import jupytext
    import papermill

    root = root or repo_root()
    params = resolve_parameters(chapter, profile, overrides or {}, root)
    # a smoke run (every setting shrunk) never replaces a profile's recorded results: it goes to <profile>-smoke/
    notebook_out, results_out = output_paths(chapter, f"{profile}-smoke" if params.get("smoke") else profile, root)
    notebook_out.parent.mkdir(parents=True, exist_ok=True)
    running = notebook_out.with_name(f".{chapter}.running.ipynb")
    failed = notebook_out.with_name(f"{chapter}.failed.ipynb")
    source_nb = notebook_out.with_name(f".{chapter}.source.ipynb")
    jupytext.write(jupytext.read(source_path(chapter, root)), source_nb)
    partial = partial_results(results_out)
    _discard_partials(partial)
    env_before = {k: os.environ.get(k) for k in ("GENLENS_RESULTS_PATH", "TQDM_DISABLE")}
    log(f"genlens: running {chapter} ({profile}) ...")
    start = time.perf_counter()
    try:
        with _KernelStderr() as stderr, _PapermillNoise():
            progress = progress_options(chapter, stderr.terminal)
            os.environ.update(GENLENS_RESULTS_PATH=str(partial), TQDM_DISABLE="1")  # the kernel's bars: off
            papermill.execute_notebook(str(source_nb), str(running), parameters=params, kernel_name="python3",
                                       progress_bar=progress, cwd=str(notebook_out.parent), log_output=False)
    except papermill.PapermillExecutionError as err:
        os.replace(running, failed)
        _discard_partials(partial)
        raise RunError(f"chapter {chapter!r} failed in cell {err.exec_count}: {err.ename}: "
                       f"{str(err.evalue).splitlines()[0] if err.evalue else ''} (partial notebook: {failed})") from None
    except Exception as err:  # the kernel could not start, died or timed out: still one line, partial kept
        _discard_partials(partial)
        kept = ""
        if running.exists():
            os.replace(running, failed)
            kept = f" (partial notebook: {failed})"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunError(f"chapter {chapter!r} could not be executed: {type(err).__name__}: {first}{kept}") from err
    except BaseException:
        _discard_partials(partial)
        if running.exists():
            os.replace(running, failed)
        raise
    finally:
        for k, v in env_before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        source_nb.unlink(missing_ok=True)
    wall = time.perf_counter() - start
    if not partial.exists():
        os.replace(running, failed)
        _discard_partials(partial)
        raise RunError(f"chapter {chapter!r} ran but did not save its report (call report.save() at the end); "
                       f"executed notebook: {failed}")
    results = {"chapter": chapter, "profile": profile, "params": params, **json.loads(partial.read_text())}
    results["wall_s"] = round(wall, 1)
    _tidy(running)
    os.replace(running, notebook_out)
    failed.unlink(missing_ok=True)
    for side, final in _side_partials(partial).items():  # side files (e.g. zoo.csv) replace the old ones only now
        os.replace(side, final)
    atomic_write_json(results_out, results)
    partial.unlink(missing_ok=True)
    write_results_page(root)
    log(f"genlens: {chapter} ({profile}) done in {wall:.0f} s -> {notebook_out.relative_to(root)}, "
        f"{results_out.relative_to(root)}")
    return results


def profile_dataset(chapter: str, profile: str) -> str | None:
    """The data set a chapter's profile uses when its `dataset` parameter is empty (`settings_<chapter>`), if it names one."""
    import importlib

    try:
        settings = importlib.import_module(f"genlens.book.settings_{chapter}").PROFILES[profile]
    except (ImportError, KeyError):
        return None
    return getattr(settings, "dataset", None)


def book_overrides(chapter: str, profile: str, data: dict[str, str], smoke: bool, root: Path) -> dict[str, str]:
    """The parameters `genlens book` passes to one chapter: `dataset` where the profile's data set is a key of
    `data` (e.g. cifar10 -> imagefolder:<proxy>), and `smoke=True` for a smoke run."""
    declared = read_parameters(source_path(chapter, root))
    out: dict[str, str] = {}
    if (name := profile_dataset(chapter, profile)) in data and "dataset" in declared:
        out["dataset"] = data[name]
    if smoke:
        if "smoke" not in declared:
            raise RunError(f"chapter {chapter!r} has no smoke parameter (needed by --smoke)")
        out["smoke"] = "True"
    return out


def run_book(profile: str, *, data: dict[str, str] | None = None, smoke: bool = False, jobs: int = 1,
             chapters: list[str] | None = None, root: Path | None = None, log=print) -> dict[str, str]:
    """Run every chapter of `profile`, `jobs` at a time (each in its own process), past any that fails.

    Returns chapter -> "done in N s" or the failure's one line; every parameter is validated before the
    first chapter starts. Each chapter's output goes to ``<results folder>/<chapter>.log``. SIGTERM (e.g.
    a `timeout`) stops the chapters still running, and only those: finished chapters are kept.
    """
    import concurrent.futures as cf
    import signal
    import threading

    root = root or repo_root()
    chapters = chapters or available(root)
    if profile not in PROFILES:
        raise RunError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    if jobs < 1:
        raise RunError(f"--jobs must be >= 1, got {jobs}")
    plans = {c: book_overrides(c, profile, data or {}, smoke, root) for c in chapters}
    for c, overrides in plans.items():
        resolve_parameters(c, profile, overrides, root)  # every problem before any work
    logs = results_path(root, f"{profile}-smoke" if smoke else profile)
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GENLENS_ROOT=str(root), TQDM_DISABLE="1")
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    running: set[subprocess.Popen] = set()
    guard = threading.Lock()
    stopping = False

    def one(chapter: str) -> tuple[str, str]:
        cmd = [sys.executable, "-m", "genlens.book.cli", "run", chapter, "--profile", profile]
        for k, v in plans[chapter].items():
            cmd += ["-p", f"{k}={v}"]
        start = time.perf_counter()
        with open(logs / f"{chapter}.log", "w") as out:
            with guard:
                if stopping:
                    return chapter, "not started (stopped)"
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                        start_new_session=True)
                running.add(proc)
            try:
                code = proc.wait()
            finally:
                with guard:
                    running.discard(proc)
        wall = time.perf_counter() - start
        if code == 0:
            return chapter, f"done in {wall:.0f} s"
        lines = [l for l in (logs / f"{chapter}.log").read_text(errors="replace").splitlines() if l.strip()]
        last = lines[-1] if lines and not lines[-1].startswith("genlens: running") else f"stopped (exit {code})"
        return chapter, f"FAILED after {wall:.0f} s: {last}"

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        with guard:
            stopping = True
            live = list(running)
        for proc in live:  # each chapter is its own process group: the others on this machine are not touched
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        raise SystemExit(128 + signum)

    outcome: dict[str, str] = {}
    log(f"genlens: book ({profile}{', smoke' if smoke else ''}): {len(chapters)} chapters, {jobs} at a time")
    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    pool = cf.ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in cf.as_completed([pool.submit(one, c) for c in chapters]):
            chapter, line = future.result()
            outcome[chapter] = line
            log(f"genlens: {chapter} ({profile}): {line}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # stopped: no chapter starts after the signal
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    write_results_page(root)
    return {c: outcome[c] for c in chapters}


def write_results_page(root: Path) -> Path:
    """Generate book/results.md from every results JSON: the findings scorecard, checks, times, memory, devices."""
    from .findings import VERDICTS, Finding, scorecard
    from .report import markdown_table

    lines = ["# Results of every chapter", "",
             "Generated by `genlens` from `book/results/<profile>/<chapter>.json`; every number was computed",
             "by the run named in its row. A `full` row appears once someone has run that profile on a GPU.", "",
             "Each chapter tests the paper's claims as **findings**: the claim as the paper states it, a test",
             "fixed before the run, an interval from the run's own spread (seeds, directions, probes or a",
             "bootstrap of the test set) and a verdict: *reproduced* (the interval lies on the paper's side of",
             "no effect), *opposite* (on the other side), *inconclusive* (it covers no effect) or *not tested*",
             "(with the reason). A finding never fails a run; a **check** (what the experiment needs to mean",
             "anything) does.", ""]
    for profile in PROFILES:
        results = {c: json.loads(p.read_text()) for c in CHAPTERS if (p := results_path(root, profile, c)).exists()}
        lines += [f"## Profile `{profile}`", ""]
        if not results:
            lines += ["No chapter has been run in this profile yet.", ""]
            continue
        rows, total = [], dict.fromkeys(VERDICTS, 0)
        for c, r in results.items():
            card = scorecard(r.get("findings", []))
            total = {v: total[v] + card[v] for v in VERDICTS}
            verdicts = [str(card[v]) for v in VERDICTS]
            held = f"{sum(r.get('checks', {}).values())}/{len(r.get('checks', {}))} checks"
            rows.append([c, *verdicts, held, f"{r['wall_s']:.0f}", f"{r['peak_rss_mb']:.0f}", r["device"],
                         f"torch {r['versions']['torch']}", r["date"]])
        rows.append(["**whole book**", *[f"**{total[v]}**" for v in VERDICTS], "", f"{sum(r['wall_s'] for r in results.values()):.0f}",
                     "", "", "", ""])
        lines += [markdown_table(["chapter", *VERDICTS, "held", "wall time (s)", "peak memory (MB)", "device", "stack",
                                  "date"], rows), ""]
        for c, r in results.items():
            lines += [f"### {c} ({profile})", ""]
            if r.get("findings"):
                lines += [markdown_table(["finding", "source", "this run [interval]", "verdict"],
                                         [[f"{f.statement} ({f.quantity})", f.source, f.run_text(), f.verdict + (" (borderline)" if f.borderline else "")]
                                          for f in map(Finding.from_dict, r["findings"])]), ""]
            if r.get("checks"):
                lines += [markdown_table(["check", "holds"], [[r["check_text"].get(k, k), "yes" if v else "**no**"]
                                                             for k, v in r["checks"].items()]), ""]
    page = root / "book" / "results.md"
    atomic_write_bytes(page, "\n".join(lines).encode())
    for c in available(root):
        atomic_write_bytes(profiles_page(root, c), profiles_markdown(c, {
            p: json.loads(path.read_text()) for p in PROFILES if (path := results_path(root, p, c)).exists()}).encode())
    return page


def profiles_page(root: Path, chapter: str) -> Path:
    """The generated page a chapter includes to show its findings in every recorded profile."""
    return root / "book" / "results" / "profiles" / f"{chapter}.md"


def profiles_markdown(chapter: str, runs: dict[str, dict[str, Any]]) -> str:
    """A chapter's findings side by side in every profile recorded (profile -> results JSON), each run named
    by its data set, device and date; verdicts are counted per profile, never pooled.

    >>> print(profiles_markdown("hfc", {}).splitlines()[0])
    No run of this chapter has been recorded yet.
    """
    from ..core.data import display_name
    from .findings import VERDICTS, Finding, scorecard
    from .report import markdown_table

    if not runs:
        return "No run of this chapter has been recorded yet.\n"
    lines = []
    for p, r in runs.items():
        dataset = r.get("params", {}).get("dataset") or ""
        card = scorecard(r.get("findings", []))
        checks = r.get("checks", {})
        lines.append(f"- **{p}**: {display_name(dataset) + ', ' if dataset else ''}{r['device']}, {r['date']}, "
                     f"{r['wall_s']:.0f} s; {sum(checks.values())}/{len(checks)} checks held; "
                     + ", ".join(f"{card[v]} {v}" for v in VERDICTS))
    missing = [p for p in PROFILES if p not in runs and p != "full"]
    if missing:
        lines.append(f"- not recorded yet: {', '.join(missing)} (the `gpu` profile is run whenever a GPU machine "
                     "is available: `bench/gpu/run_book.sh`)")
    found: dict[str, dict[str, Finding]] = {p: {d["id"]: Finding.from_dict(d) for d in r.get("findings", [])}
                                            for p, r in runs.items()}
    ids = list(dict.fromkeys(i for p in runs for i in found[p]))
    if ids:
        def cell(f: Finding | None) -> str:
            if f is None:
                return "-"
            if f.verdict == "not tested":
                return "not tested"
            return f"**{f.verdict}**{' (borderline)' if f.borderline else ''}: {f.run_text()}"
        first = lambda i: next(found[p][i] for p in runs if i in found[p])  # noqa: E731
        lines += ["", markdown_table(["finding", *runs], [[f"{first(i).statement} ({first(i).quantity}; {first(i).source})",
                                                           *[cell(found[p].get(i)) for p in runs]] for i in ids])]
    return "\n".join(lines) + "\n"


def build_html(root: Path | None = None, strict: bool = False, repository_url: str | None = None) -> Path:
    """Render the book with Jupyter Book into _build/html (execution off: papermill ran the chapters).

    strict: every Sphinx warning is an error (all are reported, then the build fails).
    repository_url: build as if `_config.yml`'s repository.url were this (None: as it is). Launch and
    repository buttons are rendered only when a URL is set (`publish.book_config`).
    """
    from .publish import write_book_config

    root = root or repo_root()
    write_results_page(root)
    config = write_book_config(root, repository_url)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--keep-going", "--config", str(config)]
    cmd += ["--warningiserror", "--all"] if strict else []
    if subprocess.run(cmd, cwd=root).returncode != 0:
        raise RunError("jupyter-book build failed (see its output above)")
    return root / "_build" / "html" / "index.html"
