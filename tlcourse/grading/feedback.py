"""Feedback without the hidden tests: a ``GenerateFeedback`` preprocessor.

nbgrader's feedback is the autograded notebook as HTML, hidden tests and their tracebacks included, so a
student who reads it learns the hidden tests. :class:`HideHiddenTests` removes each hidden block from the
cell's source and replaces any error raised inside it by "a hidden test failed" (an error raised by the
visible part keeps its message). Errors written by the grading sandbox (``GradingStopped``) are kept: they
say why grading stopped.
"""

from __future__ import annotations

import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from tlcourse.grading.execute import STOPPED

__all__ = ["HideHiddenTests", "HIDDEN_NOTE"]

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: not shown)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_LINE = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-[^>]*>), line (\d+)")
_ARROW_LINE = re.compile(r"^-+>\s*(\d+)")


def _hidden_lines(source: str) -> set[int]:
    """1-based line numbers inside hidden-test blocks (markers included)."""
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip().startswith(BEGIN):
            inside = True
        if inside:
            hidden.add(number)
        if line.strip().startswith(END):
            inside = False
    return hidden


def _failing_line(traceback: list[str]) -> int | None:
    """The cell's own line where the error was raised, read from an IPython traceback (first frame)."""
    for entry in traceback:
        text = _ANSI.sub("", entry)
        if "Cell In" not in text and "<ipython-input" not in text:
            continue
        arrows = [int(m.group(1)) for line in text.splitlines() if (m := _ARROW_LINE.match(line.strip()))]
        if arrows:
            return arrows[-1]
        match = _CELL_LINE.search(text)
        if match:
            return int(match.group(1))
    return None


def hide_hidden_tests(source: str) -> str:
    """``source`` with every hidden-test block replaced by one line saying it is hidden."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if line.strip().startswith(BEGIN):
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif inside and line.strip().startswith(END):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests, and what their failures would reveal, from the feedback."""

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        if cell.cell_type != "code" or BEGIN not in cell.source:
            return cell, resources
        hidden = _hidden_lines(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error" or output.get("ename") == STOPPED:
                continue
            line = _failing_line(output.get("traceback", []))
            if line is None or line in hidden or line > max(hidden, default=0):
                output["evalue"] = "a hidden test failed"
                output["traceback"] = [f"{output.get('ename', 'Error')}: a hidden test failed (the hidden tests are not shown)"]
        cell.source = hide_hidden_tests(cell.source)
        return cell, resources
