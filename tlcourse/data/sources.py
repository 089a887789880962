"""Build the fixed train/val/test splits of each dataset (untransformed bases + indices).

How each dataset is split comes from its record's :class:`~tlcourse.data.registry.SplitPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from tlcourse.data.datasets import TensorImageDataset
from tlcourse.data.errors import DatasetIntegrityError
from tlcourse.data.fetch import dataset_path
from tlcourse.data.memory import raw_arrays
from tlcourse.data.registry import DatasetInfo
from tlcourse.data.splits import holdout_split, stratified_split, targets_of


@dataclass
class Part:
    """One split: an untransformed base dataset, the indices used, and the base's labels."""

    base: Dataset
    indices: list[int]
    targets: list[int]


def _stratified(info: DatasetInfo) -> dict[str, Part | None]:
    images, labels = raw_arrays(info.name)
    base = TensorImageDataset(images, labels, info.classes)
    targets = labels.tolist()
    train, val, test = stratified_split(targets, info.splits.val, info.splits.test)
    return {split: Part(base, idx, targets) for split, idx in zip(("train", "val", "test"), (train, val, test))}


def _folders(info: DatasetInfo, root: Path) -> dict[str, Part | None]:
    from torchvision.datasets import ImageFolder

    folder = dataset_path(info.name, root)
    parts: dict[str, Part | None] = {"test": None}
    for split in info.splits.folders:
        base = ImageFolder(str(folder / split))
        if tuple(base.classes) != info.classes:
            raise DatasetIntegrityError(
                f"{folder / split} has class folders {base.classes}, expected {list(info.classes)}"
            )
        parts[split] = Part(base, list(range(len(base))), list(base.targets))
    return parts


def _holdout(info: DatasetInfo, root: Path) -> dict[str, Part | None]:
    from torchvision import datasets

    cls = getattr(datasets, info.torchvision_class)
    official_train = cls(str(root), train=True, download=False)
    official_test = cls(str(root), train=False, download=False)
    train_targets = targets_of(official_train)
    train, val = holdout_split(len(official_train), int(info.splits.val))
    test_targets = targets_of(official_test)
    return {
        "train": Part(official_train, train, train_targets),
        "val": Part(official_train, val, train_targets),
        "test": Part(official_test, list(range(len(official_test))), test_targets),
    }


def build_parts(info: DatasetInfo, root: Path) -> dict[str, Part | None]:
    """The ``train``/``val``/``test`` parts of ``info`` (``test`` is None for folder datasets)."""
    kind = info.splits.kind
    if kind == "stratified":
        return _stratified(info)
    if kind == "folders":
        return _folders(info, root)
    if kind == "holdout":
        return _holdout(info, root)
    raise ValueError(f"{info.name!r} has an unknown split kind {kind!r}")
