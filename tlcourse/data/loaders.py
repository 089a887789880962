"""``load()``: one call from a dataset name to datasets, loaders and a readable summary."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tlcourse.core.config import data_root
from tlcourse.data.batched import batch_preset
from tlcourse.data.datasets import SplitDataset
from tlcourse.data.fetch import dataset_available, ensure_available
from tlcourse.data.registry import DatasetInfo, get_info
from tlcourse.data.sources import build_parts
from tlcourse.data.splits import SPLIT_SEED, per_class_indices
from tlcourse.data.transforms import transform_preset

Transform = str | Callable | None


def _platform() -> str:
    return sys.platform


def loader_kwargs(device: str | torch.device = "auto", *, in_memory: bool = False) -> dict[str, Any]:
    """``DataLoader`` keyword defaults that work on Linux, macOS and Windows.

    Worker processes only on Linux, only for datasets read from disk (``spawn`` on
    Windows/macOS breaks classes defined in notebooks) and only where cores are to spare:
    none on 2 cores or fewer, else half the cores (at most 4), so that decoding images never
    competes with torch's own threads for a core (that makes both 3-60x slower).
    ``pin_memory`` only for CUDA. ``device="auto"`` means CUDA when it is available.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    platform = _platform()
    cores = os.cpu_count() or 1
    if in_memory or platform.startswith(("win", "cygwin", "darwin")) or cores <= 2:
        workers = 0
    else:
        workers = min(4, cores // 2)
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": torch.device(device).type == "cuda",
    }


