"""Exceptions of :mod:`tlcourse.data`; their messages are written for people to read."""

from __future__ import annotations

from tlcourse.core.lookup import UnknownNameError


class UnknownDatasetError(UnknownNameError):
    """A dataset name that is not in :data:`tlcourse.data.DATASETS`."""


class DatasetNotAvailableError(RuntimeError):
    """A dataset is missing and may not (offline) or could not (network error) be downloaded."""


class DatasetIntegrityError(RuntimeError):
    """Downloaded files do not match the checksum the course expects."""


def missing_package_error(name: str, pip_name: str) -> DatasetNotAvailableError:
    """The error for a bundled dataset whose package (``pip install pip_name``) is not installed."""
    return DatasetNotAvailableError(
        f"Dataset {name!r} ships with the Python package {pip_name!r}, which is not installed. "
        f"Fix: pip install {pip_name} (or conda install -c conda-forge {pip_name})."
    )
