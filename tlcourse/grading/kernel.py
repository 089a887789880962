"""A Jupyter kernel manager that starts each kernel in the grading sandbox, under the grading limits."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import zmq
from jupyter_client.manager import AsyncKernelManager

from tlcourse.grading.cgroups import Cgroup, make_cgroup
from tlcourse.grading.limits import Limits, format_size
from tlcourse.grading.sandbox import SOCKETS_DIR, Sandbox, SandboxUnavailableError, sandbox_problem
from tlcourse.grading.watchdog import Watchdog

__all__ = ["SandboxKernelManager", "kill_tree"]


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (the sandbox's PID namespace dies with its first process)."""
    try:
        root = psutil.Process(pid)
        root.kill()  # first: with bwrap's --die-with-parent the whole PID namespace goes with it
        processes = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _namespace_init(pid: int, wait: float = 10.0) -> int:
    """The first process of the sandbox's namespaces: bubblewrap's child of ``pid``."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(pid).children()
        except psutil.NoSuchProcess:
            break
        if children:
            return children[0].pid
        time.sleep(0.01)
    raise SandboxUnavailableError(f"the sandbox (bubblewrap, process {pid}) did not start")


class SandboxKernelManager(AsyncKernelManager):
    """Starts the kernel inside :class:`~tlcourse.grading.sandbox.Sandbox`, talking over Unix sockets.

    The grading preprocessor sets ``limits``, ``hidden``, ``threads`` and ``sandboxed`` before the kernel
    starts. When the watchdog stops the kernel, ``stop_reason`` says why ("more than 4 GiB of memory").
    """

    limits: Limits = Limits()
    hidden: tuple[Path, ...] = ()
    threads: int | None = None
    sandboxed: bool = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stop_reason: str | None = None
        self.runtime_dir: Path | None = None
        self.watchdog: Watchdog | None = None
        self.cgroup: Cgroup | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if self.sandboxed:
            problem = sandbox_problem()
            if problem:
                raise SandboxUnavailableError(f"refusing to grade without a sandbox: {problem}")
        # A short private folder: Unix socket paths are limited to about 100 characters.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="tlsbx-"))
        self.transport = "ipc"
        self.connection_file = str(self.runtime_dir / "kernel.json")
        # The kernel binds its sockets where the connection file says: inside the sandbox when sandboxed.
        self.ip = f"{SOCKETS_DIR}/k" if self.sandboxed else str(self.runtime_dir / "k")
        # Interrupt through the control channel: a signal to the sandbox's first process would kill it.
        self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        assert self.runtime_dir is not None
        workdir = Path(kw.get("cwd") or os.getcwd())
        # Hard limits where the machine allows a control group: a little above the watchdog's, so that the
        # watchdog normally stops first and says why, and the group catches what the watchdog cannot see.
        self.cgroup = make_cgroup(self.limits.memory + (1 << 30), max(512, 8 * self.limits.processes))
        sandbox = Sandbox(
            workdir=workdir, runtime_dir=self.runtime_dir, limits=self.limits, hidden=self.hidden, threads=self.threads,
            cgroups=tuple(self.cgroup.folders) if self.cgroup else (),
        )
        if self.sandboxed:
            kernel_cmd = sandbox.command(kernel_cmd)
            kw["env"] = sandbox.environment(kw.get("env"))
            kw["cwd"] = str(self.runtime_dir)
            # What the kernel writes to its own stdout/stderr (not to the notebook) is noise, or a flood, for
            # the instructor's terminal.
            kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        else:
            kernel_cmd = sandbox.confine_command() + list(kernel_cmd)  # the resource limits alone
        self.log.debug("Sandboxed kernel command: %s", kernel_cmd)
        await super()._async_launch_kernel(kernel_cmd, **kw)
        pid = self.provisioner.process.pid  # type: ignore[union-attr]
        if self.sandboxed:
            self.ip = f"/proc/{_namespace_init(pid)}/root{SOCKETS_DIR}/k"  # the same sockets, seen from the host
        self.watchdog = Watchdog(pid, self.limits, self._on_limit)
        self.watchdog.start()

    def client(self, **kwargs: Any) -> Any:
        """A client whose sockets refuse messages over 64 MiB: the grader's memory is outside the sandbox's
        limits, so zmq drops such a message instead, and the cell's output simply misses it."""
        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, max(64 << 20, 4 * self.limits.output_bytes))
        return kc

    def death_reason(self) -> str:
        """Why the kernel is gone: the limit the watchdog or the control group enforced, else a crash."""
        if self.stop_reason:
            return self.stop_reason
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"more than {format_size(self.limits.memory)} of memory (the hard limit)"
        return "the kernel died (it crashed or was killed)"

    def _on_limit(self, reason: str) -> None:
        self.stop_reason = reason
        self.log.warning("Stopping the sandboxed kernel: %s", reason)
        if self.provisioner is not None and self.provisioner.process is not None:  # type: ignore[attr-defined]
            kill_tree(self.provisioner.process.pid)  # type: ignore[attr-defined]

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.provisioner is not None and getattr(self.provisioner, "process", None) is not None:
            kill_tree(self.provisioner.process.pid)  # type: ignore[attr-defined]
        await super()._async_cleanup_resources(restart=restart)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]

