"""Shared fixtures: where the offline data lives, and the rule that CI never skips a data test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def wait_until_up(ready: Callable[[], object], process: subprocess.Popen, what: str, log: Path, seconds: float = 90) -> None:
    """Poll ``ready()`` until it returns without raising; fail with ``log`` named if ``process`` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            ready()
            return
        except Exception:
            if process.poll() is not None:
                pytest.fail(f"{what} exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not answer within {seconds:.0f} s: see {log}")
            time.sleep(0.5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _candidate_roots() -> list[Path]:
    roots = []
    if os.environ.get("TLCOURSE_DATA"):
        roots.append(Path(os.environ["TLCOURSE_DATA"]))
    roots.append(REPO.parent / "shared" / "data")
    return roots


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The folder holding ``hymenoptera_data/``; skips locally when absent, fails in CI."""
    for root in _candidate_roots():
        if (root / "hymenoptera_data" / "train").is_dir():
            return root
    message = (
        "ants-vs-bees data not found in "
        + ", ".join(str(r) for r in _candidate_roots())
        + "; set TLCOURSE_DATA to the folder that holds hymenoptera_data/"
    )
    if IN_CI:
        pytest.fail("CI must run data tests: " + message)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def course_cache(tmp_path_factory: pytest.TempPathFactory):
    """The course's cache folder (features, checkpoints) in a temporary folder for the session, not the user's.

    Lessons run by the tests inherit it, so that a test never reads what an earlier run on this machine cached.
    """
    from tlcourse.core.config import data_root

    previous = {name: os.environ.get(name) for name in ("TLCOURSE_CACHE", "TLCOURSE_DATA")}
    os.environ["TLCOURSE_DATA"] = str(data_root())  # the data stays where it was (its default is in the cache)
    os.environ["TLCOURSE_CACHE"] = str(tmp_path_factory.mktemp("tlcourse-cache"))
    yield Path(os.environ["TLCOURSE_CACHE"])
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with TLCOURSE_OFFLINE=1."""
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")


class LessonRunner:
    """Runs each lesson at most once per test session in smoke mode (offline in CI), caching the outcome."""

    def __init__(self, output: Path) -> None:
        from tlcourse.course.lessons import list_lessons

        self.output = output
        self.lessons = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}
        self._runs: dict = {}

    def __call__(self, lesson_id: str):
        """The :class:`tlcourse.course.lessons.LessonRun` of ``lesson_id`` (e.g. "04_resnet") in smoke mode on the CPU."""
        from tlcourse.course.lessons import run_lesson

        if lesson_id not in self._runs:
            self._runs[lesson_id] = run_lesson(self.lessons[lesson_id], self.output, smoke=True, device="cpu")
        return self._runs[lesson_id]

    def results(self, lesson_id: str) -> dict:
        """The results a lesson recorded; fails the test (with the error) when the lesson failed."""
        run = self(lesson_id)
        if not run.ok:
            pytest.fail(f"{lesson_id} failed in smoke mode: {run.error} (see {run.output_notebook})")
        return run.results


@pytest.fixture(scope="session")
def smoke_lesson(tmp_path_factory: pytest.TempPathFactory) -> LessonRunner:
    """``smoke_lesson("01_lenet")`` -> LessonRun; ``smoke_lesson.results("01_lenet")`` -> its results dict."""
    return LessonRunner(tmp_path_factory.mktemp("smoke_lessons"))
