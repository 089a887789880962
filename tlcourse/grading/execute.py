"""nbgrader's Execute step, sandboxed: the preprocessor that runs a submission during ``autograde``.

``nbgrader_config.py`` puts :class:`SandboxedExecute` in place of nbgrader's ``Execute`` in
``Autograde.autograde_preprocessors``, so every way of autograding (``tlcourse grade``, ``nbgrader
autograde``, Formgrader's button) runs each submission's kernel in the sandbox. On top of nbgrader's
per-cell timeout it stops a submission that passes a limit (memory, processes, the whole notebook's wall
time), whose kernel dies, or that ignores the interrupt sent at a timeout. The stop is written into the
notebook as an error output of the cell it happened in ("stopped: more than 4 GiB of memory in cell
a02_t2_receptive_field"), and every later code cell gets an error output too, so the tests that ran before
keep their points, the later ones score 0, and the feedback says why.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from time import monotonic
from typing import Any

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Integer, Unicode, default

from tlcourse.grading.kernel import SandboxKernelManager, kill_tree
from tlcourse.grading.limits import Limits, format_size, parse_size
from tlcourse.grading.reader import UNREADABLE_KEY
from tlcourse.grading.sandbox import SandboxUnavailableError, sandbox_problem

__all__ = ["STOPPED", "GradingStopped", "SandboxedExecute", "cell_label", "stop_reasons"]

STOPPED = "GradingStopped"  # the ename of the error outputs this preprocessor writes


class GradingStopped(Exception):
    """The submission passed a limit; grading of its notebook stops here."""


def cell_label(cell: NotebookNode, index: int) -> str:
    """A cell's nbgrader id (``a02_t2_receptive_field``), else its position (``cell 7``)."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index}"


def stop_reasons(nb: NotebookNode) -> list[str]:
    """The reasons this preprocessor stopped ``nb`` (empty when it ran to the end)."""
    return [
        out.get("evalue", "")
        for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error" and out.get("ename") == STOPPED and out.get("evalue", "").startswith("stopped")
    ]


def _error(reason: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=STOPPED, evalue=reason, traceback=[f"\x1b[0;31m{STOPPED}\x1b[0m: {reason}"])


