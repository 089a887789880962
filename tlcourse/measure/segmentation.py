"""Scores of a semantic segmentation: intersection over union per class, its mean, and pixel accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tlcourse.measure.metrics import confusion_matrix

__all__ = ["SegmentationScores", "segmentation_scores"]


@dataclass
class SegmentationScores:
    """``iou[c]`` = pixels right for class ``c`` / pixels that are ``c`` or predicted ``c`` (NaN if neither).

    ``mean_iou`` averages it over the classes that occur in the targets or the predictions; ``pixel_accuracy``
    is the share of pixels labelled right (mostly background on a sparse canvas, hence the mean IoU).
    """

    iou: list[float]
    mean_iou: float
    pixel_accuracy: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def segmentation_scores(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> SegmentationScores:
    """IoU per class, mean IoU and pixel accuracy of predicted class maps against target maps (any equal shapes)."""
    matrix = confusion_matrix(targets, predictions, num_classes).double()
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - hits
    iou = hits / union
    return SegmentationScores(iou.tolist(), float(iou[union > 0].mean()), float(hits.sum() / matrix.sum()))
