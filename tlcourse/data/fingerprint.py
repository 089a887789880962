"""Content fingerprints: short digests of tensors, networks, datasets and loaders, for keying caches by content.

Two things get the same fingerprint only when a computation over them gives the same result: a network's
modules (class and settings, ``extra_repr``) and every tensor of its ``state_dict``; a dataset's pixels (in
memory) or its files' paths, sizes and modification times (on disk), which of them, in which order, and the
``repr`` of its transform. Anything that cannot be fingerprinted safely (a shuffled loader, a dataset of an
unknown kind, a random or opaque transform such as a ``Lambda``) gives ``None``, and callers then compute
without a cache. Edits to a ``forward`` method's code are not seen: a changed network keeps its name only if
its modules, settings and weights are the same.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler, Subset, TensorDataset

from tlcourse.data.datasets import SplitDataset, TensorImageDataset

__all__ = ["dataset_fingerprint", "loader_fingerprint", "module_fingerprint", "tensor_fingerprint"]

DIGEST_CHARS = 20


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def _update_tensor(hasher: Any, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    if tensor.numel():
        hasher.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A digest of the tensors' dtypes, shapes and values (not their memory layout or device)."""
    hasher = _hasher()
    for tensor in tensors:
        _update_tensor(hasher, tensor)
    return hasher.hexdigest()[:DIGEST_CHARS]


def module_fingerprint(model: nn.Module, skip: str | None = None) -> str:
    """A digest of a network's modules (class and settings) and every entry of its ``state_dict``.

    ``skip`` leaves out one submodule (e.g. the head, whose weights do not change the features it reads).
    """
    hasher = _hasher()
    for name, module in model.named_modules():
        if skip and (name == skip or name.startswith(skip + ".")):
            continue
        hasher.update(f"{name}\0{type(module).__module__}.{type(module).__qualname__}\0{module.extra_repr()}\n".encode())
    for name, value in model.state_dict().items():
        if skip and name.startswith(skip + "."):
            continue
        hasher.update(name.encode())
        if isinstance(value, torch.Tensor):
            _update_tensor(hasher, value)
        else:
            hasher.update(repr(value).encode())
    return hasher.hexdigest()[:DIGEST_CHARS]


def _files_fingerprint(samples: list[tuple[str, int]]) -> str:
    hasher = _hasher()
    for path, label in samples:
        stat = os.stat(path)
        hasher.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
    return hasher.hexdigest()[:DIGEST_CHARS]


_OPAQUE = ("Lambda", "Random", "kornia", "<", " at 0x")  # random draws, or a repr that hides what it does


def _transform_repr(transform: object) -> str | None:
    """The transform's repr when it shows a deterministic pipeline's parameters, else None (not cacheable)."""
    text = repr(transform)
    return None if any(marker in text for marker in _OPAQUE) else text


def dataset_fingerprint(dataset: Dataset) -> str | None:
    """A digest of what ``dataset`` returns, or None when its kind cannot be fingerprinted safely.

    Knows ``TensorDataset``, the course's in-memory and split datasets, ``Subset`` and torchvision's
    folder datasets (``samples``: files, by path, size and modification time). A transform is part of it
    by its ``repr``, which lists the parameters of torchvision's transforms; a random transform (its draws
    would be frozen) or one whose ``repr`` hides what it does (a ``Lambda``, a function) gives None.
    """
    if isinstance(dataset, TensorDataset):
        return "tensors:" + tensor_fingerprint(*dataset.tensors)
    if isinstance(dataset, TensorImageDataset):
        transform = _transform_repr(dataset.transform)
        return None if transform is None else f"images:{tensor_fingerprint(dataset.images, dataset.targets)}:{transform}"
    if isinstance(dataset, SplitDataset):
        base, transform = dataset_fingerprint(dataset.base), _transform_repr(dataset.transform)
        if base is None or transform is None:
            return None
        indices = tensor_fingerprint(torch.tensor(dataset.indices, dtype=torch.long))
        return f"split({base}):{indices}:{transform}"
    if isinstance(dataset, Subset):
        base = dataset_fingerprint(dataset.dataset)
        return None if base is None else f"subset({base}):{tensor_fingerprint(torch.as_tensor(list(dataset.indices)))}"
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and all(isinstance(s, tuple) and len(s) == 2 for s in samples):
        transform = _transform_repr(getattr(dataset, "transform", None))
        target_transform = _transform_repr(getattr(dataset, "target_transform", None))
        if transform is None or target_transform is None:
            return None
        return f"files:{_files_fingerprint(samples)}:{transform}:{target_transform}"
    return None


def _yields_in_order(loader: DataLoader) -> bool:
    """Whether ``loader`` yields every item of its dataset once, in order, batched the standard way.

    Either rows collated by ``default_collate`` (``DataLoader(dataset, batch_size)``), or a tensor dataset
    indexed a batch at a time (:func:`tlcourse.data.tensor_loader`: a ``BatchSampler`` as the sampler).
    """
    if _every_row_in_order(loader.sampler, loader.dataset):
        batches = loader.batch_sampler  # a batch_sampler passed in replaces the sampler: it must be built on it
        built_on_sampler = type(batches) is BatchSampler and batches.sampler is loader.sampler and not batches.drop_last
        return built_on_sampler and loader.collate_fn is torch.utils.data.default_collate
    sampler = loader.sampler
    indexed = loader.batch_size is None and isinstance(loader.dataset, TensorDataset)
    in_order = type(sampler) is BatchSampler and _every_row_in_order(sampler.sampler, loader.dataset)
    return indexed and in_order and not sampler.drop_last and loader.collate_fn is torch.utils.data.default_convert


def _every_row_in_order(sampler: object, dataset: Dataset) -> bool:
    """A ``SequentialSampler`` over all of ``dataset`` (not over the first rows only)."""
    return isinstance(sampler, SequentialSampler) and len(sampler.data_source) == len(dataset)


def loader_fingerprint(loader: Any) -> str | None:
    """The fingerprint of the images a ``DataLoader`` yields, in order, or None (a shuffled or custom loader, an unknown dataset)."""
    if not isinstance(loader, DataLoader) or not _yields_in_order(loader):
        return None
    return dataset_fingerprint(loader.dataset)
