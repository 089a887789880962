"""The nbgrader configuration of a tlcourse course folder, shared by ``nbgrader_config.py`` files.

The public repository's ``nbgrader_config.py`` and the private folder made by ``tlcourse instructor init``
both call :func:`configure`, so both grade the same way: every autograde (``tlcourse grade``, ``nbgrader
autograde`` and Formgrader's button) executes submissions with
:class:`~tlcourse.grading.execute.SandboxedExecute`, reads unreadable files as blank submissions, and the
feedback leaves out the hidden tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["COURSE_ID", "configure", "configure_student", "exchange_root"]

COURSE_ID = "tlcourse"


def exchange_root() -> Path:
    """``$TLCOURSE_EXCHANGE``, else ``<user cache>/nbgrader_exchange``."""
    if os.environ.get("TLCOURSE_EXCHANGE"):
        return Path(os.environ["TLCOURSE_EXCHANGE"]).expanduser()
    from tlcourse.core.config import cache_dir  # TLCOURSE_CACHE, else the platform's user cache

    return cache_dir() / "nbgrader_exchange"


def _configure_exchange(c: Any) -> None:
    exchange = exchange_root()
    exchange.mkdir(parents=True, exist_ok=True)  # nbgrader requires a pre-existing exchange
    c.Exchange.root = str(exchange)
    c.Exchange.path_includes_course = True


def configure_student(c: Any) -> Any:
    """Fill ``c`` for a student's server on a classroom hub: the course id, the exchange, who submits; returns ``c``."""
    c.CourseDirectory.course_id = COURSE_ID
    if os.environ.get("JUPYTERHUB_USER"):  # the hub's name for the student, even where servers share one account
        c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
    _configure_exchange(c)
    return c


def configure(c: Any, root: str | os.PathLike[str], *, source: str = "solutions", release: str = "assignments") -> Any:
    """Fill the traitlets config ``c`` for the course folder ``root``; returns ``c``."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        GetGrades,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    from tlcourse.grading.execute import SandboxedExecute
    from tlcourse.grading.feedback import HideHiddenTests
    from tlcourse.grading.reader import TolerantNotebookExporter

    root = Path(root).resolve()
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = source
    c.CourseDirectory.release_directory = release
    _configure_exchange(c)

    # The heaviest graded cell trains LeNet-5 for 5 epochs on 3,500 digits under NBGRADER_EXECUTION:
    # about 15 s on a busy 2-core CPU. 180 s leaves a 10x margin and still stops an endless loop.
    c.ExecutePreprocessor.timeout = int(os.environ.get("TLCOURSE_GRADING_TIMEOUT", "180"))

    # Autograde: nbgrader's own steps, with its Execute replaced by the sandboxed one (same order).
    c.Autograde.autograde_preprocessors = [
        SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
    ]
    c.Autograde.exporter_class = TolerantNotebookExporter
    c.SandboxedExecute.shutdown_kernel = "immediate"  # the sandbox is thrown away: no need to wait for a clean exit
    # Feedback: nbgrader's steps, then the hidden tests taken out.
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
    return c
