"""The `gpu` profile: `genlens book --profile`, the every-profile section of each chapter, the device script's CPU path."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from genlens.book import publish, runner

ROOT = Path(__file__).resolve().parents[1]


def _run(profile: str, verdicts: list[str], device: str = "cpu") -> dict:
    findings = [{"id": f"f{i}", "statement": f"claim {i}", "source": "Fig. 1", "quantity": "q", "paper": "-",
                 "test": "> 0", "run": 0.5, "interval": [0.1, 0.9], "spread_over": "3 seeds", "verdict": v}
                for i, v in enumerate(verdicts)]
    return {"profile": profile, "params": {"dataset": "imagefolder:/x/cifar10-jpeg-35k.zip" if profile == "gpu" else ""},
            "device": device, "date": "2026-11-30", "wall_s": 12.0, "checks": {"a": True, "b": False},
            "findings": findings}


def test_profiles_markdown_counts_each_profile_apart_and_names_its_run():
    text = runner.profiles_markdown("hfc", {"quick": _run("quick", ["reproduced", "opposite"]),
                                           "gpu": _run("gpu", ["opposite", "opposite"], "NVIDIA H200")})
    quick, gpu = (line for line in text.splitlines() if line.startswith("- **"))
    assert "1 reproduced" in quick and "1 opposite" in quick and "1/2 checks held" in quick
    assert "0 reproduced" in gpu and "2 opposite" in gpu and "CIFAR-10 (JPEG proxy), NVIDIA H200, 2026-11-30" in gpu
    assert "| finding | quick | gpu |" in text and "not recorded yet" not in text
    assert "**reproduced**: 0.5 [0.1, 0.9] (3 seeds)" in text


def test_profiles_markdown_says_what_is_missing():
    text = runner.profiles_markdown("hfc", {"quick": _run("quick", ["inconclusive"])})
    assert "not recorded yet: gpu" in text and "| finding | quick |" in text


def test_profiles_section_goes_before_run_information_once():
    text = "# T\n\nprose\n\n## Run information\n\ncode\n"
    once = publish.with_profiles_section(text, "hfc")
    assert once.index(publish.PROFILES_HEADING) < once.index("## Run information")
    assert "```{include} ../results/profiles/hfc.md\n```" in once
    assert publish.with_profiles_section(once, "hfc") == once
    assert publish.with_profiles_section("no heading", "hfc") == "no heading"


@pytest.mark.parametrize("chapter", runner.available(ROOT))
def test_every_chapter_shows_every_profile(chapter):
    assert publish.PROFILES_HEADING in (ROOT / "notebooks" / f"{chapter}.md").read_text()
    cells = json.loads((ROOT / "book" / "chapters" / f"{chapter}.ipynb").read_text())["cells"]
    assert any(publish.PROFILES_HEADING in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("chapter", runner.available(ROOT))
def test_every_chapter_has_a_gpu_profile_with_a_smoke_version(chapter):
    import importlib

    settings = importlib.import_module(f"genlens.book.settings_{chapter}").PROFILES
    assert "gpu" in settings
    smoke = settings["gpu"].smoke()
    assert type(smoke) is type(settings["gpu"]) and smoke != settings["gpu"]
    params = runner.read_parameters(runner.source_path(chapter, ROOT))
    assert params["profile"].choices == runner.PROFILES and params["smoke"].default is False


def test_book_passes_the_data_set_only_where_the_profile_uses_it():
    data = {"cifar10": "imagefolder:/x.zip"}
    uses = {c: runner.book_overrides(c, "gpu", data, False, ROOT).get("dataset") for c in runner.available(ROOT)}
    assert all((v == "imagefolder:/x.zip") == (runner.profile_dataset(c, "gpu") == "cifar10") for c, v in uses.items())
    assert uses["rethinking"] == "imagefolder:/x.zip"
    assert runner.book_overrides("hfc", "gpu", {}, True, ROOT) == {"smoke": "True"}


@pytest.mark.parametrize("kwargs, words", [
    ({"profile": "huge"}, ["'huge'", "gpu"]),
    ({"profile": "gpu", "jobs": 0}, ["--jobs", ">= 1"]),
    ({"profile": "gpu", "chapters": ["nope"]}, ["unknown chapter", "'nope'"]),
])
def test_book_refuses_bad_requests_before_any_work(kwargs, words, tmp_path):
    with pytest.raises(runner.RunError) as err:
        runner.run_book(root=ROOT, log=lambda *_: None, **kwargs)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)
    assert not (ROOT / "book" / "results" / "huge").exists()


@pytest.mark.slow
def test_the_device_script_runs_the_whole_gpu_profile_on_a_cpu_in_smoke_mode(tmp_path):
    """bench/gpu/run_book.sh with SMOKE=1: every chapter's gpu code path on a tiny CIFAR-like zip, packed."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    out = tmp_path / "out"
    env = dict(os.environ, SMOKE="1", OUT=str(out), PYTHON=sys.executable, GENLENS_ROOT=str(root),
               GENLENS_CACHE=str(tmp_path / "cache"), JOBS="2", BUDGET="900", OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "run_book.sh")], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with tarfile.open(out / "results-gpu.tar.gz") as tar:
        names = set(tar.getnames())
    for chapter in runner.available(ROOT):
        assert f"results/gpu-smoke/{chapter}.json" in names and f"results/gpu-smoke/{chapter}.ipynb" in names
        recorded = json.loads((root / "book" / "results" / "gpu-smoke" / f"{chapter}.json").read_text())
        assert recorded["profile"] == "gpu" and recorded["smoke"] is True
    assert "slowest at batch 512" in (out / "throughput.txt").read_text().splitlines()[-1]
    assert not (root / "book" / "results" / "gpu").exists() or not any((root / "book" / "results" / "gpu").glob("*.json"))


