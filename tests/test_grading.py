"""The graded assignments, graded for real: nbgrader generates, autogrades and validates them.

Everything runs in a temporary course directory (a copy of ``solutions/``, its own gradebook and
exchange), so the repository is never touched. Per assignment, one ``autograde`` call with a short
cell timeout grades five students (a blank submission, one task solved, and three broken ones: a cell
that raises, one with a syntax error, one that loops forever); a second call grades the full solution
with the course's own timeout.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tlcourse import grading

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = grading.list_assignments(REPO)
SHORT_TIMEOUT = 15  # seconds per cell for the students without a training cell to run
ONE_TASK, BROKEN_TASK = "t1", "t2"
DEFECTS = {
    "raises": 'raise RuntimeError("a bug in the student\'s code")',
    "syntax": "def broken(:\n    pass",
    "loop": "while True:\n    pass",
}
TASK_RE = re.compile(r"^a\d+_(t\d+)_")


def _task(cell: dict) -> str | None:
    match = TASK_RE.match(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))
    return match.group(1) if match else None


def _is_answer(cell: dict) -> bool:
    return cell["cell_type"] == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def _notebook(folder: Path, assignment: str):
    return nbformat.read(str(folder / assignment / f"{assignment}.ipynb"), as_version=4)


def _autograded_points(source) -> dict[str, float]:
    """Autograded points of each task, from the code test cells of the instructor version."""
    points: dict[str, float] = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            points[_task(cell)] = points.get(_task(cell), 0) + meta["points"]
    return points


def _submission(release, source, solved: set[str], defect: str | None = None):
    """The student version with the answers of ``solved`` tasks filled in and BROKEN_TASK's answer replaced by ``defect``."""
    nb = copy.deepcopy(release)
    answers = {cell.id: cell.source for cell in source.cells if _is_answer(cell)}
    for cell in nb.cells:
        if not _is_answer(cell):
            continue
        if _task(cell) in solved:
            cell.source = answers[cell.id]
        if defect is not None and _task(cell) == BROKEN_TASK:
            cell.source = defect
    return nb


def _write_submission(course: Path, student: str, assignment: str, nb) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{assignment}.ipynb"))


