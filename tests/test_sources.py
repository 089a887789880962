"""Lessons as reviewable text, and the habits that keep the sources clean: pairs, ruff, commit hooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from tlcourse.course.pairing import lesson_sources, pair_problems, sync_lessons

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
BIN = Path(sys.executable).parent


def _parameters_cell(notebook: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))


def test_every_lesson_notebook_has_a_source_and_matches_it() -> None:
    notebooks = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    sources = {p.stem for p in lesson_sources(NOTEBOOKS)}
    assert notebooks == sources and len(sources) >= 11
    problems = [p for source in lesson_sources(NOTEBOOKS) for p in pair_problems(source)]
    assert not problems, "\n".join(problems) + "\nrun `tlcourse lessons sync`"


def test_the_parameters_tag_lives_in_the_source() -> None:
    for source in lesson_sources(NOTEBOOKS):
        assert '# %% tags=["parameters"]' in source.read_text(), source.name


def test_a_changed_source_is_reported_and_sync_regenerates_the_notebook(tmp_path: Path) -> None:
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"00_start_here{suffix}", tmp_path)
    source = tmp_path / "00_start_here.py"
    before = nbformat.read(tmp_path / "00_start_here.ipynb", as_version=4)
    text = source.read_text()
    assert "SEED = 0" in text
    source.write_text(text.replace("SEED = 0", "SEED = 1", 1))
    index = _parameters_cell(before)
    problems = pair_problems(source)
    assert len(problems) == 1 and f"cell {index}" in problems[0] and "differs" in problems[0]

    assert sync_lessons(tmp_path) == [tmp_path / "00_start_here.ipynb"]
    assert pair_problems(source) == []
    after = nbformat.read(tmp_path / "00_start_here.ipynb", as_version=4)
    assert "SEED = 1" in after.cells[index].source and after.cells[index].metadata["tags"] == ["parameters"]
    unchanged = [i for i, (a, b) in enumerate(zip(before.cells, after.cells)) if a.source == b.source]
    assert len(unchanged) == len(before.cells) - 1
    assert all(before.cells[i].id == after.cells[i].id for i in unchanged)  # a one-line change, a one-cell diff
    assert after.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in after.metadata
    assert sync_lessons(tmp_path) == []  # nothing left to do


def test_a_notebook_with_outputs_is_reported(tmp_path: Path) -> None:
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"01_lenet{suffix}", tmp_path)
    path = tmp_path / "01_lenet.ipynb"
    notebook = json.loads(path.read_text())
    code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    path.write_text(json.dumps(notebook))
    assert any("keeps outputs" in p for p in pair_problems(tmp_path / "01_lenet.py"))


def test_a_notebook_without_a_source_is_reported(tmp_path: Path) -> None:
    shutil.copy(NOTEBOOKS / "01_lenet.ipynb", tmp_path)
    done = subprocess.run([BIN / "tlcourse", "lessons", "check", "--notebooks", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "01_lenet.ipynb has no source 01_lenet.py" in done.stdout, done.stdout + done.stderr


def test_lesson_sources_read_back_as_the_same_cells() -> None:
    for source in lesson_sources(NOTEBOOKS):
        cells = jupytext.read(source).cells
        assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), source.name


def test_ruff_is_clean_over_package_tests_benchmarks_and_lesson_sources() -> None:
    done = subprocess.run([BIN / "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run([BIN / "ruff", "check", "--show-files", "."], cwd=REPO, capture_output=True, text=True)
    for expected in ("tlcourse/training/loop.py", "tests/test_sources.py", "notebooks/01_lenet.py", "benchmarks/grading.py"):
        assert expected in listed.stdout, f"ruff does not check {expected}"


@pytest.mark.timeout(300)
def test_pre_commit_hooks_strip_outputs_fix_imports_and_resync_lessons(tmp_path: Path) -> None:
    repo = tmp_path / "course"
    (repo / "notebooks").mkdir(parents=True)
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, repo)
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"00_start_here{suffix}", repo / "notebooks")
    shutil.copy(NOTEBOOKS / "jupytext.toml", repo / "notebooks")
    lesson = repo / "notebooks" / "00_start_here.py"
    lesson.write_text(lesson.read_text().replace("SEED = 0", "SEED = 3", 1))  # edited, notebook not regenerated
    (repo / "helper.py").write_text("import os\nimport sys\n\nprint(sys.argv)\n")  # an unused import
    graded = repo / "graded.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", execution_count=1,
                                                                        outputs=[nbformat.v4.new_output("stream", text="1\n")])])
    nbformat.write(notebook, graded)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "GIT_CONFIG_GLOBAL": os.devnull}
    git = lambda *args: subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    git("init", "-q")
    git("add", "-A")

    first = subprocess.run([BIN / "pre-commit", "run", "--all-files"], cwd=repo, env=env, capture_output=True, text=True)
    assert first.returncode == 1, first.stdout + first.stderr  # the hooks changed files: the commit stops
    assert "import os" not in (repo / "helper.py").read_text()
    stripped = nbformat.read(graded, as_version=4).cells[0]
    assert stripped.outputs == [] and stripped.execution_count is None
    assert pair_problems(lesson) == []
    regenerated = nbformat.read(lesson.with_suffix(".ipynb"), as_version=4)
    assert "SEED = 3" in regenerated.cells[_parameters_cell(regenerated)].source

    git("add", "-A")
    second = subprocess.run([BIN / "pre-commit", "run", "--all-files"], cwd=repo, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr
