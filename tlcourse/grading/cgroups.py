"""Hard memory and task limits for one sandbox, from a kernel control group where this machine allows one.

The watchdog reads memory as the processes' resident pages, which misses what the kernel holds for them
elsewhere (memfd and tmpfs files, pipe buffers), and it counts processes, not threads, 20 times a second.
A control group counts all of it, at once: ``memory`` (including shared memory) and ``pids`` (tasks, i.e.
processes and threads). It is made below this process's own group (so it stays within any limit the
grading machine itself runs under), with cgroup v1 (the ``memory`` and ``pids`` hierarchies) or cgroup v2
(where its controllers are delegated to us); where neither is writable the watchdog alone applies.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cgroup", "make_cgroup"]

ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """This process's group in the hierarchy of ``controller`` ("" for cgroup v2), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller == "" and names == "") or controller in names.split(","):
            return path.lstrip("/")
    return None


@dataclass
class Cgroup:
    """The control-group folders one sandbox is confined in (one per v1 hierarchy, or one v2 group)."""

    folders: list[Path]
    version: int

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process of this group."""
        for folder in self.folders:
            events = folder / ("memory.events" if self.version == 2 else "memory.oom_control")
            with contextlib.suppress(OSError):
                for line in events.read_text().splitlines():
                    if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                        return True
        return False

    def remove(self, wait: float = 2.0) -> None:
        """Remove the folders, waiting up to ``wait`` seconds for their last processes to exit."""
        deadline = time.monotonic() + wait
        for folder in self.folders:
            while folder.exists():
                try:
                    folder.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _v1(name: str, memory: int, tasks: int) -> Cgroup | None:
    made = []
    try:
        for controller, settings in (("memory", {"memory.limit_in_bytes": memory}), ("pids", {"pids.max": tasks})):
            own = _own_path(controller)
            if own is None or not (ROOT / controller).is_dir():
                raise OSError(f"no cgroup v1 {controller} hierarchy")
            folder = ROOT / controller / own / name
            folder.mkdir()
            made.append(folder)
            for key, value in settings.items():
                _write(folder / key, str(value))
        swap = made[0] / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):  # swap accounting may be off; then swap is simply not limited
            _write(swap, str(memory))
        return Cgroup(made, 1)
    except OSError:
        Cgroup(made, 1).remove(wait=0)
        return None


def _v2(name: str, memory: int, tasks: int) -> Cgroup | None:
    own = _own_path("")
    if own is None or not (ROOT / "cgroup.controllers").is_file():
        return None
    parent = ROOT / own
    folder = parent / name
    try:
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        missing = [c for c in ("memory", "pids") if c not in enabled]
        if missing:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        folder.mkdir()
        _write(folder / "memory.max", str(memory))
        _write(folder / "pids.max", str(tasks))
        with contextlib.suppress(OSError):
            _write(folder / "memory.swap.max", "0")
        return Cgroup([folder], 2)
    except OSError:
        Cgroup([folder], 2).remove(wait=0)
        return None


def make_cgroup(memory: int, tasks: int) -> Cgroup | None:
    """A new control group limited to ``memory`` bytes and ``tasks`` tasks, or ``None`` where none can be made."""
    if os.environ.get("TLCOURSE_GRADING_NO_CGROUP") == "1":
        return None
    name = f"tlcourse-{uuid.uuid4().hex[:12]}"
    return _v1(name, memory, tasks) or _v2(name, memory, tasks)
