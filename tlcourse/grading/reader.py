"""The notebook reader of ``autograde``: a submission that is not a readable notebook is graded as blank.

nbgrader gives up on a student whose file is not notebook JSON, leaving no grade. With
:class:`TolerantNotebookExporter` (``Autograde.exporter_class`` in ``nbgrader_config.py``) such a file is
replaced, for grading only, by the released blank notebook, marked so that the sandboxed Execute step
records the reason in the feedback; the student gets a grade record of 0 and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.exporters.exporter import ResourcesDict

__all__ = ["TolerantNotebookExporter", "read_problem"]

UNREADABLE_KEY = "tlcourse_unreadable"


def read_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a readable notebook, or ``None`` when it is one."""
    try:
        # Only what nbgrader cannot read at all: a notebook with minor schema slips still grades fine.
        nb = nbformat.read(str(path), as_version=4)
        if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) and "cell_type" in c for c in nb["cells"]):
            return "it has no list of cells"
    except Exception as exc:  # JSON errors, schema errors, wrong encodings: all mean "not a notebook"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{type(exc).__name__}: {text[:200]}"
    return None


class TolerantNotebookExporter(NotebookExporter):
    """A ``NotebookExporter`` that reads an unreadable submission as the released notebook, marked."""

    def from_filename(self, filename: str, resources: dict[str, Any] | None = None, **kw: Any) -> tuple[str, dict[str, Any]]:
        problem = read_problem(filename)
        if problem is None:
            return super().from_filename(filename, resources, **kw)
        coursedir = self.parent.coursedir
        info = (resources or {}).get("nbgrader", {})
        release = Path(coursedir.format_path(coursedir.release_directory, ".", info.get("assignment", ""))) / Path(filename).name
        if not release.is_file():
            raise FileNotFoundError(f"{filename} is not a readable notebook ({problem}) and there is no released {release} to grade instead")
        self.log.warning("%s is not a readable notebook (%s): grading the released blank notebook instead", filename, problem)
        nb = nbformat.read(str(release), as_version=4)
        nb.metadata[UNREADABLE_KEY] = problem
        resources = ResourcesDict() if resources is None else resources
        if not resources.get("metadata"):
            resources["metadata"] = ResourcesDict()
        resources["metadata"]["name"] = Path(filename).stem
        resources["metadata"]["path"] = str(Path(filename).parent)
        return self.from_notebook_node(nb, resources=resources, **kw)
