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
    and val views of one underlying dataset can use different transforms.
    """

    def __init__(
        self,
        base: Dataset,
        indices: Sequence[int],
        targets: Sequence[int],
        classes: Sequence[str],
        transform: Callable | None = None,
        split: str = "",
    ) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.targets = [int(targets[i]) for i in self.indices]
        self.classes = list(classes)
        self.transform = transform
        self.split = split

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[self.indices[index]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)

    def subset(self, positions: Sequence[int], split: str | None = None) -> SplitDataset:
        """A view of some of this split's images (``positions`` index into this split)."""
        view = SplitDataset.__new__(SplitDataset)
        view.base, view.classes, view.transform = self.base, self.classes, self.transform
        view.indices = [self.indices[p] for p in positions]
        view.targets = [self.targets[p] for p in positions]
        view.split = self.split if split is None else split
        return view

    def __repr__(self) -> str:
        name = f" {self.split!r}" if self.split else ""
        return f"SplitDataset{name}({len(self)} images, {len(self.classes)} classes)"
