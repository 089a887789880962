"""Dense prediction on top of a classification backbone: digit canvases and a small segmentation network.

Lesson 13 moves a backbone trained to *classify* digits to a task that labels every *pixel*:

* :func:`make_canvases` pastes 1-3 real digits at random places on an empty canvas and labels each
  pixel with ``0`` (background) or ``1 + digit`` (a stroke of that digit): a semantic segmentation
  task with 11 classes whose masks come from the digits themselves, with nothing drawn by hand;
* :class:`SegmentationNet` is what a detector or segmenter keeps of a classifier: the backbone's
  feature maps at several strides (``body``, a ``torchvision`` feature extractor), a feature pyramid
  (``neck``, torchvision's :class:`~torchvision.ops.FeaturePyramidNetwork`, the neck of Faster R-CNN)
  and a new per-pixel classifier (``head``) on the finest pyramid level;
* :func:`resnet_segmenter` builds one around a :class:`~tlcourse.models.resnet.ResNet`.

Training is :func:`tlcourse.training.fit` with its default cross-entropy, which accepts ``(N, C, H, W)``
logits and ``(N, H, W)`` targets (:func:`train_segmenter`); :func:`predict_masks` returns the predicted classes of a batch of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FeaturePyramidNetwork

from tlcourse.core.device import get_device, seeded
from tlcourse.core.modes import inference_mode
from tlcourse.data import tensor_loader
from tlcourse.training import History, fit

__all__ = ["Canvases", "SegmentationNet", "make_canvases", "predict_masks", "resnet_segmenter", "train_segmenter"]


@dataclass(frozen=True)
class Canvases:
    """Images ``(N, 1, S, S)`` in 0..1, masks ``(N, S, S)`` (0 background, ``1 + d`` digit ``d``), and what was pasted.

    ``sources[i, k]`` is the index (into the digits given to :func:`make_canvases`) of the ``k``-th digit
    pasted on canvas ``i``, ``-1`` where canvas ``i`` has fewer digits; ``positions[i, k]`` its top-left corner
    ``(row, column)``.
    """

    images: torch.Tensor
    masks: torch.Tensor
    sources: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """11: background and the ten digits."""
        return 11

    def normalised(self, mean: float, std: float) -> torch.Tensor:
        """The images normalised like the backbone's training digits: ``(x - mean) / std``."""
        return (self.images - mean) / std

    def background_fraction(self) -> float:
        """Share of pixels labelled background."""
        return float((self.masks == 0).double().mean())


def make_canvases(
    digits: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    *,
    size: int = 64,
    digits_per_canvas: tuple[int, int] = (1, 3),
    threshold: float = 0.5,
    seed: int = 0,
) -> Canvases:
    """``count`` canvases of ``size`` x ``size``, each with a random number (in ``digits_per_canvas``) of digits.

    ``digits`` ``(M, 1, h, w)`` in 0..1 and their ``labels`` ``(M,)``: each canvas draws its digits from
    these (without repeats on one canvas) and pastes each at a uniformly random top-left corner; the
    canvas keeps the brighter of overlapping pixels. A pixel is labelled ``1 + label`` where a pasted
    digit is brighter than ``threshold``, else 0; where two digits' strokes overlap the later one wins.
    Building train and test canvases from disjoint digit sets keeps every test digit unseen. Seeded.
    """
    if digits.dim() != 4 or digits.shape[1] != 1:
        raise ValueError(f"digits must be (M, 1, h, w), got {tuple(digits.shape)}")
    low, high = digits_per_canvas
    h, w = digits.shape[-2:]
    if not 1 <= low <= high or high > len(digits) or h > size or w > size:
        raise ValueError(f"cannot paste {digits_per_canvas} digits of {h}x{w} from {len(digits)} on {size}x{size}")
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, size, size)
    masks = torch.zeros(count, size, size, dtype=torch.long)
    sources = torch.full((count, high), -1, dtype=torch.long)
    positions = torch.full((count, high, 2), -1, dtype=torch.long)
    numbers = torch.randint(low, high + 1, (count,), generator=generator)
    for i in range(count):
        chosen = torch.randperm(len(digits), generator=generator)[: int(numbers[i])]
        for k, index in enumerate(chosen.tolist()):
            row = int(torch.randint(0, size - h + 1, (1,), generator=generator))
            col = int(torch.randint(0, size - w + 1, (1,), generator=generator))
            digit = digits[index, 0]
            window = images[i, 0, row : row + h, col : col + w]
            torch.maximum(window, digit, out=window)
            stroke = digit > threshold
            masks[i, row : row + h, col : col + w][stroke] = 1 + int(labels[index])
            sources[i, k] = index
            positions[i, k] = torch.tensor([row, col])
    return Canvases(images, masks, sources, positions)


