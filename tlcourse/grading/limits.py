"""The limits a graded submission runs under, and how to read sizes such as ``"4G"``."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Limits", "format_size", "parse_size"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in ``text``: ``"4G"``, ``"512M"``, ``"4GiB"``, ``"1.5G"`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (write e.g. 4G, 512M, 4GiB or a number of bytes)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_size(n: int) -> str:
    """``4294967296`` -> ``"4 GiB"``; ``805306368`` -> ``"768 MiB"``."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded.

    ``memory``: bytes of resident memory of all its processes together; ``processes``: processes at once; ``notebook_seconds``: wall time of the whole notebook (each cell also has nbgrader's
    per-cell timeout); ``output_bytes``: output kept per cell; ``scratch``: bytes it may write (its folder
    and ``/tmp``, both in memory).
    """

    memory: int = 4 << 30
    processes: int = 64
    notebook_seconds: int = 900
    output_bytes: int = 1 << 20
    scratch: int = 512 << 20
