"""The grading sandbox: a bubblewrap (``bwrap``) command line that runs one submission's kernel.

Inside the sandbox a kernel sees the system (``/usr``, ``/etc``) and the Python environment read-only, the
course package and the data read-only, and nothing else of the machine: not the course root, the
gradebook, ``solutions/``, the exchange, the configuration or other students' folders. Its working folder
is an in-memory scratch folder at the path nbgrader gives (holding the submission's own files, but not the
notebook that is being graded, whose hidden tests must stay out of reach) and ``/tmp`` is in memory too;
both are capped in size, like ``/dev/shm``; everything else is read-only and no host folder is writable.
It has no network (its own network namespace: only a loopback that is down), its own PID namespace (every
process it starts dies with it) and its own user namespace without capabilities, in which it cannot make
namespaces of its own. The kernel talks to nbgrader over Unix sockets on a tiny tmpfs inside the sandbox,
which nbgrader reaches through ``/proc/<pid>/root``, since TCP cannot cross the network namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tlcourse.grading.limits import Limits

__all__ = ["Sandbox", "SandboxUnavailableError", "sandbox_problem"]

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
SANDBOX_HOME = "/tmp/home"
# The kernel's sockets live on a tiny tmpfs inside the sandbox; nbgrader reaches them through the root
# folder that /proc shows for the sandbox's first process (see kernel.py): no host folder is writable inside.
SOCKETS_DIR = "/run/tlcourse"
CONNECTION_FILE = f"{SOCKETS_DIR}/kernel.json"


class SandboxUnavailableError(RuntimeError):
    """No sandbox can be made on this machine (the message says why and what to do)."""


@functools.cache
def sandbox_problem(bwrap: str = "bwrap") -> str | None:
    """Why no grading sandbox can be made here, or ``None`` when bubblewrap works."""
    if not sys.platform.startswith("linux"):
        return (
            f"the grading sandbox needs Linux (bubblewrap and kernel namespaces); this machine runs {sys.platform}. "
            "Grade on a Linux machine or server, or pass --unsandboxed to run submissions with your own rights."
        )
    path = shutil.which(bwrap)
    if path is None:
        return (
            f"bubblewrap ({bwrap}) is not installed. Install it (Debian/Ubuntu: sudo apt-get install bubblewrap; "
            "Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap), or pass --unsandboxed."
        )
    probe = [
        path, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--die-with-parent",
        "--ro-bind", "/", "/", "--proc", "/proc", "--", "true",
    ]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be started: {exc}"
    if proc.returncode != 0:
        return (
            f"bubblewrap cannot create the sandbox here: {proc.stderr.strip() or f'exit code {proc.returncode}'}. "
            "It needs bubblewrap 0.8 or newer (for --disable-userns) and user namespaces. Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
            "kernel.apparmor_restrict_unprivileged_userns=0), or pass --unsandboxed."
        )
    return None


def _python_paths() -> list[Path]:
    """The folders the kernel's Python needs: the environment, its base installation and the course package."""
    import tlcourse

    paths = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths |= {p.resolve() for p in list(paths)}
    paths.add(Path(sys.executable).resolve().parent.parent)
    paths.add(Path(tlcourse.__file__).resolve().parent)  # an editable install maps tlcourse to the repository
    return sorted(paths)


def _data_paths() -> list[Path]:
    """Read-only data a graded notebook may load: the data root and torch's downloaded weights."""
    from tlcourse.core.config import data_root

    return [p for p in (data_root(), _torch_home()) if p.is_dir()]


def _torch_home() -> Path:
    return Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch")


def _is_within(path: Path, other: Path) -> bool:
    try:
        path.relative_to(other)
        return True
    except ValueError:
        return False