@dataclass(repr=False)
class DataBundle:
    """Everything :func:`load` returns: datasets, loaders, classes and a one-sentence note."""

    name: str
    info: DatasetInfo
    classes: list[str]
    root: Path
    train: Dataset
    val: Dataset
    test: Dataset | None
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader | None
    note: str
    transform_name: str = ""
    train_transform_name: str = ""
    seed: int = 0

    def summary(self) -> str:
        """A few readable lines: what was loaded, sizes, batches and transforms."""
        shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        lines = [self.note, f"  classes ({len(self.classes)}): {shown}", f"  data root: {self.root}"]
        for split, dataset, loader in (
            ("train", self.train, self.train_loader),
            ("val", self.val, self.val_loader),
            ("test", self.test, self.test_loader),
        ):
            if dataset is None or loader is None:
                lines.append(f"  {split + ':':6} none")
                continue
            batches = math.ceil(len(dataset) / loader.batch_size) if loader.batch_size else 0
            how = f"shuffled, seed {self.seed}, " if split == "train" else ""
            tf = self.train_transform_name if split == "train" else self.transform_name
            tf += ", applied per batch" if getattr(dataset, "batch_transform", None) is not None else ""
            plural = "batch" if batches == 1 else "batches"
            lines.append(
                f"  {split + ':':6} {len(dataset):,} images, {batches} {plural} of {loader.batch_size} "
                f"({how}transform {tf})"
            )
        lines.append(
            f"  loaders: num_workers={self.train_loader.num_workers}, pin_memory={self.train_loader.pin_memory}"
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _batched(transform: Transform, info: DatasetInfo) -> Callable | None:
    """The batch version of a named preset for an in-memory dataset (None for callables and photo presets)."""
    return batch_preset(transform, info) if isinstance(transform, str) and info.in_memory else None


def _resolve(transform: Transform, info: DatasetInfo) -> tuple[Callable | None, str]:
    if transform is None:
        return None, "none (raw images)"
    if isinstance(transform, str):
        name = info.default_transform if transform == "default" else transform
        return transform_preset(name, info), repr(name)
    if callable(transform):
        return transform, getattr(transform, "__name__", type(transform).__name__)
    raise TypeError(f"transform must be a preset name, a callable or None, not {type(transform).__name__}")


def _check_count(label: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{label} must be a positive int, not {value!r}")


def load(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    transform: Transform = "default",
    train_transform: Transform = None,
    batch_size: int = 64,
    eval_batch_size: int | None = None,
    per_class: int | None = None,
    eval_per_class: int | None = None,
    seed: int = 0,
    download: bool | None = None,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
) -> DataBundle:
    """Load a dataset by name with its fixed train/val/test split and ready DataLoaders.

    ``transform`` (preset name or callable) is used for val/test, and for train unless
    ``train_transform`` is given. ``per_class``/``eval_per_class`` take ``N`` images per class
    of train / of val and test (train's choice depends on ``seed``; val/test subsets are fixed
    so evaluations stay comparable). ``download=None`` downloads if missing unless
    ``TLCOURSE_OFFLINE`` is set. ``seed`` seeds train shuffling; the split itself never changes.
    """
    info = get_info(name)
    _check_count("batch_size", batch_size)
    _check_count("eval_batch_size", eval_batch_size)
    _check_count("per_class", per_class)
    _check_count("eval_per_class", eval_per_class)
    resolved_root = data_root(root)
    ensure_available(info.name, resolved_root, download=download)

    eval_tf, eval_tf_name = _resolve(transform, info)
    eval_batched = _batched(transform, info)
    if train_transform is None:
        train_tf, train_tf_name, train_batched = eval_tf, eval_tf_name, eval_batched
    else:
        train_tf, train_tf_name = _resolve(train_transform, info)
        train_batched = _batched(train_transform, info)

    parts = build_parts(info, resolved_root)
    splits: dict[str, SplitDataset | None] = {}
    for split, part in parts.items():
        if part is None:
            splits[split] = None
            continue
        tf, batched = (train_tf, train_batched) if split == "train" else (eval_tf, eval_batched)
        dataset = SplitDataset(part.base, part.indices, part.targets, info.classes, tf, split, batched)
        n, subset_seed = (per_class, seed) if split == "train" else (eval_per_class, SPLIT_SEED)
        if n is not None:
            dataset = dataset.subset(per_class_indices(dataset.targets, n, subset_seed, info.classes))
        splits[split] = dataset

    kwargs = loader_kwargs(device, in_memory=info.in_memory)
    if num_workers is not None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, not {num_workers}")
        kwargs.update(num_workers=num_workers, persistent_workers=num_workers > 0)
    eval_bs = eval_batch_size or batch_size
    train, val, test = splits["train"], splits["val"], splits.get("test")
    assert train is not None and val is not None
    train_loader = DataLoader(
        train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed), **kwargs
    )
    val_loader = DataLoader(val, batch_size=eval_bs, shuffle=False, **kwargs)
    test_loader = DataLoader(test, batch_size=eval_bs, shuffle=False, **kwargs) if test is not None else None

    sizes = [f"{len(train):,} train", f"{len(val):,} val"] + ([f"{len(test):,} test"] if test is not None else [])
    extra = []
    if per_class is not None:
        extra.append(f"train subset of {per_class} per class")
    if eval_per_class is not None:
        extra.append(f"eval subsets of {eval_per_class} per class")
    note = f"{info.name}: {info.description} ({' / '.join(sizes)}{'; ' + ', '.join(extra) if extra else ''})"
    return DataBundle(
        name=info.name,
        info=info,
        classes=list(info.classes),
        root=resolved_root,
        train=train,
        val=val,
        test=test,
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        note=note,
        transform_name=eval_tf_name,
        train_transform_name=train_tf_name,
        seed=seed,
    )


def load_small_images(
    name: str = "auto", *, smoke: bool = False, seed: int = 0, per_class: int | None = None, batch_size: int = 32
) -> DataBundle:
    """The 32x32 images lessons 02 and 03 train on, with augmentation for training.

    ``name="auto"``: Fashion-MNIST when it is already on this machine (``tlcourse download
    fashion_mnist``), else the bundled mnist5k digits. Grey images get the ``lenet`` presets, colour ones (``"cifar10"``) ``normalize``.
    ``smoke=True`` takes 40 training and 20 evaluation images per class; else ``per_class`` (None: all).
    """
    if name == "auto":
        name = "fashion_mnist" if dataset_available("fashion_mnist") else "mnist5k"
    grey = get_info(name).channels == 1
    eval_tf, train_tf = ("lenet", "lenet_augment") if grey else ("normalize", "augment")
    subset = {"per_class": 40, "eval_per_class": 20} if smoke else {"per_class": per_class}
    return load(name, transform=eval_tf, train_transform=train_tf, batch_size=batch_size, seed=seed, **subset)