class SandboxedExecute(Execute):
    """Execute a submission in the grading sandbox, under the grading limits."""

    memory_limit = Unicode(
        os.environ.get("TLCOURSE_GRADING_MEMORY", "4G"),
        help="Resident memory of all a submission's processes together (e.g. 4G, 512M).",
    ).tag(config=True)
    process_limit = Integer(
        int(os.environ.get("TLCOURSE_GRADING_PROCESSES", "64")), help="Processes a submission may run at once."
    ).tag(config=True)
    notebook_timeout = Integer(
        int(os.environ.get("TLCOURSE_GRADING_NOTEBOOK_TIMEOUT", "900")),
        help="Seconds the whole notebook may run (each cell also has `timeout`).",
    ).tag(config=True)
    output_limit = Unicode("1M", help="Output kept per cell; the rest is dropped with a note.").tag(config=True)
    scratch_limit = Unicode("512M", help="Size of the in-memory scratch folder and of /tmp in the sandbox.").tag(config=True)
    threads = Integer(
        int(os.environ.get("TLCOURSE_GRADING_THREADS", "0")), help="CPU threads of each kernel (0: torch's default)."
    ).tag(config=True)
    unsandboxed = Bool(
        os.environ.get("TLCOURSE_GRADING_UNSANDBOXED", "") == "1",
        help="Run kernels without the sandbox (limits and timeouts still apply). Only for trusted notebooks.",
    ).tag(config=True)
    interrupt_grace = Float(10.0, help="Seconds a kernel has to stop after the interrupt sent at a timeout.").tag(config=True)
    course_root = Unicode("", help="Folder graded code must never see (default: CourseDirectory.root).").tag(config=True)

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> type:
        return SandboxKernelManager

    @property
    def limits(self) -> Limits:
        return Limits(
            memory=parse_size(self.memory_limit),
            processes=self.process_limit,
            notebook_seconds=self.notebook_timeout,
            output_bytes=parse_size(self.output_limit),
            scratch=parse_size(self.scratch_limit),
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        # nbclient skips cells tagged "skip-execution", and nbgrader gives a test cell without an error its
        # points: a tag only this run knows means no submission can skip its tests.
        self.skip_cells_with_tag = f"tlcourse-never-{secrets.token_hex(16)}"
        self.store_widget_state = False  # widget state would pile up in the grader's memory, unbounded

    # -- the whole notebook ---------------------------------------------------------------------------

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        if not self.unsandboxed:
            problem = sandbox_problem()
            if problem:
                raise SandboxUnavailableError(f"refusing to grade without a sandbox: {problem}")
        self._stopped: str | None = None
        self._current = ""
        self._output_bytes: dict[int, int] = {}
        self._deadline = monotonic() + self.notebook_timeout
        self.iopub_timeout = int(self.interrupt_grace)
        unreadable = nb.metadata.pop(UNREADABLE_KEY, None)
        if unreadable:
            self._stopped = f"stopped: the submitted file is not a readable notebook ({unreadable}); it was graded as blank"
            code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
            for i, cell in enumerate(code_cells):
                cell.outputs = [_error(self._stopped if i == 0 else f"not run: {self._stopped}")]
            return nb, resources
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        if isinstance(km, SandboxKernelManager):
            km.limits = self.limits
            km.sandboxed = not self.unsandboxed
            km.threads = self.threads or None
            root = self.course_root or self.config.get("CourseDirectory", {}).get("root") or os.getcwd()
            km.hidden = (Path(root).resolve(),)
        return km

    # -- one cell -------------------------------------------------------------------------------------

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None, store_history: bool = True) -> NotebookNode:
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        label = cell_label(cell, cell_index)
        if self._stopped:
            cell.outputs = [_error(f"not run: {self._stopped}")]
            return cell
        self._current = label
        self._interrupted = False
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            km = self.km
            reason = km.death_reason() if isinstance(km, SandboxKernelManager) else "the kernel died (it crashed or was killed)"
            self._stop(cell, f"stopped: {reason} in cell {label}")
        except CellTimeoutError:  # the kernel's output stopped coming: after the interrupt at a timeout, or lost
            self._kill()
            if self._interrupted:
                self._stop(cell, f"stopped: cell {label} ran longer than {self._get_timeout(None)} s and ignored the interrupt")
            else:
                self._stop(cell, f"stopped: the output of cell {label} stopped arriving (a message over the size limit?)")
        except GradingStopped as stop:
            self._stop(cell, str(stop))
        return cell

    execute_cell = run_sync(async_execute_cell)  # NotebookClient binds its own coroutine otherwise

    def _stop(self, cell: NotebookNode, reason: str) -> None:
        self.log.warning("Grading stopped: %s", reason)
        self._stopped = reason
        cell.outputs = [*cell.get("outputs", []), _error(reason)]

    def _kill(self) -> None:
        km = self.km
        if km is not None and getattr(km, "provisioner", None) is not None and km.provisioner.process is not None:
            kill_tree(km.provisioner.process.pid)

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        timeout = super()._get_timeout(cell)
        remaining = max(1, int(self._deadline - monotonic()) + 1) if hasattr(self, "_deadline") else None
        if remaining is None:
            return timeout
        return remaining if timeout is None else min(timeout, remaining)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> None | dict[str, Any]:
        if monotonic() >= self._deadline:
            self._kill()
            raise GradingStopped(f"stopped: the notebook ran longer than {self.notebook_timeout} s (in cell {self._current})")
        self._interrupted = True
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> NotebookNode | None:
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        limit = self.limits.output_bytes
        if used + size <= limit:
            return super().output(outs, msg, display_id, cell_index)
        if used <= limit:
            note = NotebookNode(output_type="stream", name="stderr", text=f"[output cut: this cell printed more than {format_size(limit)}]\n")
            outs.append(note)
            return note
        return None
