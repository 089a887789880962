"""Lessons as text: each ``NN_name.py`` (Jupytext ``py:percent``) is paired with its ``NN_name.ipynb``.

The ``.py`` file is the one developers edit, review and lint; the ``.ipynb`` is what students open
and papermill runs, committed without outputs. :func:`sync_lessons` regenerates the notebooks from
the sources with Jupytext (keeping cell ids where cells are unchanged); :func:`pair_problems` says
how a pair differs (cells, tags) or what a notebook must not hold (outputs). Every lesson's first code cell
is the Colab install cell (:mod:`tlcourse.course.colab`): the check reports one that is not, and sync
inserts it into the source.
"""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import nbformat

from tlcourse.course.colab import colab_problem, insert_colab_cell
from tlcourse.course.lessons import notebooks_dir

__all__ = ["lesson_sources", "pair_problems", "sync_lessons", "unpaired_notebooks"]


def lesson_sources(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The lesson sources ``NN_name.py`` of the lessons folder, in order."""
    return sorted(notebooks_dir(folder).glob("[0-9][0-9]_*.py"))


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in notebook.cells]


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(empty)"
    return line if len(line) <= 60 else line[:57] + "..."


def unpaired_notebooks(folder: str | os.PathLike[str] | None = None) -> list[str]:
    """Lesson notebooks that have no ``.py`` source (each one a problem to report)."""
    return [f"{p.name} has no source {p.with_suffix('.py').name}: write it (e.g. `jupytext --to py:percent {p.name}`)"
            for p in sorted(notebooks_dir(folder).glob("[0-9][0-9]_*.ipynb")) if not p.with_suffix(".py").is_file()]


def pair_problems(source: Path) -> list[str]:
    """What is wrong with one pair: a missing notebook, no Colab cell, cells that differ, outputs kept; empty when in sync."""
    notebook_path = source.with_suffix(".ipynb")
    if not notebook_path.is_file():
        return [f"{notebook_path.name} is missing: run `tlcourse lessons sync`"]
    text = _cells(jupytext.read(source))
    notebook = nbformat.read(notebook_path, as_version=4)
    cells = _cells(notebook)
    colab = colab_problem(source.name, [cell_source for kind, cell_source, _ in text if kind == "code"])
    problems = [colab] if colab else []
    for index, (want, have) in enumerate(zip(text, cells)):
        if want != have:
            problems.append(f"{notebook_path.name}: cell {index} ({_first_line(want[1])!r}) differs from {source.name}")
            break
    if len(text) != len(cells):
        problems.append(f"{notebook_path.name} has {len(cells)} cells, {source.name} {len(text)}")
    with_outputs = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    if with_outputs:
        problems.append(f"{notebook_path.name} keeps outputs in cells {with_outputs}: commit notebooks without outputs")
    return problems


def sync_lessons(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Insert the Colab cell where a source lacks it, then regenerate every notebook whose pair differs; returns those written."""
    written = []
    for source in lesson_sources(folder):
        if insert_colab_cell(source):
            print(f"put the Colab install cell into {source}")
        if not pair_problems(source):
            continue
        notebook = jupytext.read(source)
        target = source.with_suffix(".ipynb")
        if target.is_file():  # keep the ids of unchanged cells (each id once) and the notebook's own metadata
            old = nbformat.read(target, as_version=4)
            old_ids: dict[tuple[str, str], list[str]] = {}
            for c in old.cells:
                old_ids.setdefault((c.cell_type, c.source), []).append(c.get("id"))
            for cell in notebook.cells:
                ids = old_ids.get((cell.cell_type, cell.source))
                if ids and ids[0]:
                    cell["id"] = ids.pop(0)
            notebook.metadata = {**old.metadata, **{k: v for k, v in notebook.metadata.items() if k != "jupytext"}}
        notebook.metadata.pop("jupytext", None)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        jupytext.write(notebook, target, fmt="ipynb")
        written.append(target)
    return written
