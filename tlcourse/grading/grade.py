"""``tlcourse grade``: autograde a class in parallel, each submission in the sandbox, and summarise it.

``jobs`` worker processes each load the course's nbgrader configuration once and call nbgrader's own
``NbGraderAPI.autograde(assignment, student)`` for one student after another, so grading is nbgrader's
(the configuration puts the sandbox in its Execute step), one student's failure cannot stop another's, and
nbgrader's two seconds of start-up are paid once per worker, not once per student. The workers share the
gradebook; SQLite serialises their short writes (each waits up to a minute for the lock).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tlcourse.grading.config import COURSE_ID

__all__ = ["GradeOutcome", "grade_class", "gradebook_url", "list_submissions", "summary_table"]


@dataclass
class GradeOutcome:
    """One student's autograde: the gradebook's code score, the seconds it took and any limit it hit."""

    student: str
    score: float | None
    max_score: float | None
    seconds: float
    stopped: str | None
    returncode: int  # 0 when nbgrader finished without an error
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


def gradebook_url(config: object) -> str:
    """The course's gradebook URL, made to wait up to a minute for SQLite's lock (parallel workers share it)."""
    url = config.CourseDirectory.get("db_url") if "db_url" in config.CourseDirectory else ""  # type: ignore[attr-defined]
    if not url:
        url = f"sqlite:///{Path(config.CourseDirectory.root) / 'gradebook.db'}"  # type: ignore[attr-defined]
    if url.startswith("sqlite") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + "timeout=60"  # parallel workers wait for SQLite's lock
    return url


def _record(db_url: str, assignment: str, student: str) -> tuple[float | None, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id=COURSE_ID) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return None, None
        return submission.code_score, submission.max_code_score


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


_WORKER: dict[str, object] = {}


def _start_worker(root: str, overrides: dict[str, dict[str, object]]) -> None:
    """Process initializer: one nbgrader API for the course, kept for every student this worker grades."""
    import warnings

    from tlcourse.grading.assignments import course_config, make_api

    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy's notes on nbgrader's own sessions
    warnings.filterwarnings("ignore", message=".*not in session.*")
    _WORKER["api"] = make_api(course_config(root, **overrides))


def _autograde(assignment: str, student: str) -> tuple[str, bool, str, float]:
    """In a worker: autograde one student; (student, success, nbgrader's log and error, seconds)."""
    start = time.perf_counter()
    try:
        result = _WORKER["api"].autograde(assignment, student, force=True, create=True)  # type: ignore[attr-defined]
        success, log = bool(result["success"]), (result.get("log") or "") + (result.get("error") or "")
    except Exception as exc:  # nbgrader's own failure (not the student's code, which runs in the sandbox)
        success, log = False, f"{type(exc).__name__}: {exc}"
    return student, success, log, time.perf_counter() - start


def _outcome(root: Path, assignment: str, db_url: str, student: str, success: bool, log: str, seconds: float) -> GradeOutcome:
    score, max_score = _record(db_url, assignment, student)
    stopped = _stop_reason(root, assignment, student)
    if not success and stopped is None:
        errors = [line for line in log.splitlines() if "[ERROR]" in line or "Error" in line]
        stopped = f"nbgrader failed: {errors[-1].strip() if errors else 'see the log'}"
    return GradeOutcome(student, score, max_score, seconds, stopped, 0 if success else 1, log)


def grade_class(
    root: str | os.PathLike[str],
    assignment: str,
    students: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
    overrides: dict[str, dict[str, object]] | None = None,
    progress: bool = True,
    on_done: Callable[[GradeOutcome], None] | None = None,
) -> list[GradeOutcome]:
    """Autograde ``students`` (default: every submission) of ``assignment`` with ``jobs`` parallel workers.

    ``overrides`` are nbgrader settings, e.g. ``{"SandboxedExecute": {"memory_limit": "2G"}}``. Returns one
    outcome per student, in the order of ``students``.
    """
    from tqdm.auto import tqdm

    from tlcourse.grading.assignments import course_config

    root = Path(root).resolve()
    names = list(students) if students is not None else list_submissions(root, assignment)
    jobs = max(1, min(jobs or os.cpu_count() or 1, max(1, len(names))))
    db_url = gradebook_url(course_config(root))
    settings = {section: dict(values) for section, values in (overrides or {}).items()}
    settings.setdefault("CourseDirectory", {})["db_url"] = db_url
    # Share the cores: with 2 workers on 2 cores, each kernel computes with 1 thread (torch slows down
    # sharply when two processes compete for the same cores).
    settings.setdefault("SandboxedExecute", {}).setdefault("threads", max(1, (os.cpu_count() or 1) // jobs))
    outcomes: dict[str, GradeOutcome] = {}
    attempts = dict.fromkeys(names, 0)
    context = multiprocessing.get_context("spawn")
    with tqdm(total=len(names), desc=f"grading {assignment}", unit="student", disable=not progress) as bar:

        def done(outcome: GradeOutcome) -> None:
            outcomes[outcome.student] = outcome
            bar.update(1)
            if on_done is not None:
                on_done(outcome)

        pending = list(names)
        while pending:  # a worker that dies (it should not: student code runs in the sandbox) costs a new pool
            with ProcessPoolExecutor(min(jobs, len(pending)), mp_context=context, initializer=_start_worker, initargs=(str(root), settings)) as pool:
                futures = {pool.submit(_autograde, assignment, student): student for student in pending}
                broken = []
                for future in as_completed(futures):
                    student = futures[future]
                    try:
                        done(_outcome(root, assignment, db_url, *future.result()))
                    except BrokenProcessPool:
                        attempts[student] += 1
                        if attempts[student] >= 2:
                            done(GradeOutcome(student, None, None, 0.0, "the grading worker died twice on this submission", 1))
                        else:
                            broken.append(student)
            pending = broken
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
