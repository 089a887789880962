"""A thread that watches one sandboxed kernel's processes and stops them at the first limit they pass."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil

from tlcourse.grading.limits import Limits, format_size

__all__ = ["Watchdog"]


def _proportional_memory(process: psutil.Process) -> int:
    """Resident memory with shared pages split among their users (PSS), so forked workers are not counted twice."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return process.memory_info().rss


def _quietly(read: Callable[[psutil.Process], int], process: psutil.Process) -> int:
    try:
        return read(process)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0


class Watchdog(threading.Thread):
    """Polls the process tree under ``pid`` every ``interval`` seconds.

    When the memory of all its processes together (resident, shared pages split) passes ``limits.memory``,
    or their number passes ``limits.processes``, it calls ``on_limit(reason)`` (which stops the sandbox) once and ends. The reason
    reads like "more than 4 GiB of memory" and is completed by the caller with the cell it happened in.
    """

    def __init__(self, pid: int, limits: Limits, on_limit: Callable[[str], None], interval: float = 0.05) -> None:
        super().__init__(name=f"tlcourse-watchdog-{pid}", daemon=True)
        self.pid = pid
        self.limits = limits
        self.on_limit = on_limit
        self.interval = interval
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _sample(self, root: psutil.Process) -> tuple[int, int]:
        """(memory, number of processes). Resident memory (RSS) is cheap to read but counts pages that forked
        processes share once per process; only when it passes the limit is the proportional share (PSS, 15 ms a
        process to read) summed instead, to tell a real excess from shared pages."""
        processes = [root, *root.children(recursive=True)]
        resident = sum(_quietly(lambda p: p.memory_info().rss, p) for p in processes)
        if resident <= self.limits.memory or len(processes) > self.limits.processes:
            return resident, len(processes)
        return sum(_quietly(_proportional_memory, p) for p in processes), len(processes)

    def run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # fail closed: a sandbox that cannot be measured is stopped
            self.on_limit(f"a state the watchdog could not measure ({type(exc).__name__}: {exc})")

    def _watch(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.wait(self.interval):
            try:
                memory, count = self._sample(root)
            except psutil.NoSuchProcess:
                return
            reason = None
            if count > self.limits.processes:
                reason = f"more than {self.limits.processes} processes"
            elif memory > self.limits.memory:
                reason = f"more than {format_size(self.limits.memory)} of memory"
            if reason:
                self.on_limit(reason)
                return
