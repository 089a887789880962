"""The instructor's private course folder: graded source, gradebook and term seed outside the public repository.

The public repository's ``solutions/`` is the self-study key: anyone who clones it reads every solution
and hidden test. To grade for credit, ``tlcourse instructor init DIR`` copies it into ``DIR/source/``
(nbgrader's source directory) with a new *term seed*: every hidden-test block sets
``TERM_SEED = 0  # tlcourse:term-seed`` and draws its cases from it, so this term's hidden cases are not the
public ones. ``DIR`` gets its own ``nbgrader_config.py`` (the same grading setup as the public one), its own
``gradebook.db`` with the assignments recorded, and ``DIR/release/`` (identical to the public
``assignments/``, since the release holds no hidden test). Keep ``DIR`` out of any public place.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["PrivateCourse", "TERM_SEED_RE", "init_private_course", "set_term_seed"]

TERM_SEED_RE = re.compile(r"^(?P<head>[ \t]*TERM_SEED\s*=\s*)(?P<seed>-?\d+)(?P<tail>\s*#\s*tlcourse:term-seed\b.*)$", re.MULTILINE)
SOURCE, RELEASE = "source", "release"

CONFIG_TEMPLATE = '''"""nbgrader configuration of a PRIVATE tlcourse grading folder (made by `tlcourse instructor init`).

source/ holds the solutions and this term's hidden tests, gradebook.db the grades: never publish this
folder. Run `tlcourse grade ASSIGNMENT` (or any nbgrader command) from here.
"""

from pathlib import Path

from tlcourse.grading.config import configure

configure(get_config(), Path(__file__).resolve().parent, source="{source}", release="{release}")  # noqa: F821
'''


def set_term_seed(source: str, seed: int) -> tuple[str, int]:
    """``source`` with every ``TERM_SEED = N  # tlcourse:term-seed`` line set to ``seed``; and how many changed."""
    return TERM_SEED_RE.subn(lambda m: f"{m['head']}{seed}{m['tail']}", source)


@dataclass
class PrivateCourse:
    """What :func:`init_private_course` made."""

    root: Path
    term_seed: int
    assignments: list[str]
    seeded_cells: int


def _reseed_notebook(path: Path, seed: int) -> int:
    nb = nbformat.read(str(path), as_version=4)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, n = set_term_seed(cell.source, seed)
            changed += n
    nbformat.write(nb, str(path))
    return changed


def init_private_course(target: str | os.PathLike[str], public_root: str | os.PathLike[str] = ".", term_seed: int | None = None) -> PrivateCourse:
    """Make the private grading folder ``target`` from the public course at ``public_root``."""
    from tlcourse.grading.assignments import SOURCE_DIR, course_config, list_assignments, make_api

    public_root, target = Path(public_root).resolve(), Path(target).absolute()
    if target.resolve() == public_root or public_root in target.resolve().parents:
        raise ValueError(f"{target} is inside the public course {public_root}: put the private folder elsewhere")
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty: choose a new folder (one per term)")
    seed = secrets.randbelow(2**31) if term_seed is None else int(term_seed)
    names = list_assignments(public_root)
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)  # solutions, this term's hidden tests and the gradebook: the instructor's account only
    shutil.copytree(public_root / SOURCE_DIR, target / SOURCE, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    seeded = sum(_reseed_notebook(nb, seed) for name in names for nb in sorted((target / SOURCE / name).glob("*.ipynb")))
    (target / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(source=SOURCE, release=RELEASE))
    (target / ".gitignore").write_text("# a private grading folder: nothing here is for a public repository\n*\n")
    api = make_api(course_config(target))
    for name in names:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed in {target}:\n{result.get('log', '')}\n{result.get('error', '')}")
    return PrivateCourse(target, seed, names, seeded)
