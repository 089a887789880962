"""Datasets decoded once into tensors, and loaders over tensors held in memory.

Decoding and resizing a photo costs far more than a forward pass through a small head, so the
transfer lessons decode their images once (:func:`dataset_tensors`) and read batches of the
tensors afterwards (:func:`tensor_loader`), in the same order every time for the same ``seed``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

__all__ = ["dataset_tensors", "resize_images", "tensor_loader"]


def dataset_tensors(dataset: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(image, label)`` of ``dataset``, in order, as two tensors: images ``(N, ...)``, labels ``(N,)`` long."""
    images, labels = zip(*DataLoader(dataset, batch_size=batch_size, shuffle=False))
    return torch.cat(images), torch.cat(labels).long()


def tensor_loader(
    *tensors: torch.Tensor, batch_size: int = 32, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """Batches of in-memory tensors (no workers: nothing to decode); shuffled with ``seed`` when asked.

    Each batch is one indexing of the tensors (``tensor[indices]``) rather than ``batch_size`` single rows
    stacked together: for a small head on cached features, collating rows took half of every step. The
    batches, and their order for a given ``seed``, are those of ``DataLoader(TensorDataset(*tensors),
    batch_size, shuffle)``.
    """
    dataset = TensorDataset(*tensors)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None,
                      generator=generator)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """A batch ``(N, C, H, W)`` resized to ``size`` x ``size`` (bilinear, antialiased); unchanged when already that size."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True)
