"""Dataset classes: in-memory uint8 images, and a split view that applies its own transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


class TensorImageDataset(Dataset):
    """Images held in memory as a uint8 tensor ``(N, C, H, W)`` with integer labels."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str],
        transform: Callable | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = targets.long()
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


class SplitDataset(Dataset):
    """The images ``indices`` of ``base``, passed through ``transform``.

    ``base`` must return ``(image, label)`` without a transform of its own, so that train
    and val views of one underlying dataset can use different transforms. ``batch_transform`` is the same
    transform for a uint8 batch ``(B, C, H, W)`` (:func:`tlcourse.data.batched.batch_preset`): when the base
    holds its images in memory, a ``DataLoader`` then fetches a whole batch with one call of it
    (``__getitems__``) instead of one call of ``transform`` per image. Setting another ``transform`` turns it off.
    """

    def __init__(
        self,
        base: Dataset,
        indices: Sequence[int],
        targets: Sequence[int],
        classes: Sequence[str],
        transform: Callable | None = None,
        split: str = "",
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.targets = [int(targets[i]) for i in self.indices]
        self.classes = list(classes)
        self.transform = transform
        self.split = split
        self.batch_transform = batch_transform
        self._batched_for = transform  # the per-image transform that batch_transform stands for

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[self.indices[index]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)

    def __getitems__(self, positions: Sequence[int]) -> list[tuple[Any, int]]:
        """The images at ``positions``, transformed as one batch when that is possible (see the class)."""
        if not positions or not self._batches_in_memory():
            return [self[p] for p in positions]
        index = torch.as_tensor([self.indices[p] for p in positions], dtype=torch.long)
        images = self.batch_transform(self.base.images[index])
        return list(zip(images.unbind(0), self.base.targets[index].tolist()))

    def _batches_in_memory(self) -> bool:
        """Whether ``batch_transform`` still stands for ``transform`` and the base holds raw images in memory."""
        current = self.batch_transform is not None and self.transform is not None and self.transform is self._batched_for
        return current and isinstance(self.base, TensorImageDataset) and self.base.transform is None

    def subset(self, positions: Sequence[int], split: str | None = None) -> SplitDataset:
        """A view of some of this split's images (``positions`` index into this split)."""
        view = SplitDataset.__new__(SplitDataset)
        view.base, view.classes, view.transform = self.base, self.classes, self.transform
        view.batch_transform, view._batched_for = self.batch_transform, self._batched_for
        view.indices = [self.indices[p] for p in positions]
        view.targets = [self.targets[p] for p in positions]
        view.split = self.split if split is None else split
        return view

    def __repr__(self) -> str:
        name = f" {self.split!r}" if self.split else ""
        return f"SplitDataset{name}({len(self)} images, {len(self.classes)} classes)"
