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


def _genuine_stop(output: NotebookNode) -> bool:
    """An error written by the sandboxed Execute step (one traceback line), not one a student raised."""
    return output.get("ename") == STOPPED and len(output.get("traceback", [])) == 1


def _scrub(text: str, hidden: set[str]) -> str:
    """``text`` without the lines that quote a hidden test."""
    return "\n".join(line for line in text.split("\n") if not any(h in _ANSI.sub("", line) for h in hidden))


def _scrub_output(output: NotebookNode, hidden: set[str]) -> None:
    if "text" in output and isinstance(output["text"], str):
        output["text"] = _scrub(output["text"], hidden)
    if "evalue" in output:
        output["evalue"] = _scrub(output["evalue"], hidden)
    if "traceback" in output:
        output["traceback"] = [_scrub(entry, hidden) for entry in output["traceback"]]
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime == "application/json":
            output["data"][mime] = _scrub(value if isinstance(value, str) else "".join(value), hidden)


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests, and what their failures would reveal, from the feedback.

    In every cell, output lines that quote a hidden test are dropped (a student's code may print the
    history of executed cells, and tracebacks show the lines around a failure); in the cells that hold
    hidden tests, an error raised inside the hidden block becomes "a hidden test failed", and the block
    itself is replaced by one line.
    """

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        hidden = set()
        for cell in nb.cells:
            if cell.cell_type == "code" and BEGIN in cell.source:
                lines = cell.source.splitlines()
                hidden |= {lines[n - 1].strip() for n in _hidden_lines(cell.source)}
        # the markers too: a traceback's context lines would otherwise show where the hidden block starts
        self._hidden = {line for line in hidden if len(line) >= 12}
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        if cell.cell_type != "code":
            return cell, resources
        hidden_here = _hidden_lines(cell.source) if BEGIN in cell.source else set()
        for output in cell.get("outputs", []):
            if hidden_here and output.get("output_type") == "error" and not _genuine_stop(output):
                line = _failing_line(output.get("traceback", []))
                if line is None or line in hidden_here or line > max(hidden_here):
                    output["evalue"] = "a hidden test failed"
                    output["traceback"] = [f"{output.get('ename', 'Error')}: a hidden test failed (the hidden tests are not shown)"]
            _scrub_output(output, getattr(self, "_hidden", set()))
        if hidden_here:
            cell.source = hide_hidden_tests(cell.source)
        return cell, resources
