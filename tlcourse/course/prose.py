"""Numbers typed into a lesson's prose: the ones that look measured, so a test can insist they are rendered.

A lesson states measured figures by rendering them from its own run (``IPython.display.Markdown`` in a
code cell). A number typed into a markdown cell is only right for one run; :func:`typed_numbers` finds the
ones that look like measurements (decimals, percentages, numbers with a unit of time or a ratio sign) in
the markdown cells of a py:percent source, so that ``tests/test_typed_numbers.py`` can check each against
a list of accepted facts (a paper's figure, a hyperparameter) and fail on any new one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import jupytext

# Decimals (0.935, .5, 2.2), and numbers followed by %, x, ×, s, ms, min, minutes or seconds.
_MEASURED = re.compile(
    r"(?<![\w.,\-/])(\d+\.\d+|\.\d+|\d+)(\s?(?:%|×|x(?![\w])|ms\b|s\b|min\b|minutes\b|seconds\b))?"
)
_CODE_SPAN = re.compile(r"`[^`]*`")
_MATH = re.compile(r"\$[^$]*\$")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class TypedNumber:
    """One number typed into a markdown cell: its text as written (``"0.935"``, ``"93%"``) and the cell."""

    text: str
    cell: int
    context: str


def _prose(markdown: str) -> str:
    """The markdown without code spans, math, link targets and HTML tags (numbers there are not prose)."""
    for pattern in (_CODE_SPAN, _MATH, _LINK_TARGET, _HTML_TAG):
        markdown = pattern.sub(" ", markdown)
    return markdown


def numbers_in(markdown: str) -> list[tuple[str, int]]:
    """``(text, offset)`` of every measured-looking number in ``markdown`` (plain integers are left out)."""
    found = []
    for match in _MEASURED.finditer(_prose(markdown)):
        number, unit = match.group(1), match.group(2)
        if unit is None and "." not in number:
            continue  # a plain integer: a count, a year, a layer number
        found.append((number + (unit or "").replace(" ", ""), match.start()))
    return found


def typed_numbers(source: str | os.PathLike[str]) -> list[TypedNumber]:
    """Measured-looking numbers typed into the markdown cells of a lesson source (``notebooks/NN_name.py``)."""
    notebook = jupytext.read(source)
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        prose = _prose(cell.source)
        for text, offset in numbers_in(cell.source):
            context = " ".join(prose[max(0, offset - 40) : offset + 40].split())
            found.append(TypedNumber(text=text, cell=index, context=context))
    return found
