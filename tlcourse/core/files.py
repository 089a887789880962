"""Files that survive interruption: written atomically, read back as a miss when unreadable.

Every cache, checkpoint and results file the course writes goes through :func:`atomic_write`: the bytes go
to a temporary file in the same folder, which is renamed over the target only once complete, so a run killed
mid-write leaves the old file (or none), never a truncated one. :func:`load_cache` reads a cache and treats
a file that cannot be read (truncated by an older version, a full disk, another program) as a miss: one
warning line, the file removed, ``None`` returned so the caller recomputes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = ["CacheWarning", "atomic_write", "atomic_write_text", "atomic_torch_save", "load_cache"]

T = TypeVar("T")
# what a truncated or garbled torch/pickle/JSON file raises when read, and what ``load`` raises on a mismatch
UNREADABLE = (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, ValueError, KeyError, TypeError, AttributeError)
STALE_SECONDS = 600.0  # a writer silent this long is gone: its temporary file is removed on the next write


class CacheWarning(UserWarning):
    """A cache file was unreadable or did not match, and is being recomputed."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``; returns ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, _default_mode())  # mkstemp makes 0600; a file written in place would follow the umask
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(target)
    return target


def _default_mode() -> int:
    """0666 less the process's umask: the mode ``open(path, "w")`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _remove_stale_temporaries(target: Path, older_than: float = STALE_SECONDS) -> None:
    """Delete what killed writers of ``target`` left (temporary files untouched for ``older_than`` seconds)."""
    now = time.time()
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        try:
            if now - leftover.stat().st_mtime > older_than:
                leftover.unlink()
        except OSError:  # another process removed or renamed it meanwhile
            pass


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    return atomic_write(path, lambda file: torch.save(obj, file))


def load_cache(path: str | os.PathLike[str], load: Callable[[Path], T], *, what: str = "cache") -> T | None:
    """``load(path)``, or ``None`` when there is no file or it cannot be read (then warned about and removed).

    What counts as unreadable is :data:`UNREADABLE`: truncated or garbled files (what a killed writer leaves) and
    ``ValueError``/``KeyError``, which ``load`` raises to say the file does not match what is expected.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return load(path)
    except UNREADABLE as error:  # not OSError: a file we may not read or a failing disk is the user's to see
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        warnings.warn(f"the {what} {path} is unreadable or does not match ({reason}); recomputing it", CacheWarning, stacklevel=2)
        with contextlib.suppress(OSError):  # a read-only cache folder: the recomputed result is simply not kept
            path.unlink()
        return None