@pytest.mark.parametrize("text", ["0", "1.5", "half", "-0.1"])
def test_a_bad_memory_share_is_one_clear_line(text):
    from genlens.core.device import cuda_memory_fraction

    with pytest.raises(ValueError, match="GENLENS_CUDA_MEMORY_FRACTION must be a number in \\(0, 1\\]") as err:
        cuda_memory_fraction({"GENLENS_CUDA_MEMORY_FRACTION": text})
    assert "\n" not in str(err.value)


def test_a_stopped_book_stops_its_own_chapters_and_nothing_else(tmp_path):
    """SIGTERM (a timeout) ends the chapters `genlens book` started; a process beside it is not touched."""
    import signal
    import time

    from tests.test_runner import BODY, HEADER, PARAMETERS_CELL, make_repo

    sleeper = "```{code-cell} ipython3\nimport time\ntime.sleep(120)\n```\n\n"
    root = make_repo(tmp_path / "repo", HEADER + PARAMETERS_CELL + BODY + sleeper)
    bystander = subprocess.Popen(["sleep", "120"])
    book = subprocess.Popen([sys.executable, "-m", "genlens.book.cli", "book", "--profile", "quick"],
                            env=dict(os.environ, GENLENS_ROOT=str(root), GENLENS_CACHE=str(tmp_path / "cache")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log = root / "book" / "results" / "quick" / "rethinking.log"
        deadline = time.monotonic() + 60
        while not (log.exists() and "running" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        children = [int(p) for task in Path(f"/proc/{book.pid}/task").iterdir()  # started from a worker thread
                    for p in (task / "children").read_text().split()]
        assert children, "the chapter's process should be running"
        book.send_signal(signal.SIGTERM)
        assert book.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
                  for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
                       for c in children)  # the chapter's process is gone
        assert bystander.poll() is None  # still running
        assert not (root / "book" / "chapters" / "rethinking.ipynb").exists()  # stopped, not finished
    finally:
        bystander.kill()
        book.kill()
