"""Find the course's lessons and execute them headless with papermill, collecting their results."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tlcourse.core.files import atomic_write_text
from tlcourse.core.lookup import UnknownNameError, unknown_name_message
from tlcourse.course.results import to_jsonable
from tlcourse.course.timing import save_cell_timings

_LESSON_FILE = re.compile(r"^(\d\d)_(.+)\.ipynb$")
# Keys every lesson records that the table shows in their own columns, not among the results.
_CONTEXT_KEYS = ("dataset", "device", "smoke", "seed")


@dataclass(frozen=True)
class Lesson:
    """One lesson notebook, e.g. ``01_lenet.ipynb`` -> number "01", name "lenet"."""

    number: str
    name: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.number}_{self.name}"


@dataclass
class LessonRun:
    """The outcome of executing one lesson."""

    lesson: str
    ok: bool
    seconds: float
    output_notebook: str
    results_path: str
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def notebooks_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The lessons folder: ``explicit``, else ``./notebooks``, else the one beside the package."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "notebooks", Path(__file__).resolve().parents[2] / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("[0-9][0-9]_*.ipynb")):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"No lessons (NN_name.ipynb) found in {searched}. Run tlcourse from the course folder "
        "(the clone of the repository) or pass --notebooks DIR."
    )


def list_lessons(folder: str | os.PathLike[str] | None = None) -> list[Lesson]:
    """All lessons in the folder, in course order."""
    found = []
    for path in sorted(notebooks_dir(folder).glob("*.ipynb")):
        match = _LESSON_FILE.match(path.name)
        if match:
            found.append(Lesson(number=match.group(1), name=match.group(2), path=path))
    return found


def select_lessons(lessons: Sequence[Lesson], wanted: Iterable[str]) -> list[Lesson]:
    """Pick lessons by number ("1", "01"), name ("lenet") or id ("01_lenet"); all when none given."""
    wanted = list(wanted)
    if not wanted:
        return list(lessons)
    chosen: list[Lesson] = []
    for key in wanted:
        key = key.removesuffix(".ipynb")
        matches = [
            lesson
            for lesson in lessons
            if key in (lesson.id, lesson.name) or (key.isdigit() and int(key) == int(lesson.number))
        ]
        if not matches:
            raise UnknownNameError(unknown_name_message("lesson", key, [lesson.id for lesson in lessons]))
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def default_runs(smoke: bool) -> Path:
    """Where ``tlcourse run`` leaves executed lessons (and ``tlcourse site`` reads them): ``runs/full`` or ``runs/smoke``."""
    return Path("runs") / ("smoke" if smoke else "full")


def lesson_kernel_manager(folder: str) -> type:
    """The kernel manager ``run_lesson`` gives papermill: the lesson's own kernel, as JupyterLab would start it.

    * Figures drawn inline, into the notebook: ``MPLBACKEND`` (``Agg`` for headless tests) is left out of the
      kernel's environment, and only of that one process's.
    * On POSIX, Unix sockets in ``folder`` instead of TCP: ipykernel warns on every start that TCP carries
      code and outputs in plain text; local sockets in a private temporary folder reach no network at all.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, Unicode

    class LessonKernelManager(AsyncKernelManager):
        if os.name == "posix":
            transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc")
            ip = Unicode(os.path.join(folder, "kernel"))

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["env"] = {k: v for k, v in (kw.get("env") or os.environ).items() if k != "MPLBACKEND"}
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return LessonKernelManager


def run_lesson(
    lesson: Lesson,
    output_dir: str | os.PathLike[str],
    *,
    smoke: bool = False,
    seed: int = 0,
    device: str = "auto",
    parameters: dict[str, Any] | None = None,
    timeout: int | None = None,
    progress: bool | dict[str, Any] = False,
) -> LessonRun:
    """Execute one lesson with papermill into ``output_dir`` and read the results it recorded.

    ``progress``: papermill's bar over the cells (``True``, or a dict of tqdm arguments such as ``desc``).
    """
    import papermill

    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    out_notebook = output_dir / lesson.path.name
    results_path = output_dir / f"{lesson.id}.json"
    results_path.unlink(missing_ok=True)
    params = {"SMOKE": smoke, "SEED": seed, "DEVICE": device, "RESULTS_PATH": str(results_path)}
    params.update(parameters or {})
    start = time.perf_counter()
    error = None
    try:
        with tempfile.TemporaryDirectory(prefix="tlcourse-kernel-") as sockets:
            papermill.execute_notebook(
                str(lesson.path),
                str(out_notebook),
                parameters=params,
                cwd=str(lesson.path.parent),
                progress_bar=progress,
                execution_timeout=timeout,
                kernel_manager_class=lesson_kernel_manager(sockets),
                # the lesson's results are saved by its own cells: stopping its kernel at once instead of asking
                # it to shut down (torch's teardown) saves about 1.5 s a lesson (measured side by side)
                shutdown_kernel="immediate",
            )
    except Exception as exc:  # papermill raises PapermillExecutionError, kernels raise others
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - start
    if out_notebook.is_file():
        try:
            save_cell_timings(out_notebook, seconds)  # <lesson>.cells.json: the next run's estimate, each cell's seconds
        except (OSError, ValueError) as exc:  # an unreadable output notebook must not stop the other lessons
            error = error or f"cannot read the executed notebook {out_notebook}: {exc}"
    results: dict[str, Any] = {}
    if results_path.exists():
        results = json.loads(results_path.read_text()).get("results", {})
    elif error is None:
        error = f"the lesson finished but wrote no results to {results_path}"
    return LessonRun(
        lesson=lesson.id,
        ok=error is None,
        seconds=round(seconds, 1),
        output_notebook=str(out_notebook),
        results_path=str(results_path),
        results=results,
        error=error,
    )


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _headline(results: dict[str, Any], limit: int = 6) -> str:
    """The scalar results of a lesson, as ``key=value`` pairs (nested tables are left out)."""
    pairs = [
        f"{key}={_format_value(value)}"
        for key, value in results.items()
        if key not in _CONTEXT_KEYS and isinstance(value, (int, float, str, bool)) and not isinstance(value, str)
    ]
    return ", ".join(pairs[:limit]) + (", ..." if len(pairs) > limit else "")


def results_table(runs: Sequence[LessonRun]) -> str:
    """A Markdown table of lesson runs: status, time, dataset, device and headline results."""
    lines = [
        "| lesson | status | seconds | dataset | device | results |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for run in runs:
        status = "ok" if run.ok else "FAILED"
        detail = _headline(run.results) if run.ok else (run.error or "")
        dataset = str(run.results.get("dataset", ""))
        device = str(run.results.get("device", ""))
        lines.append(f"| {run.lesson} | {status} | {run.seconds:.1f} | {dataset} | {device} | {detail.replace('|', '/')} |")
    return "\n".join(lines)


def save_report(runs: Sequence[LessonRun], output_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``results.json`` (every run with all its results) and ``results.md`` (the table)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "results.json"
    md_path = output_dir / "results.md"
    atomic_write_text(json_path, json.dumps([to_jsonable(asdict(run)) for run in runs], indent=2) + "\n")
    atomic_write_text(md_path, "# tlcourse lesson results\n\n" + results_table(runs) + "\n")
    return json_path, md_path
