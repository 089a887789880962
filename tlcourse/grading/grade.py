"""``tlcourse grade``: autograde a class in parallel, each submission in the sandbox, and summarise it.

Each student is one ``nbgrader autograde ASSIGNMENT --student ID --force`` process run from the course
root, so grading is nbgrader's own (the course's ``nbgrader_config.py`` puts the sandbox in its Execute
step) and one student's failure cannot stop another's. Workers share the gradebook; SQLite serialises
their short writes (each waits up to a minute for the lock).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GradeOutcome", "grade_class", "list_submissions", "summary_table"]


@dataclass
class GradeOutcome:
    """One student's autograde: the gradebook's code score, the seconds it took and any limit it hit."""

    student: str
    score: float | None
    max_score: float | None
    seconds: float
    stopped: str | None
    returncode: int
    log: str = ""

    @property
    def graded(self) -> bool:
        """A grade record exists and nbgrader finished without an error."""
        return self.score is not None and self.returncode == 0


def list_submissions(root: Path, assignment: str) -> list[str]:
    """Students with a submitted folder for ``assignment`` (``submitted/<student>/<assignment>/``), sorted."""
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


def _db_url(config: object) -> str:
    url = config.CourseDirectory.get("db_url") if "db_url" in config.CourseDirectory else ""  # type: ignore[attr-defined]
    if not url:
        url = f"sqlite:///{Path(config.CourseDirectory.root) / 'gradebook.db'}"  # type: ignore[attr-defined]
    if url.startswith("sqlite") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + "timeout=60"  # parallel workers wait for SQLite's lock
    return url


def _record(db_url: str, assignment: str, student: str) -> tuple[float | None, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id=_course_id()) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return None, None
        return submission.code_score, submission.max_code_score


def _course_id() -> str:
    from tlcourse.grading.config import COURSE_ID

    return COURSE_ID


def _stop_reason(root: Path, assignment: str, student: str) -> str | None:
    import nbformat

    from tlcourse.grading.execute import stop_reasons

    reasons = []
    for notebook in sorted((root / "autograded" / student / assignment).glob("*.ipynb")):
        try:
            reasons += stop_reasons(nbformat.read(str(notebook), as_version=4))
        except Exception:  # an unreadable autograded file: nbgrader's own error is in the log
            continue
    return "; ".join(r.removeprefix("stopped: ") for r in reasons) or None


def _grade_one(root: Path, assignment: str, student: str, db_url: str, options: Sequence[str], env: dict[str, str]) -> GradeOutcome:
    command = [
        sys.executable, "-m", "nbgrader", "autograde", assignment, "--student", student, "--force",
        f"--CourseDirectory.db_url={db_url}", *options,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    score, max_score = _record(db_url, assignment, student)
    stopped = _stop_reason(root, assignment, student)
    if proc.returncode != 0 and stopped is None:
        errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "[ERROR]" in line or "Error" in line]
        stopped = f"nbgrader failed: {errors[-1].strip() if errors else f'exit code {proc.returncode}'}"
    return GradeOutcome(student, score, max_score, seconds, stopped, proc.returncode, proc.stdout + proc.stderr)


def grade_class(
    root: str | os.PathLike[str],
    assignment: str,
    students: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
    options: Sequence[str] = (),
    progress: bool = True,
    on_done: Callable[[GradeOutcome], None] | None = None,
) -> list[GradeOutcome]:
    """Autograde ``students`` (default: every submission) of ``assignment`` with ``jobs`` parallel workers.

    ``options`` are extra nbgrader command-line options (``--SandboxedExecute.memory_limit=2G``). Returns
    one outcome per student, in the order of ``students``.
    """
    from tqdm.auto import tqdm

    from tlcourse.grading.assignments import course_config

    root = Path(root).resolve()
    names = list(students) if students is not None else list_submissions(root, assignment)
    jobs = max(1, jobs or os.cpu_count() or 1)
    db_url = _db_url(course_config(root))
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # nbgrader runs alembic from PATH
    env.setdefault("TLCOURSE_GRADING_THREADS", str(max(1, (os.cpu_count() or 1) // min(jobs, max(1, len(names))))))
    outcomes: dict[str, GradeOutcome] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(total=len(names), desc=f"grading {assignment}", unit="student", disable=not progress) as bar:
        futures = {pool.submit(_grade_one, root, assignment, s, db_url, list(options), env): s for s in names}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.student] = outcome
            bar.update(1)
            if on_done is not None:
                on_done(outcome)
    return [outcomes[s] for s in names]


def summary_table(outcomes: Sequence[GradeOutcome]) -> str:
    """A plain-text table: student, score, seconds, limit hit (or why it could not be graded)."""
    rows = [("student", "score", "seconds", "limit hit / problem")]
    for o in outcomes:
        score = "not graded" if o.score is None else f"{o.score:g} / {o.max_score:g}"
        rows.append((o.student, score, f"{o.seconds:.1f}", o.stopped or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
