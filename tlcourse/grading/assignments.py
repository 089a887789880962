"""The graded assignments: generate the student versions with nbgrader and check the committed ones.

The course root holds ``nbgrader_config.py``, the instructor versions in ``solutions/<assignment>/``
(nbgrader's *source* directory: solutions and hidden tests) and the student versions in
``assignments/<assignment>/`` (its *release* directory), which must be exactly what
``nbgrader generate_assignment`` makes from ``solutions/``. Generation runs in a temporary course
directory, so it leaves no ``gradebook.db`` behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_FILE",
    "GenerationError",
    "check_assignments",
    "course_config",
    "generate_assignments",
    "list_assignments",
    "make_api",
    "normalize_notebook",
]

CONFIG_FILE = "nbgrader_config.py"
SOURCE_DIR = "solutions"
RELEASE_DIR = "assignments"


class GenerationError(RuntimeError):
    """nbgrader could not generate an assignment (the message holds its log)."""


def _ensure_venv_on_path() -> None:
    # nbgrader migrates its gradebook by running the `alembic` executable, found on PATH.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def list_assignments(root: str | os.PathLike[str] = ".") -> list[str]:
    """Names of the assignments in ``<root>/solutions`` (folders holding a notebook), sorted."""
    source = Path(root) / SOURCE_DIR
    if not source.is_dir():
        raise FileNotFoundError(f"no {SOURCE_DIR}/ folder in {Path(root).resolve()}: run this from the course root")
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def course_config(root: str | os.PathLike[str] = ".", **overrides: Any) -> Any:
    """The traitlets ``Config`` of ``<root>/nbgrader_config.py`` with ``overrides`` merged in.

    Overrides are ``{"Section": {"trait": value}}`` keyword arguments, e.g.
    ``course_config(root, CourseDirectory={"root": "/tmp/course"}, ExecutePreprocessor={"timeout": 10})``.
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(root).resolve() / CONFIG_FILE
    config = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    config.merge(Config(overrides))
    return config


def make_api(config: Any) -> Any:
    """An ``nbgrader.apps.NbGraderAPI`` for ``config`` (see :func:`course_config`)."""
    _ensure_venv_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _generate_into(root: Path, assignments: Iterable[str], workdir: Path) -> Path:
    """Generate ``assignments`` from ``root/solutions`` in the course folder ``workdir``; returns its release dir."""
    shutil.copytree(root / SOURCE_DIR, workdir / SOURCE_DIR, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    config = course_config(
        root,
        CourseDirectory={"root": str(workdir), "db_url": f"sqlite:///{workdir / 'gradebook.db'}"},
    )
    api = make_api(config)
    for assignment in assignments:
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise GenerationError(f"nbgrader generate_assignment {assignment} failed:\n{result.get('log', '')}\n{result.get('error', '')}")
    return workdir / RELEASE_DIR


def generate_assignments(root: str | os.PathLike[str] = ".", assignments: Iterable[str] | None = None) -> list[Path]:
    """Regenerate ``<root>/assignments/<name>/`` from ``<root>/solutions/<name>/`` for each assignment (default: all).

    Each release folder is replaced as a whole; returns the folders written.
    """
    root = Path(root).resolve()
    names = list(assignments) if assignments is not None else list_assignments(root)
    written = []
    with tempfile.TemporaryDirectory(prefix="tlcourse_generate_") as tmp:
        release = _generate_into(root, names, Path(tmp))
        for name in names:
            target = root / RELEASE_DIR / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(release / name, target)
            for path in target.rglob("*"):  # nbgrader makes released files read-only; keep them editable in git
                path.chmod(path.stat().st_mode | 0o200)
            written.append(target)
    return written


def normalize_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A notebook as plain data for comparison: outputs and execution counts dropped, JSON key order ignored.

    nbgrader's release notebooks carry no volatile metadata (no timestamps; checksums depend only on the
    cell source), so everything else is compared.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return json.loads(json.dumps(nb, sort_keys=True))


def _files(folder: Path) -> set[str]:
    ignore = {".ipynb_checkpoints", "__pycache__"}
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not ignore.intersection(p.relative_to(folder).parts)
    }


def _describe_difference(name: str, committed: dict[str, Any], fresh: dict[str, Any]) -> str:
    if len(committed["cells"]) != len(fresh["cells"]):
        return f"{name}: {len(committed['cells'])} cells committed, {len(fresh['cells'])} generated"
    for i, (a, b) in enumerate(zip(committed["cells"], fresh["cells"])):
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            return f"{name}: cell {i} ({a.get('id', '?')}) differs in {', '.join(keys)}"
    return f"{name}: notebook metadata differs"


@dataclass
class CheckResult:
    """Outcome of :func:`check_assignments`: ``ok`` when the committed releases equal a fresh generation."""

    assignments: list[str]
    differences: list[str]

    @property
    def ok(self) -> bool:
        return not self.differences


def check_assignments(root: str | os.PathLike[str] = ".", assignments: Iterable[str] | None = None) -> CheckResult:
    """Generate every assignment afresh (in a temporary folder) and compare with ``<root>/assignments``."""
    root = Path(root).resolve()
    names = list(assignments) if assignments is not None else list_assignments(root)
    differences: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tlcourse_check_") as tmp:
        release = _generate_into(root, names, Path(tmp))
        for name in names:
            committed_dir, fresh_dir = root / RELEASE_DIR / name, release / name
            if not committed_dir.is_dir():
                differences.append(f"{name}: {RELEASE_DIR}/{name}/ is missing")
                continue
            committed_files, fresh_files = _files(committed_dir), _files(fresh_dir)
            for extra in sorted(committed_files - fresh_files):
                differences.append(f"{name}: {extra} is committed but not generated")
            for missing in sorted(fresh_files - committed_files):
                differences.append(f"{name}: {missing} is generated but not committed")
            for rel in sorted(committed_files & fresh_files):
                a, b = committed_dir / rel, fresh_dir / rel
                if rel.endswith(".ipynb"):
                    na, nb = normalize_notebook(a), normalize_notebook(b)
                    if na != nb:
                        differences.append(_describe_difference(f"{name}/{rel}", na, nb))
                elif a.read_bytes() != b.read_bytes():
                    differences.append(f"{name}/{rel}: contents differ")
        extra_dirs = sorted(p.name for p in (root / RELEASE_DIR).glob("*") if p.is_dir() and p.name not in names)
        if assignments is None:
            differences += [f"{d}: in {RELEASE_DIR}/ but has no {SOURCE_DIR}/{d}/" for d in extra_dirs]
    return CheckResult(names, differences)
