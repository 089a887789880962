"""Where a lesson's time goes: the seconds of each cell, read from an executed notebook (papermill's metadata).

``tlcourse run`` writes ``<lesson>.cells.json`` next to each executed notebook; ``benchmarks/course_time.py``
prints the per-lesson table and each lesson's slowest cells from a run folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tlcourse.core.files import atomic_write_text

__all__ = ["CellTiming", "cell_timings", "last_run_seconds", "save_cell_timings", "slowest_cells_table", "timings_path"]


@dataclass(frozen=True)
class CellTiming:
    """One executed code cell: its index in the notebook, seconds, and its first line of code."""

    index: int
    seconds: float
    first_line: str


def _first_line(source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    text = lines[0] if lines else (source.strip().splitlines() or [""])[0]
    return text if len(text) <= 70 else text[:67] + "..."


def cell_timings(notebook: str | os.PathLike[str]) -> list[CellTiming]:
    """The executed code cells of ``notebook`` with the seconds papermill recorded, in notebook order."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    timings = []
    for index, cell in enumerate(nb.cells):
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.cell_type == "code" and duration is not None:
            timings.append(CellTiming(index, float(duration), _first_line(cell.source)))
    return timings


def timings_path(notebook: str | os.PathLike[str]) -> Path:
    """``<notebook stem>.cells.json`` beside an executed notebook."""
    notebook = Path(notebook)
    return notebook.with_name(f"{notebook.stem}.cells.json")


def save_cell_timings(notebook: str | os.PathLike[str], seconds: float) -> Path:
    """Write the lesson's ``seconds`` and each cell's beside ``notebook`` (:func:`timings_path`); returns the path."""
    record = {"seconds": round(seconds, 1), "cells": [asdict(t) for t in cell_timings(notebook)]}
    return atomic_write_text(timings_path(notebook), json.dumps(record, indent=1) + "\n")


def last_run_seconds(notebook: str | os.PathLike[str]) -> float | None:
    """How long the lesson took when it last wrote ``notebook`` (``None`` if never, or unreadable)."""
    try:
        return float(json.loads(timings_path(notebook).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def slowest_cells_table(timings: list[CellTiming], top: int = 5) -> str:
    """A Markdown table of the ``top`` slowest cells with their share of the lesson's time."""
    total = sum(t.seconds for t in timings) or 1.0
    rows = ["| cell | seconds | share | code |", "| ---: | ---: | ---: | --- |"]
    for t in sorted(timings, key=lambda t: t.seconds, reverse=True)[:top]:
        rows.append(f"| {t.index} | {t.seconds:.1f} | {t.seconds / total:.0%} | `{t.first_line.replace('|', '/')}` |")
    return "\n".join(rows)
