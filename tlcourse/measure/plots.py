"""Figures of the course. Every function returns its matplotlib Figure (and draws nothing else).

Lessons display the returned figure; tests can inspect it; students can save it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from tlcourse.measure.metrics import confusion_matrix

if TYPE_CHECKING:
    from tlcourse.training import History


def _grid(n: int, ncols: int, cell: float = 1.4) -> tuple[Figure, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), squeeze=False)
    flat = list(axes.flat)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def _to_displayable(image: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """(C,H,W) tensor -> (H,W) or (H,W,3) in [0,1], undoing normalisation if mean/std are given."""
    image = image.detach().cpu().float()
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, dtype=image.dtype).view(-1, 1, 1)
        std_t = torch.tensor(std, dtype=image.dtype).view(-1, 1, 1)
        image = image * std_t + mean_t
    else:
        low, high = image.min(), image.max()
        image = (image - low) / (high - low + 1e-8)
    image = image.clamp(0, 1)
    return image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)


def _np(tensor: torch.Tensor):  # matplotlib wants numpy arrays
    return tensor.detach().cpu().numpy()


def plot_history(history: History, title: str | None = None) -> Figure:
    """Learning curves: loss and accuracy per epoch, train against validation."""
    epochs = history["epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, history[f"train_{metric}"], marker="o", label="train")
        val = history[f"val_{metric}"]
        if any(v is not None for v in val):
            ax.plot(epochs, val, marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if history.best_epoch is not None:
        for ax in (ax_loss, ax_acc):
            ax.axvline(history.best_epoch, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(title or f"Learning curves ({history.device})")
    fig.tight_layout()
    return fig


def plot_histories(histories: Mapping[str, History], title: str | None = None) -> Figure:
    """Several runs' learning curves side by side: loss and accuracy per epoch, one colour per run.

    Validation is drawn solid, training dashed in the same colour, so that runs compare at a glance.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (name, history), colour in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(history["epoch"], history[f"train_{metric}"], ls="--", color=colour, alpha=0.7, label=f"{name}, train")
            val = history[f"val_{metric}"]
            if any(v is not None for v in val):
                ax.plot(history["epoch"], val, marker="o", color=colour, label=f"{name}, validation")
    for ax, label in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title or "Learning curves")
    fig.tight_layout()
    return fig


def show_images(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | None = None,
    classes: Sequence[str] | None = None,
    predictions: Sequence[int] | torch.Tensor | None = None,
    *,
    ncols: int = 8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    title: str | None = None,
) -> Figure:
    """A grid of images (N,C,H,W) with their labels; with predictions, wrong ones are titled in red."""
    images = torch.as_tensor(images)
    fig, axes = _grid(len(images), ncols)
    name = (lambda i: classes[i]) if classes is not None else str
    for k, (ax, image) in enumerate(zip(axes, images)):
        shown = _to_displayable(image, mean, std)
        ax.imshow(_np(shown), cmap="gray" if shown.dim() == 2 else None)
        if labels is None:
            continue
        truth = int(labels[k])
        if predictions is None:
            ax.set_title(name(truth), fontsize=8)
        else:
            guess = int(predictions[k])
            ax.set_title(f"{name(guess)} (true {name(truth)})", fontsize=8, color="black" if guess == truth else "red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_filters(weight: torch.Tensor | torch.nn.Conv2d, *, ncols: int = 8, title: str | None = None) -> Figure:
    """First-layer filters: one panel per output channel (RGB for 3 input channels, else the channel mean)."""
    if isinstance(weight, torch.nn.Conv2d):
        weight = weight.weight
    weight = weight.detach().cpu()
    if weight.shape[1] != 3:
        weight = weight.mean(dim=1, keepdim=True)
    fig, axes = _grid(len(weight), ncols, cell=1.1)
    for ax, kernel in zip(axes, weight):
        shown = _to_displayable(kernel, None, None)
        ax.imshow(_np(shown), cmap="gray" if shown.dim() == 2 else None, interpolation="nearest")
    fig.suptitle(title or f"{len(weight)} filters of size {tuple(weight.shape[-2:])}")
    fig.tight_layout()
    return fig


def plot_feature_maps(maps: torch.Tensor, *, ncols: int = 8, title: str | None = None) -> Figure:
    """The channels of one feature map tensor (C,H,W) or (1,C,H,W) as a grid of heat maps."""
    maps = maps.detach().cpu()
    if maps.dim() == 4:
        maps = maps[0]
    fig, axes = _grid(len(maps), ncols, cell=1.2)
    for index, (ax, channel) in enumerate(zip(axes, maps)):
        ax.imshow(_np(channel), cmap="viridis", interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    fig.suptitle(title or f"{len(maps)} feature maps of size {tuple(maps.shape[-2:])}")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    targets: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    *,
    normalize: bool = False,
    title: str | None = None,
) -> Figure:
    """Confusion matrix, true classes in rows, predicted in columns, counts written in the cells."""
    matrix = confusion_matrix(targets, predictions, len(classes)).double()
    if normalize:
        matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(_np(matrix), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = matrix[i, j].item()
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if value > threshold else "black")
    ax.set_title(title or "Confusion matrix")
    fig.tight_layout()
    return fig