class Course:
    """A temporary nbgrader course with every assignment generated and graded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_url = f"sqlite:///{root / 'gradebook.db'}"
        self.expected: dict[tuple[str, str], float] = {}
        self.points: dict[str, dict[str, float]] = {}
        self.seconds: dict[tuple[str, str], float] = {}
        self.results: dict[tuple[str, str], dict] = {}

    def api(self, timeout: int | None = None):
        overrides = {
            "CourseDirectory": {"root": str(self.root), "db_url": self.db_url},
            "Exchange": {"root": str(self.root / "exchange")},
        }
        if timeout is not None:
            overrides["ExecutePreprocessor"] = {"timeout": timeout}
        return grading.make_api(grading.course_config(REPO, **overrides))

    def score(self, assignment: str, student: str) -> tuple[float, float]:
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url, course_id="tlcourse") as gb:
            submission = gb.find_submission(assignment, student)
            return submission.code_score, submission.max_code_score


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    root = tmp_path_factory.mktemp("course")
    (root / "exchange").mkdir()
    saved_exchange = os.environ.get("TLCOURSE_EXCHANGE")
    os.environ["TLCOURSE_EXCHANGE"] = str(root / "exchange")  # loading the config creates the exchange folder
    import shutil

    shutil.copytree(REPO / "solutions", root / "solutions")
    course = Course(root)
    api = course.api()
    for assignment in ASSIGNMENTS:
        result = api.generate_assignment(assignment, force=True, create=True)
        assert result["success"], result.get("log", "") + result.get("error", "")

    short_api = course.api(timeout=SHORT_TIMEOUT)
    for assignment in ASSIGNMENTS:
        source = _notebook(root / "solutions", assignment)
        release = _notebook(root / "assignments", assignment)
        points = _autograded_points(source)
        course.points[assignment] = points
        students = {"blank": (set(), None, 0), "one_task": ({ONE_TASK}, None, points[ONE_TASK])}
        for name, defect in DEFECTS.items():
            students[name] = ({ONE_TASK}, defect, points[ONE_TASK])
        for student, (solved, defect, expected) in students.items():
            _write_submission(root, student, assignment, _submission(release, source, solved, defect))
            course.expected[assignment, student] = expected
        start = time.perf_counter()
        # one call grades every submitted student, in order: blank, loop, one_task, raises, syntax
        course.results[assignment, "*"] = short_api.autograde(assignment, "*", force=True, create=True)
        course.seconds[assignment, "five broken or partial students"] = time.perf_counter() - start

        _write_submission(root, "solution", assignment, _submission(release, source, set(points)))
        course.expected[assignment, "solution"] = sum(points.values())
        start = time.perf_counter()
        course.results[assignment, "solution"] = api.autograde(assignment, "solution", force=True, create=True)
        course.seconds[assignment, "solution"] = time.perf_counter() - start
    for (assignment, what), seconds in course.seconds.items():
        print(f"autograde {assignment}, {what}: {seconds:.1f} s")
    yield course
    if saved_exchange is None:
        os.environ.pop("TLCOURSE_EXCHANGE", None)
    else:
        os.environ["TLCOURSE_EXCHANGE"] = saved_exchange


def test_committed_assignments_equal_a_fresh_generation() -> None:
    result = grading.check_assignments(REPO)
    assert result.assignments == ASSIGNMENTS and len(ASSIGNMENTS) >= 2
    assert result.ok, "assignments/ is stale; run `tlcourse assignments generate`:\n" + "\n".join(result.differences)


def test_every_assignment_has_hidden_tests_and_a_written_answer() -> None:
    for assignment in ASSIGNMENTS:
        source = _notebook(REPO / "solutions", assignment)
        release = _notebook(REPO / "assignments", assignment)
        assert any("### BEGIN HIDDEN TESTS" in c.source for c in source.cells), assignment
        assert not any("HIDDEN TESTS" in c.source or "BEGIN SOLUTION" in c.source for c in release.cells), assignment
        written = [c for c in source.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
        assert written and all(c.metadata["nbgrader"]["solution"] for c in written), f"{assignment}: no written answer"
        assert len(_autograded_points(source)) >= 2, f"{assignment}: fewer than two autograded tasks"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("student", ["blank", "one_task", "solution", *DEFECTS])
def test_autograde_scores(course: Course, assignment: str, student: str) -> None:
    batch = "solution" if student == "solution" else "*"
    result = course.results[assignment, batch]
    assert result["success"], result.get("log", "") + result.get("error", "")
    score, max_score = course.score(assignment, student)  # raises MissingEntry if there is no grade record
    assert max_score == sum(course.points[assignment].values())
    assert score == course.expected[assignment, student], f"{assignment}/{student}: {score} of {max_score}"


def test_endless_loop_is_stopped_by_the_timeout(course: Course) -> None:
    for assignment in ASSIGNMENTS:
        graded = _notebook(course.root / "autograded" / "loop", assignment)
        errors = [o for c in graded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert any(o.ename in {"CellTimeoutError", "KeyboardInterrupt"} for o in errors), [o.ename for o in errors]


def _validate(notebook: Path, cwd: Path) -> str:
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(bindir / "nbgrader"), "validate", "--ExecutePreprocessor.timeout=180", str(notebook)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_passes_on_solution_and_fails_on_blank(tmp_path: Path, assignment: str) -> None:
    solution = _validate(REPO / "solutions" / assignment / f"{assignment}.ipynb", tmp_path)
    assert "Success! Your notebook passes all the tests." in solution, solution[-3000:]
    assert "VALIDATION FAILED" not in solution
    blank = _validate(REPO / "assignments" / assignment / f"{assignment}.ipynb", tmp_path)
    assert re.search(r"VALIDATION FAILED ON \d+ CELL\(S\)", blank), blank[-3000:]
