"""The first code cell of every lesson: on Google Colab it installs the course; anywhere else it does nothing.

Its text is :data:`COLAB_CELL_TEMPLATE` filled with the repository's address, declared once in pyproject.toml
(``[project.urls] Source``). ``tlcourse lessons check`` reports a lesson whose first code cell differs from
:func:`colab_cell`; ``tlcourse lessons sync`` inserts (or updates) it in the ``.py`` source. The cell comes
before the cell tagged ``parameters``, so papermill's injected parameters still follow that one.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["COLAB_CELL_TEMPLATE", "colab_cell", "colab_problem", "colab_url", "insert_colab_cell", "source_url"]

COLAB_CELL_TEMPLATE = """\
# On Google Colab, install the course first (anywhere else this cell does nothing).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tlcourse @ git+{url}"], check=True)"""

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_CELL_MARKER = re.compile(r"^# %%(.*)$", re.M)
_NOT_CODE = re.compile(r"\[(markdown|md|raw)\]")


def source_url(pyproject: Path = _PYPROJECT) -> str:
    """The repository's address, ``[project.urls] Source``: from pyproject.toml in a checkout, else the installed metadata."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata says the same
        tomllib = None
    if tomllib is not None and pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "tlcourse" and "Source" in project.get("urls", {}):
            return str(project["urls"]["Source"]).rstrip("/")
    for entry in metadata.metadata("tlcourse").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source":
            return url.strip().rstrip("/")
    raise LookupError("tlcourse declares no [project.urls] Source in pyproject.toml (reinstall it: pip install -e .)")


def colab_cell(url: str | None = None) -> str:
    """The text of the Colab install cell for the repository at ``url`` (default: :func:`source_url`)."""
    return COLAB_CELL_TEMPLATE.format(url=url or source_url())


def colab_url(notebook: str, url: str | None = None, branch: str = "main") -> str:
    """Colab's address of a lesson notebook on GitHub, e.g. ``colab_url("01_lenet.ipynb")``."""
    repository = (url or source_url()).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/notebooks/{notebook}"


def _first_code_cell(text: str) -> tuple[int, int] | None:
    """Start and end offsets (in a py:percent text) of its first code cell, marker included."""
    markers = list(_CELL_MARKER.finditer(text))
    for index, marker in enumerate(markers):
        if not _NOT_CODE.search(marker.group(1)):
            end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
            return marker.start(), end
    return None


def _insertion_point(text: str) -> int:
    """Where a new Colab cell goes: right after the title cell, else before the first cell."""
    markers = list(_CELL_MARKER.finditer(text))
    if not markers:
        return len(text)
    if _NOT_CODE.search(markers[0].group(1)) and len(markers) > 1:
        return markers[1].start()
    return markers[0].start()


def colab_problem(name: str, code_cells: list[str]) -> str | None:
    """What is wrong with a lesson's first code cell (given its code cells' sources), or None when it is the Colab cell."""
    if code_cells and code_cells[0] == colab_cell():
        return None
    return (f"{name}: the first code cell is not the Colab install cell (tlcourse.course.colab.colab_cell): "
            "run `tlcourse lessons sync` to insert it")  # fmt: skip


def insert_colab_cell(source: Path) -> bool:
    """Make the first code cell of a py:percent lesson the Colab cell (replacing an older one); True if changed."""
    text = source.read_text()
    cell = f"# %%\n{colab_cell()}\n\n"
    span = _first_code_cell(text)
    first_line = COLAB_CELL_TEMPLATE.splitlines()[0]
    if span is not None and text[span[0] : span[1]].split("\n", 2)[1:2] == [first_line]:  # an older Colab cell, only
        new = text[: span[0]] + cell + text[span[1] :]
    else:
        at = _insertion_point(text)
        new = text[:at] + cell + text[at:] if at < len(text) else text.rstrip("\n") + "\n\n" + cell.rstrip("\n") + "\n"
    if new == text:
        return False
    source.write_text(new)
    return True
