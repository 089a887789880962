"""The versions CI passed with (``constraints.txt``), and where this install differs from them.

``constraints.txt`` at the repository root pins every package of a passing CI environment except the ones
built for the machine (torch, torchvision, triton, the CUDA wheels: pip picks those, see README) and pip's own
tools. Its header names the Python version it was made with: the pins may need that version.
``tlcourse doctor --freeze`` prints the same list for the current environment, which is how the file is
made; ``tlcourse doctor`` reports the packages whose installed version differs from it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONSTRAINTS_FILE",
    "VersionDifference",
    "constraints_python",
    "freeze",
    "installed_versions",
    "is_machine_specific",
    "read_constraints",
    "version_differences",
]

CONSTRAINTS_FILE = Path(__file__).resolve().parents[2] / "constraints.txt"  # in a clone: the repository root
_MACHINE_SPECIFIC = ("torch", "torchvision", "triton")
_INSTALLERS = ("pip", "setuptools", "wheel")  # upgraded by every fresh install: not part of the tested set
_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")
_PYTHON_LINE = re.compile(r"^#\s*python\s+(\d+\.\d+)", re.IGNORECASE)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_machine_specific(name: str) -> bool:
    """Packages whose build depends on the machine (CUDA or not), left to pip: torch, torchvision, nvidia-*, cuda-*..."""
    name = _normalise(name)
    return name in _MACHINE_SPECIFIC or name.startswith(("nvidia-", "cuda-"))


def installed_versions() -> dict[str, str]:
    """Normalised name -> version of every distribution installed in this environment, tlcourse excluded.

    When a name is found twice (setuptools puts its vendored copies, e.g. of packaging, on ``sys.path``), the
    first one on the path wins, as in ``importlib.metadata.version`` and ``import``.
    """
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _normalise(name) != "tlcourse":
            found.setdefault(_normalise(name), dist.version)
    return found


def freeze(installed: dict[str, str] | None = None, python: str | None = None) -> str:
    """The text of a ``constraints.txt`` for this environment: ``name==version`` lines, sorted, machine-specific
    packages and pip's tools left out, and a header naming ``python`` (default: this interpreter's X.Y)."""
    installed = installed_versions() if installed is None else installed
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [f"{name}=={version}" for name, version in sorted(installed.items())
             if not is_machine_specific(name) and name not in _INSTALLERS]  # fmt: skip
    header = ("# Versions a passing CI run installed (tlcourse doctor --freeze). torch, torchvision and the CUDA\n"
              "# wheels are left to pip. Reproduce with: pip install -c constraints.txt -e \".[test]\"\n"
              f"# python {python} (the pins may need this Python version)\n")  # fmt: skip
    return header + "\n".join(lines) + "\n"


def constraints_python(path: str | Path | None = None) -> str | None:
    """The Python version (``"3.11"``) a constraints file says it was made with, or None."""
    for line in Path(CONSTRAINTS_FILE if path is None else path).read_text().splitlines():
        match = _PYTHON_LINE.match(line)
        if match:
            return match.group(1)
    return None


def read_constraints(path: str | Path | None = None) -> dict[str, str]:
    """Normalised name -> pinned version from a constraints file (default :data:`CONSTRAINTS_FILE`; comments ignored)."""
    pins = {}
    for line in Path(CONSTRAINTS_FILE if path is None else path).read_text().splitlines():
        match = _LINE.match(line)
        if match:
            pins[_normalise(match.group(1))] = match.group(2)
    return pins


@dataclass(frozen=True)
class VersionDifference:
    """A package installed at another version than the one CI passed with."""

    name: str
    tested: str
    installed: str

    def __str__(self) -> str:
        return f"{self.name} {self.installed} (tested {self.tested})"


def version_differences(constraints: dict[str, str], installed: dict[str, str]) -> list[VersionDifference]:
    """The installed packages whose version differs from ``constraints``; packages not installed are not listed."""
    return [VersionDifference(name, tested, installed[name]) for name, tested in sorted(constraints.items())
            if name in installed and installed[name] != tested]  # fmt: skip
