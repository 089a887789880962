"""Start a command under resource limits: ``python -m tlcourse.grading.confine [LIMITS] -- CMD ...``.

The sandbox runs a graded kernel through this small launcher, which sets hard POSIX limits that every
process below it inherits, then replaces itself with ``CMD``:

* ``--address-space BYTES``: virtual memory of each process (a backstop; the watchdog limits the total);
* ``--tasks N``: processes and threads of the user (enforced for non-root users and in user namespaces);
* ``--file-size BYTES``: size of any one file written; core dumps are always off;
* ``--cgroup DIR`` (repeatable): join these control groups first (see :mod:`tlcourse.grading.cgroups`).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Sequence


def _set(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tlcourse.grading.confine")
    parser.add_argument("--address-space", type=int, default=None)
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--file-size", type=int, default=None)
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    for folder in args.cgroup:
        with open(os.path.join(folder, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    _set(resource.RLIMIT_CORE, 0)
    if args.address_space:
        _set(resource.RLIMIT_AS, args.address_space)
    if args.tasks:
        _set(resource.RLIMIT_NPROC, args.tasks)
    if args.file_size:
        _set(resource.RLIMIT_FSIZE, args.file_size)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
