"""Build the fixed train/val/test splits of each dataset (untransformed bases + indices)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from tlcourse.data.datasets import TensorImageDataset
from tlcourse.data.fetch import dataset_path
from tlcourse.data.errors import DatasetIntegrityError
from tlcourse.data.memory import raw_arrays
from tlcourse.data.registry import DatasetInfo
from tlcourse.data.splits import holdout_split, stratified_split, targets_of

#: Size of the validation split carved out of the official training set.
VAL_SIZE = {"mnist": 5000, "fashion_mnist": 5000, "cifar10": 5000}
#: Per-class (val, test) sizes of the bundled datasets: ints are counts, floats fractions.
STRATIFIED = {"mnist5k": (50, 100), "digits": (0.2, 0.2)}


@dataclass
class Part:
    """One split: an untransformed base dataset, the indices used, and the base's labels."""

    base: Dataset
    indices: list[int]
    targets: list[int]


def build_parts(info: DatasetInfo, root: Path) -> dict[str, Part | None]:
    """The ``train``/``val``/``test`` parts of ``info`` (``test`` is None for hymenoptera)."""
    name = info.name
    if name in STRATIFIED:
        images, labels = raw_arrays(name)
        base = TensorImageDataset(images, labels, info.classes)
        targets = labels.tolist()
        train, val, test = stratified_split(targets, *STRATIFIED[name])
        return {split: Part(base, idx, targets) for split, idx in zip(("train", "val", "test"), (train, val, test))}
    if name == "hymenoptera":
        from torchvision.datasets import ImageFolder

        folder = dataset_path(name, root)
        parts: dict[str, Part | None] = {"test": None}
        for split in ("train", "val"):
            base = ImageFolder(str(folder / split))
            if tuple(base.classes) != info.classes:
                raise DatasetIntegrityError(
                    f"{folder / split} has class folders {base.classes}, expected {list(info.classes)}"
                )
            parts[split] = Part(base, list(range(len(base))), list(base.targets))
        return parts
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    official_train = cls(str(root), train=True, download=False)
    official_test = cls(str(root), train=False, download=False)
    train_targets = targets_of(official_train)
    train, val = holdout_split(len(official_train), VAL_SIZE[name])
    test_targets = targets_of(official_test)
    return {
        "train": Part(official_train, train, train_targets),
        "val": Part(official_train, val, train_targets),
        "test": Part(official_test, list(range(len(official_test))), test_targets),
    }
