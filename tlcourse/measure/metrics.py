"""Error analysis on predictions: confusion matrix and the most confident mistakes."""

from __future__ import annotations

import math

import torch


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``[true_class, predicted_class]`` as a (num_classes x num_classes) long tensor."""
    targets = torch.as_tensor(targets).long().flatten()
    predictions = torch.as_tensor(predictions).long().flatten()
    if targets.shape != predictions.shape:
        raise ValueError(f"targets {tuple(targets.shape)} and predictions {tuple(predictions.shape)} differ in shape")
    flat = targets * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix (NaN for a class with no examples)."""
    matrix = matrix.double()
    return matrix.diagonal() / matrix.sum(dim=1)


def worst_mistakes(
    targets: torch.Tensor, probabilities: torch.Tensor, k: int = 8
) -> list[tuple[int, int, int, float]]:
    """The ``k`` wrong predictions made with the highest confidence.

    Returns ``(index, true_class, predicted_class, confidence)`` tuples, most confident first.
    """
    targets = torch.as_tensor(targets).long()
    confidence, predicted = torch.as_tensor(probabilities).max(dim=1)
    wrong = (predicted != targets).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True)[:k]
    return [
        (int(i), int(targets[i]), int(predicted[i]), float(confidence[i]))
        for i in wrong[order].tolist()
    ]


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of an accuracy of ``correct`` out of ``total`` (95% for ``z=1.96``).

    It says how far an accuracy measured on ``total`` images can be from the accuracy on all images like
    them: with 153 validation images one image is 0.65 points, and the interval is several points wide.
    """
    if total <= 0:
        raise ValueError(f"an interval needs at least one image, got total={total}")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half
