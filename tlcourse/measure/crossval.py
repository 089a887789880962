"""An honest accuracy for a head on cached features: repeated stratified k-fold cross-validation.

Ants vs bees has no test set: choosing a recipe by its validation accuracy *and* reporting that accuracy
flatters it (and the best epoch chosen on validation flatters it more). On cached features a linear head
trains in a second, so we can afford to pool the training and validation images, split them into ``folds``
stratified folds ``repeats`` times (scikit-learn's ``RepeatedStratifiedKFold``), train a fresh head on each
training part and test it on the held-out fold. Every image is tested exactly once per repeat, by a head
that never saw it.

:func:`label_budget_curve` asks the transfer question on the same features: how accurate is a head trained on
only ``n`` labelled examples (stratified, several draws), tested on all the others?
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedShuffleSplit

from tlcourse.measure.metrics import wilson_interval
from tlcourse.transfer.features import Features, train_head

Prepare = Callable[[Features, Features], tuple[Features, Features]]


@dataclass(frozen=True)
class CrossValResult:
    """Out-of-fold accuracy of each repeat, their mean, and a 95% interval for ``images`` tested images."""

    repeat_accuracies: list[float]
    fold_accuracies: list[float]
    images: int
    folds: int
    repeats: int

    @property
    def mean(self) -> float:
        """The out-of-fold accuracy averaged over the repeats."""
        return sum(self.repeat_accuracies) / len(self.repeat_accuracies)

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval of the mean accuracy on ``images`` images.

        It measures the sampling error of the images (which photos were collected), not the variation between
        training runs; :attr:`repeat_accuracies` shows that one.
        """
        return wilson_interval(round(self.mean * self.images), self.images)

    def to_dict(self) -> dict[str, object]:
        """Plain fields plus ``mean``, ``ci_low`` and ``ci_high``, for a lesson's results JSON."""
        low, high = self.interval
        return {**asdict(self), "mean": self.mean, "ci_low": low, "ci_high": high}


def pooled(*parts: Features) -> Features:
    """One :class:`Features` holding the rows of all ``parts`` (e.g. train and validation)."""
    return Features(torch.cat([p.features for p in parts]), torch.cat([p.targets for p in parts]))


def cross_validate_head(
    features: Features,
    num_classes: int,
    *,
    folds: int = 5,
    repeats: int = 3,
    seed: int = 0,
    prepare: Prepare | None = None,
    **head_options: Any,
) -> CrossValResult:
    """Repeated stratified k-fold accuracy of :func:`~tlcourse.transfer.train_head` on ``features``.

    ``prepare(train, test)`` may transform each split using statistics of its training part only (e.g.
    centring on the training mean); ``head_options`` go to ``train_head`` (``epochs``, ``lr``, ``min_steps``...).
    """
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    targets = features.targets.numpy()
    correct = torch.zeros(repeats)
    fold_accuracies = []
    for index, (train_rows, test_rows) in enumerate(splitter.split(targets, targets)):
        train, test = features.subset(train_rows), features.subset(test_rows)
        if prepare is not None:
            train, test = prepare(train, test)
        head, _ = train_head(train, None, num_classes, seed=seed + index, device="cpu", **head_options)
        with torch.no_grad():
            hits = int((head(test.features).argmax(1) == test.targets).sum())
        correct[index // folds] += hits
        fold_accuracies.append(hits / len(test))
    total = len(features)
    return CrossValResult([float(c) / total for c in correct], fold_accuracies, total, folds, repeats)


def label_budget_curve(
    features: Features,
    num_classes: int,
    budgets: Sequence[int],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    **head_options: Any,
) -> dict[int, list[float]]:
    """For each budget ``n``: the test accuracy of a head trained on ``n`` stratified examples, one per seed.

    Each seed draws its own ``n`` training rows (scikit-learn's ``StratifiedShuffleSplit``, so both classes keep
    their share) and tests on every other row; ``head_options`` go to :func:`~tlcourse.transfer.train_head`.
    """
    targets = features.targets.numpy()
    curve: dict[int, list[float]] = {}
    for budget in budgets:
        if not num_classes <= budget <= len(features) - num_classes:  # at least one row of each class on each side
            raise ValueError(
                f"a budget must be between {num_classes} and {len(features) - num_classes} examples, not {budget}"
            )
        accuracies = []
        for seed in seeds:
            split = StratifiedShuffleSplit(n_splits=1, train_size=budget, random_state=seed)
            train_rows, test_rows = next(split.split(targets, targets))
            train, test = features.subset(train_rows), features.subset(test_rows)
            head, _ = train_head(train, None, num_classes, seed=seed, device="cpu", **head_options)
            with torch.no_grad():
                accuracies.append(float((head(test.features).argmax(1) == test.targets).float().mean()))
        curve[budget] = accuracies
    return curve
