"""Where the course keeps data and weights, and whether it may use the network.

Every other module asks these functions instead of reading environment
variables itself, so the rules live in one place:

* data root: explicit argument, else ``TLCOURSE_DATA``, else a per-user cache folder;
* offline: ``TLCOURSE_OFFLINE=1`` (or ``true``/``yes``) forbids every download;
* pretrained weights downloaded by torchvision go to torch's hub cache (``TORCH_HOME``).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV = "TLCOURSE_DATA"
OFFLINE_ENV = "TLCOURSE_OFFLINE"
CACHE_ENV = "TLCOURSE_CACHE"

_TRUE = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The per-user cache folder of the course (``TLCOURSE_CACHE`` overrides it)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_cache_dir("tlcourse", appauthor=False))


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: ``root`` if given, else ``TLCOURSE_DATA``, else ``<cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    from_env = os.environ.get(DATA_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return cache_dir() / "data"


def data_root_source(root: str | os.PathLike[str] | None = None) -> str:
    """Say where :func:`data_root` took its answer from (for ``tlcourse doctor``)."""
    if root is not None:
        return "argument"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return "default cache"


def is_offline() -> bool:
    """True when ``TLCOURSE_OFFLINE`` asks the course never to touch the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE


def weights_dir() -> Path:
    """Folder where torchvision stores downloaded pretrained weights (torch hub cache)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"