@dataclass
class Sandbox:
    """One kernel's sandbox.

    ``workdir``: the kernel's working folder as nbgrader names it (the student's autograded folder); inside
    it becomes an in-memory scratch folder with the submission's files other than notebooks, read-only.
    ``runtime_dir``: a private host folder holding the connection file (``kernel.json``), bound read-only.
    ``hidden``: folders that must never become visible, even partly (the course root): a read-only path
    is refused when it holds one of them.
    """

    workdir: Path
    runtime_dir: Path
    limits: Limits = field(default_factory=Limits)
    hidden: tuple[Path, ...] = ()
    threads: int | None = None
    read_only: tuple[Path, ...] = ()
    bwrap: str = "bwrap"
    cgroups: tuple[Path, ...] = ()  # control groups to join (made by the kernel manager)

    def read_only_paths(self) -> list[Path]:
        """Host folders bound read-only at the same path inside the sandbox."""
        chosen: list[Path] = []
        for path in [*_python_paths(), *_data_paths(), *self.read_only]:
            path = Path(path).absolute()
            if not path.exists() or path in chosen:
                continue
            leaks = [h for h in self.hidden if _is_within(Path(h).absolute(), path) or _is_within(Path(h).resolve(), path.resolve())]
            if leaks:
                raise SandboxUnavailableError(
                    f"{path} would be visible to graded code, but it holds {leaks[0]}; install the course "
                    "(its Python environment and data) outside the course root"
                )
            chosen.append(path)
        return chosen

    def _submission_files(self) -> Iterable[Path]:
        if not self.workdir.is_dir():
            return []
        # A symlink would be followed when bound, to wherever it points on the host: never bind one.
        return [
            p for p in sorted(self.workdir.iterdir())
            if not p.is_symlink() and not (p.is_file() and p.suffix == ".ipynb") and p.name != ".ipynb_checkpoints"
        ]

    def confine_command(self) -> list[str]:
        """The launcher that sets the per-process resource limits (see :mod:`tlcourse.grading.confine`)."""
        limits = self.limits
        return [
            sys.executable, "-m", "tlcourse.grading.confine",
            # Each process's address space: torch alone reserves about 4 GiB of it, so this is only a backstop
            # against one huge allocation; the watchdog enforces `memory` on the resident total (and says so).
            "--address-space", str(limits.memory + (16 << 30)),
            "--tasks", str(max(limits.processes * 16, 1024)),
            "--file-size", str(limits.scratch),
            *[arg for folder in self.cgroups for arg in ("--cgroup", str(folder))],
            "--",
        ]

    def command(self, kernel_cmd: list[str]) -> list[str]:
        """``kernel_cmd`` wrapped in the resource limits and bubblewrap."""
        limits = self.limits
        args = [
            shutil.which(self.bwrap) or self.bwrap,
            # Own user namespace with no capabilities and no nested namespaces: even when the instructor is
            # root, code inside cannot remount the read-only folders or mount a tmpfs of its own.
            "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--hostname", "grading",
            "--proc", "/proc", "--dev", "/dev", "--size", str(self.limits.scratch), "--tmpfs", "/dev/shm",
        ]
        for name in SYSTEM_DIRS:
            if os.path.islink(name):
                args += ["--symlink", os.readlink(name), name]
            elif os.path.isdir(name):
                args += ["--ro-bind", name, name]
        args += ["--size", str(limits.scratch), "--tmpfs", "/tmp"]
        # The course root (which may well lie under /tmp) becomes an empty folder that stays read-only.
        hidden = [str(Path(h).absolute()) for h in self.hidden]
        for path in hidden:
            args += ["--tmpfs", path]
        for path in self.read_only_paths():
            args += ["--ro-bind", str(path), str(path)]
        args += ["--size", str(1 << 20), "--tmpfs", SOCKETS_DIR]
        args += ["--ro-bind", str(self.runtime_dir / "kernel.json"), CONNECTION_FILE]
        workdir = str(self.workdir.absolute())
        args += ["--size", str(limits.scratch), "--tmpfs", workdir]
        for path in self._submission_files():
            args += ["--ro-bind", str(path), str(Path(workdir) / path.name)]
        # The kernel's parent is the namespace's first process (PID 1), which ipykernel would take for a
        # dead parent when told to watch the launcher's PID; --die-with-parent does that job instead.
        # Only /tmp, /dev/shm and the scratch folder stay writable, each capped at `scratch` bytes.
        args += ["--dir", SANDBOX_HOME, "--remount-ro", "/", "--remount-ro", "/dev"]
        for path in hidden:
            args += ["--remount-ro", path]
        args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", workdir, "--"]
        host_connection = str(self.runtime_dir / "kernel.json")
        return self.confine_command() + args + [arg.replace(host_connection, CONNECTION_FILE) for arg in kernel_cmd]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The kernel's whole environment: nothing of the instructor's but what grading needs."""
        from tlcourse.core.config import data_root

        base = os.environ if base is None else base
        bindir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_HOME,
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "IPYTHONDIR": "/tmp/ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
            "TLCOURSE_CACHE": "/tmp/tlcourse-cache",
            "TLCOURSE_DATA": str(data_root()),
            "TLCOURSE_OFFLINE": "1",  # there is no network in the sandbox: fail fast with the offline message
        }
        if _torch_home().is_dir():
            env["TORCH_HOME"] = str(_torch_home())
        for name in ("NBGRADER_EXECUTION", "VIRTUAL_ENV", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            if base.get(name):
                env[name] = base[name]
        if self.threads:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[name] = str(self.threads)
        return env
