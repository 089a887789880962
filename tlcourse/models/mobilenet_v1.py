"""MobileNet v1 (Howard et al., 2017): a stem convolution, then a stack of depthwise separable convolutions.

The network is ``stem (3x3 conv) -> [DepthwiseSeparableConv] * n -> global average pool -> linear``.
Its *width multiplier* (the paper's alpha) scales every layer's channels; the paper's Table 1 layout
for 224x224 images is :data:`MOBILENET_V1_LAYERS` (4.2 million parameters at width 1.0, about 0.47
million at width 0.25, with 1,000 classes). :data:`MOBILENET_V1_SMALL_LAYERS` is a shorter stack for
the course's 28x28 and 32x32 digits: the same channel sequence up to 512, three stride-2 layers (28 -> 4).

The blocks are :class:`~tlcourse.models.mobilenet.DepthwiseSeparableConv` with PyTorch's symmetric
padding and batch-norm constants by default (the network is meant to be trained from scratch here, and
TensorFlow's momentum of 0.01 would leave the running statistics far behind after a few hundred steps),
so the network traces with ``torch.fx`` (lesson 12 quantises it to int8).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from tlcourse.core.lookup import lookup
from tlcourse.models.blocks import Padding
from tlcourse.models.efficientnet import scale_width
from tlcourse.models.mobilenet import ConvBNAct, DepthwiseSeparableConv

__all__ = ["MOBILENET_V1_LAYERS", "MOBILENET_V1_SMALL_LAYERS", "MobileNetV1", "mobilenet_v1"]

#: ``(output channels, stride)`` of each depthwise separable layer, Table 1 of the paper (stem: 32, stride 2).
MOBILENET_V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip

#: A shorter stack for 28x28 or 32x32 inputs (stem 32 at stride 1): 28 -> 14 -> 7 -> 4 pixels.
MOBILENET_V1_SMALL_LAYERS: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))

_LAYOUTS = {"imagenet": (MOBILENET_V1_LAYERS, 2), "small": (MOBILENET_V1_SMALL_LAYERS, 1)}
STEM_CHANNELS = 32


class MobileNetV1(nn.Module):
    """Stem -> depthwise separable layers -> global average pool -> (dropout) -> linear.

    ``features`` is an ``nn.Sequential`` with children ``stem``, ``layer1`` ... ``layerN``;
    ``classifier`` is ``nn.Sequential(dropout, linear)``. ``width`` multiplies every channel count
    (rounded to a multiple of 8, as in torchvision's mobile networks). Every batch norm gets
    ``bn_momentum`` and ``bn_eps`` (PyTorch's defaults).
    """

    def __init__(
        self,
        layers: tuple[tuple[int, int], ...] = MOBILENET_V1_LAYERS,
        *,
        width: float = 1.0,
        in_channels: int = 3,
        num_classes: int = 1000,
        stem_stride: int = 2,
        dropout: float = 0.0,
        activation: Callable[[], nn.Module] = nn.ReLU6,
        padding: Padding = "symmetric",
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        channels = scale_width(STEM_CHANNELS, width)
        blocks: list[tuple[str, nn.Module]] = [
            ("stem", ConvBNAct(in_channels, channels, 3, stem_stride, activation=activation, padding=padding))
        ]
        for i, (out, stride) in enumerate(layers, start=1):
            out = scale_width(out, width)
            blocks.append((f"layer{i}", DepthwiseSeparableConv(channels, out, 3, stride, activation, padding)))
            channels = out
        self.features = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum, module.eps = bn_momentum, bn_eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def mobilenet_v1(
    width: float = 1.0,
    *,
    layout: str = "imagenet",
    in_channels: int = 3,
    num_classes: int = 1000,
    dropout: float = 0.0,
    padding: Padding = "symmetric",
) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``width``; ``layout`` ``"imagenet"`` (the paper's, 224x224 inputs)
    or ``"small"`` (:data:`MOBILENET_V1_SMALL_LAYERS`, stem at stride 1, for 28x28 or 32x32 inputs)."""
    layers, stem_stride = lookup(_LAYOUTS, layout, "MobileNet v1 layout")
    return MobileNetV1(layers, width=width, in_channels=in_channels, num_classes=num_classes,
                       stem_stride=stem_stride, dropout=dropout, padding=padding)  # fmt: skip
