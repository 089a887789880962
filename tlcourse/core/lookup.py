"""One way to look a name up in a table: an unknown name lists the valid ones and suggests the closest."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar

__all__ = ["UnknownNameError", "check_name", "lookup", "unknown_name_message"]

V = TypeVar("V")


class UnknownNameError(ValueError, KeyError):
    """A name that is not in its table (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def unknown_name_message(what: str, name: object, valid: Iterable[str]) -> str:
    """``Unknown <what> 'x'. Valid names: a, b, c. Did you mean 'b'?`` (the hint only when one is close)."""
    choices = [str(v) for v in valid]
    message = f"Unknown {what} {name!r}. Valid names: {', '.join(choices)}."
    close = difflib.get_close_matches(str(name).strip().lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if close:
        match = next(c for c in choices if c.lower() == close[0])
        message += f" Did you mean {match!r}?"
    return message


def lookup(table: Mapping[str, V], name: str, what: str, *, error: type[Exception] = UnknownNameError) -> V:
    """``table[name]``, else ``error`` (default :class:`UnknownNameError`) naming the valid keys and the closest one."""
    if name in table:
        return table[name]
    raise error(unknown_name_message(what, name, table))


def check_name(name: str, valid: Collection[str], what: str) -> str:
    """``name`` when it is one of ``valid``, else :class:`UnknownNameError` naming the valid ones and the closest."""
    if name in valid:
        return name
    raise UnknownNameError(unknown_name_message(what, name, valid))
