"""Deterministic splits and per-class subsets (the split seed is fixed so runs stay comparable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

#: Seed of every train/val/test split; a constant, so results are comparable across runs.
SPLIT_SEED = 20240917


def targets_of(dataset: Any) -> list[int]:
    """Labels of ``dataset`` as a list of ints (``.targets``, also through ``Subset``)."""
    if isinstance(dataset, Subset) and not hasattr(dataset, "targets"):
        parent = targets_of(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"{type(dataset).__name__} has no .targets; cannot split it by class")
    if isinstance(targets, torch.Tensor):
        return [int(t) for t in targets.tolist()]
    return [int(t) for t in targets]


def _by_class(targets: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        groups.setdefault(int(label), []).append(index)
    return dict(sorted(groups.items()))


def _shuffled(indices: list[int], generator: torch.Generator) -> list[int]:
    order = torch.randperm(len(indices), generator=generator).tolist()
    return [indices[i] for i in order]


def per_class_indices(
    targets: Sequence[int], n: int, seed: int = 0, classes: Sequence[str] | None = None, *, sort: bool = True
) -> list[int]:
    """``n`` indices of every class, chosen by ``seed``: in ascending order, or (``sort=False``) class by class.

    The choice for a smaller ``n`` is contained in the choice for a larger one. ``targets`` may be
    a list or a tensor of class indices.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of images per class, not {n}")
    generator = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for label, indices in _by_class(targets).items():
        if len(indices) < n:
            name = classes[label] if classes is not None and label < len(classes) else label
            raise ValueError(
                f"Class {name!r} has only {len(indices)} images, fewer than the {n} per class asked for."
            )
        chosen += _shuffled(indices, generator)[:n]
    return sorted(chosen) if sort else chosen


def subset_per_class(dataset: Dataset, n: int, seed: int = 0) -> Subset:
    """A deterministic ``Subset`` with exactly ``n`` images of every class of ``dataset``."""
    classes = getattr(dataset, "classes", None)
    return Subset(dataset, per_class_indices(targets_of(dataset), n, seed, classes))


def holdout_split(n: int, n_holdout: int, seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into (rest, holdout) by a seeded permutation; both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_holdout:]), sorted(perm[:n_holdout])


def _count(size: int | float, available: int) -> int:
    return int(round(size * available)) if isinstance(size, float) else int(size)


def stratified_split(
    targets: Sequence[int], val: int | float, test: int | float, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int], list[int]]:
    """Stratified (train, val, test) indices, each sorted.

    ``val``/``test`` are images per class (int) or fractions of each class (float);
    train gets the rest of every class.
    """
    generator = torch.Generator().manual_seed(seed)
    train: list[int] = []
    val_idx: list[int] = []
    test_idx: list[int] = []
    for label, indices in _by_class(targets).items():
        n_test, n_val = _count(test, len(indices)), _count(val, len(indices))
        if n_test + n_val >= len(indices):
            raise ValueError(f"class {label} has {len(indices)} images, too few to split")
        order = _shuffled(indices, generator)
        test_idx += order[:n_test]
        val_idx += order[n_test : n_test + n_val]
        train += order[n_test + n_val :]
    return sorted(train), sorted(val_idx), sorted(test_idx)