class SegmentationNet(nn.Module):
    """``body`` (feature maps by name, finest first) -> ``neck`` (a feature pyramid) -> ``head`` on the finest level.

    The logits ``(N, num_classes, H, W)`` are upsampled (bilinear) to the input's size when the finest
    level is coarser than the input.
    """

    def __init__(self, body: nn.Module, in_channels: Sequence[int], num_classes: int, channels: int = 32) -> None:
        super().__init__()
        self.body = body
        self.neck = FeaturePyramidNetwork(list(in_channels), channels)
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = self.neck(self.body(x))
        logits = self.head(next(iter(pyramid.values())))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits


def resnet_segmenter(backbone: nn.Module, num_classes: int = 11, channels: int = 32) -> SegmentationNet:
    """A :class:`SegmentationNet` on every stage (``layer1``, ``layer2``...) of a course ResNet (its ``fc`` is dropped).

    The body is ``torchvision``'s ``create_feature_extractor``, which traces ``forward``, so it runs the
    stem in the order the network does; the backbone's weights are shared, not copied.
    """
    names = [f"layer{i + 1}" for i in range(backbone.num_stages)]
    body = create_feature_extractor(backbone, {name: name for name in names})
    in_channels = [stage[-1].conv1.out_channels * type(stage[-1]).expansion for stage in backbone.stages]
    return SegmentationNet(body, in_channels, num_classes, channels)


def predict_masks(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, device: str | torch.device = "auto"
) -> torch.Tensor:
    """The predicted class of every pixel, ``(N, H, W)`` on the CPU (eval mode, no gradients; modes restored)."""
    dev = get_device(device)
    model.to(dev)
    outputs = []
    with inference_mode(model):
        for start in range(0, len(images), batch_size):
            outputs.append(model(images[start : start + batch_size].to(dev)).argmax(1).cpu())
    return torch.cat(outputs)


def train_segmenter(
    model: SegmentationNet,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    backbone_lr: float | None = None,
    batch_size: int = 16,
    foreground_weight: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> History:
    """Train the trainable parameters of ``model`` on ``images`` ``(N, C, H, W)`` and ``masks`` ``(N, H, W)``.

    AdamW with a one-cycle schedule through :func:`~tlcourse.training.fit`: the ``body``'s trainable parameters
    peak at ``backbone_lr`` (default ``lr``), the neck's and head's at ``lr``. The loss is cross-entropy over
    pixels, background weighted 1 and every other class ``foreground_weight`` (the canvases are mostly
    background). Seeded (batch order and any randomness in training); the caller's generators are untouched.
    (The history's ``train_acc`` counts correct pixels per image, not a fraction.)
    """
    body = [p for name, p in model.named_parameters() if name.startswith("body.") and p.requires_grad]
    rest = [p for name, p in model.named_parameters() if not name.startswith("body.") and p.requires_grad]
    groups = [{"params": rest, "lr": lr}]
    if body:
        groups.append({"params": body, "lr": lr if backbone_lr is None else backbone_lr})
    optimizer = torch.optim.AdamW(groups, lr=lr)
    num_classes = model.head[-1].out_channels
    weight = torch.full((num_classes,), float(foreground_weight))
    weight[0] = 1.0
    loss_fn = nn.CrossEntropyLoss(weight=weight.to(get_device(device)))
    loader = tensor_loader(images, masks, batch_size=batch_size, shuffle=True, seed=seed)
    with seeded(seed):
        return fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler="onecycle", loss_fn=loss_fn,
                   device=device, progress=False)  # fmt: skip
