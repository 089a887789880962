"""Markdown tables of measured rows, for lessons that render their results with ``IPython.display.Markdown``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table: a ``header`` row, then one line per row (cells written with ``str``).

    ``align`` gives one letter per column, ``"l"`` (left, the default for missing letters) or ``"r"``
    (right, for numbers). Cells must not contain ``|``.
    """
    if any(a not in "lr" for a in align):
        raise ValueError(f"align takes the letters 'l' and 'r' only, got {align!r}")
    rule = ["---:" if i < len(align) and align[i] == "r" else "---" for i in range(len(header))]
    lines = [list(header), rule, *([str(cell) for cell in row] for row in rows)]
    for line in lines[2:]:
        if len(line) != len(header):
            raise ValueError(f"a row has {len(line)} cells, the header {len(header)}: {line}")
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
