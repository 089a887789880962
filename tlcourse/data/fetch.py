"""Where each dataset lives, whether it is there, and checksum-verified downloads.

Every fact (folder, files, URL, torchvision class, tree digest, package) comes from the
dataset's record in :data:`tlcourse.data.registry.DATASETS`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from tlcourse.core.config import OFFLINE_ENV, data_root, is_offline
from tlcourse.data.errors import DatasetIntegrityError, DatasetNotAvailableError, missing_package_error
from tlcourse.data.memory import raw_arrays
from tlcourse.data.registry import DATASETS, DatasetInfo, get_info

__all__ = [
    "HYMENOPTERA_TREE_DIGEST",
    "HYMENOPTERA_URL",
    "dataset_available",
    "dataset_path",
    "download",
    "ensure_available",
    "missing_package_error",
    "not_available_error",
    "tree_digest",
    "verify_hymenoptera",
    "verify_tree",
]

HYMENOPTERA_URL: str = DATASETS["hymenoptera"].url
#: :func:`tree_digest` of the original ``hymenoptera_data`` (``train/`` and ``val/``).
HYMENOPTERA_TREE_DIGEST: str = DATASETS["hymenoptera"].tree_digest


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that is searched for ``name`` (for bundled datasets: inside their package)."""
    info = get_info(name)
    if info.source == "bundled":
        base = _package_dir(info.package)
        if base is None:
            raise missing_package_error(info.name, info.pip_name)
        return base / info.folder
    return data_root(root) / info.folder


def dataset_available(name: str, root: str | os.PathLike[str] | None = None) -> bool:
    """True when ``name`` can be loaded without the network (checks files only, no download)."""
    info = get_info(name)
    if info.source == "bundled":
        base = _package_dir(info.package)
        return base is not None and all((base / info.folder / rel).is_file() for rel in info.files)
    folder = dataset_path(info.name, root)
    return all((folder / rel).exists() for rel in info.files)


def not_available_error(
    name: str, root: str | os.PathLike[str] | None = None, *, reason: str = "offline"
) -> DatasetNotAvailableError:
    """Build the message for a missing dataset: what, where searched, and how to fix it.

    ``reason`` is ``"offline"`` (``TLCOURSE_OFFLINE``), ``"no-download"`` (``download=False``)
    or ``"failed"`` (the download itself failed).
    """
    info = get_info(name)
    folder = dataset_path(info.name, root)
    copy_hint = (
        f"run `tlcourse download {info.name}` on a machine with internet and copy the data root "
        f"here (or point TLCOURSE_DATA at it)"
    )
    if reason == "offline":
        message = (
            f"Dataset {info.name!r} was not found in {folder} and {OFFLINE_ENV}=1 forbids "
            f"downloading it. Fix: {copy_hint}, or unset {OFFLINE_ENV}."
        )
    elif reason == "no-download":
        message = (
            f"Dataset {info.name!r} was not found in {folder} and download=False was given. "
            f"Fix: pass download=True (or leave it None), or {copy_hint}."
        )
    else:
        message = (
            f"Dataset {info.name!r} was not found in {folder} and downloading it failed "
            f"(see the error above). Fix: check the internet connection (proxy, firewall) and retry, "
            f"or {copy_hint}."
        )
    if info.url:
        message += f" Or fetch {info.url} by hand and unzip it into {folder.parent}."
    if info.alternative:
        message += f" Offline alternative: {info.alternative}."
    return DatasetNotAvailableError(message)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(path: str | os.PathLike[str], subdirs: tuple[str, ...] = ("train", "val")) -> str:
    """SHA-256 over every file under ``path/<subdir>`` for each subdir.

    Lines ``relative_posix_path + "\\0" + sha256(file bytes) + "\\n"``, sorted by path, are
    hashed together, so the digest depends on file names and contents, not on timestamps.
    """
    base = Path(path)
    if not base.is_dir():
        raise FileNotFoundError(f"no such folder: {base}")
    files = [p for sub in subdirs if (base / sub).is_dir() for p in (base / sub).rglob("*") if p.is_file()]
    lines = sorted((p.relative_to(base).as_posix(), _file_sha256(p)) for p in files)
    outer = hashlib.sha256()
    for rel, file_hash in lines:
        outer.update(f"{rel}\0{file_hash}\n".encode())
    return outer.hexdigest()


def verify_tree(name: str | DatasetInfo, path: str | os.PathLike[str], expected: str | None = None) -> Path:
    """Check the folder ``path`` of dataset ``name`` against its record's tree digest (or ``expected``).

    Raises :class:`DatasetIntegrityError` on mismatch and deletes nothing.
    """
    info = get_info(name)
    folder = Path(path)
    want = expected or info.tree_digest
    actual = tree_digest(folder, info.splits.folders)
    if actual != want:
        raise DatasetIntegrityError(
            f"The {info.name} data in {folder} does not match the original: tree digest {actual}, "
            f"expected {want}. Nothing was deleted. Fix: remove or rename that folder and run "
            f"`tlcourse download {info.name}` again."
        )
    return folder


def verify_hymenoptera(path: str | os.PathLike[str], expected: str = HYMENOPTERA_TREE_DIGEST) -> Path:
    """Check ``path`` (a ``hymenoptera_data`` folder) against the known tree digest."""
    return verify_tree("hymenoptera", path, expected)


def _fetch(name: str, root: Path) -> None:
    """Download ``name`` into ``root`` (torchvision checks md5s; archives are tree-verified)."""
    info = get_info(name)
    root.mkdir(parents=True, exist_ok=True)
    if info.source == "url":
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(info.url, download_root=str(root), filename=info.archive, remove_finished=True)
        verify_tree(info, root / info.folder)
        return
    from torchvision import datasets

    cls = getattr(datasets, info.torchvision_class)
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)


def ensure_available(name: str, root: str | os.PathLike[str] | None = None, *, download: bool | None = None) -> Path:
    """Return the dataset folder, downloading first if missing and allowed.

    ``download=None`` downloads unless offline; ``TLCOURSE_OFFLINE`` always wins.
    """
    info = get_info(name)
    if dataset_available(info.name, root):
        return dataset_path(info.name, root)
    if info.source == "bundled":
        raise missing_package_error(info.name, info.pip_name)
    if is_offline():
        raise not_available_error(info.name, root, reason="offline")
    if download is False:
        raise not_available_error(info.name, root, reason="no-download")
    try:
        _fetch(info.name, data_root(root))
    except DatasetIntegrityError:
        raise
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; torchvision raises RuntimeError
        raise not_available_error(info.name, root, reason="failed") from exc
    if not dataset_available(info.name, root):
        raise not_available_error(info.name, root, reason="failed")
    return dataset_path(info.name, root)


def download(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Prefetch ``name`` into the data root for an offline classroom; return its folder.

    Bundled datasets (``mnist5k``, ``digits``) are only checked to load. Offline
    (``TLCOURSE_OFFLINE=1``) a missing dataset raises :class:`DatasetNotAvailableError`.
    """
    info = get_info(name)
    if info.source == "bundled":
        raw_arrays(info.name)
        return dataset_path(info.name, root)
    if info.tree_digest and dataset_available(info.name, root):
        return verify_tree(info, dataset_path(info.name, root))
    return ensure_available(info.name, root, download=True)  # archives: verified after fetching
