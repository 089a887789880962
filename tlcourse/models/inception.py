"""The Inception module and a small GoogLeNet (Szegedy et al., *Going Deeper with Convolutions*, 2014).

An Inception module runs four branches side by side on the same input and concatenates their
outputs along the channels: a 1x1 convolution, a 3x3 and a 5x5 convolution, and a 3x3 max pool.
In the paper's final module (``reduce=True``) 1x1 convolutions first shrink the channels that
the 3x3 and 5x5 convolutions see and project the pooled branch; the "naive" module
(``reduce=False``) applies the 3x3 and 5x5 directly and passes the pooled input through.

:data:`GOOGLENET_INCEPTIONS` holds the paper's table 1 (the filters of modules 3a ... 5b);
:class:`GoogLeNet` assembles a network from a list of module names and "M" (max pool) with a
``width`` multiplier, so :func:`small_googlenet` trains on 32x32 images on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from tlcourse.core.lookup import UnknownNameError, unknown_name_message
from tlcourse.models.blocks import ConvNormAct

_RELU = partial(nn.ReLU, inplace=True)


def _conv(in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool) -> ConvNormAct:
    """GoogLeNet's convolution: "same" padding, batch norm (a bias only without it), ReLU."""
    return ConvNormAct(in_channels, out_channels, kernel_size, batch_norm=batch_norm, activation=_RELU)


@dataclass(frozen=True)
class InceptionSpec:
    """Filters of one Inception module's branches (the columns of the paper's table 1)."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch5x5_reduce: int
    ch5x5: int
    pool_proj: int

    def scaled(self, width: float) -> InceptionSpec:
        """The same module with every branch's filters multiplied by ``width`` (at least 1)."""
        return replace(self, **{k: max(1, round(v * width)) for k, v in self.__dict__.items()})


#: The paper's table 1 (torchvision's GoogLeNet uses the same numbers).
GOOGLENET_INCEPTIONS: dict[str, InceptionSpec] = {
    "3a": InceptionSpec(64, 96, 128, 16, 32, 32),
    "3b": InceptionSpec(128, 128, 192, 32, 96, 64),
    "4a": InceptionSpec(192, 96, 208, 16, 48, 64),
    "4b": InceptionSpec(160, 112, 224, 24, 64, 64),
    "4c": InceptionSpec(128, 128, 256, 24, 64, 64),
    "4d": InceptionSpec(112, 144, 288, 32, 64, 64),
    "4e": InceptionSpec(256, 160, 320, 32, 128, 128),
    "5a": InceptionSpec(256, 160, 320, 32, 128, 128),
    "5b": InceptionSpec(384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
    """Four parallel branches concatenated along the channels.

    ``reduce=True``: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1 (the paper's figure 2b);
    output channels ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    ``reduce=False``: 1x1 | 3x3 | 5x5 | 3x3 max pool (figure 2a, "naive"); the pooled branch keeps
    all ``in_channels``, so the output has ``ch1x1 + ch3x3 + ch5x5 + in_channels`` channels.
    """

    def __init__(self, in_channels: int, spec: InceptionSpec, reduce: bool = True, batch_norm: bool = True) -> None:
        super().__init__()
        self.reduce = reduce
        self.branch1 = _conv(in_channels, spec.ch1x1, 1, batch_norm)
        if reduce:
            self.branch2 = nn.Sequential(
                _conv(in_channels, spec.ch3x3_reduce, 1, batch_norm), _conv(spec.ch3x3_reduce, spec.ch3x3, 3, batch_norm)
            )
            self.branch3 = nn.Sequential(
                _conv(in_channels, spec.ch5x5_reduce, 1, batch_norm), _conv(spec.ch5x5_reduce, spec.ch5x5, 5, batch_norm)
            )
            self.branch4 = nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1), _conv(in_channels, spec.pool_proj, 1, batch_norm)
            )
            self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.ch5x5 + spec.pool_proj
        else:
            self.branch2 = _conv(in_channels, spec.ch3x3, 3, batch_norm)
            self.branch3 = _conv(in_channels, spec.ch5x5, 5, batch_norm)
            self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)
            self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.ch5x5 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class GoogLeNet(nn.Module):
    """A GoogLeNet-style network: a convolutional stem, Inception modules and max pools, global average pooling.

    ``stages`` lists module names from :data:`GOOGLENET_INCEPTIONS` and "M" (3x3 max pool, stride 2);
    ``width`` scales every module's filters; ``stem`` lists the filters of the stem's 3x3 convolutions
    and "M" for its max pools (the paper's stem, 7x7/2 -> pool -> 1x1 -> 3x3 -> pool, shrinks 224x224
    inputs to 28x28 before module 3a). The auxiliary
    classifiers of the paper are left out (torchvision's ``aux_logits=False``).
    """

    def __init__(
        self,
        stages: Sequence[str] = ("3a", "3b", "M", "4a", "4b", "4c", "4d", "4e", "M", "5a", "5b"),
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        stem: Sequence[int | str] = (64, "M", 192, "M"),
        dropout: float = 0.4,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in stem:
            if item == "M":
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
                continue
            out = max(1, round(int(item) * width))
            layers.append(_conv(channels, out, 3, batch_norm))
            channels = out
        self.stem = nn.Sequential(*layers)
        blocks: dict[str, nn.Module] = {}
        for index, stage in enumerate(stages):
            if stage == "M":
                blocks[f"pool{index}"] = nn.MaxPool2d(3, stride=2, padding=1)
                continue
            if stage not in GOOGLENET_INCEPTIONS:
                raise UnknownNameError(unknown_name_message("Inception module", stage, [*GOOGLENET_INCEPTIONS, "M"]))
            module = Inception(channels, GOOGLENET_INCEPTIONS[stage].scaled(width), batch_norm=batch_norm)
            blocks[f"inception{stage}"] = module
            channels = module.out_channels
        self.inceptions = nn.Sequential()
        for name, block in blocks.items():
            self.inceptions.add_module(name, block)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.inceptions(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def small_googlenet(num_classes: int = 10, in_channels: int = 1, width: float = 0.25) -> GoogLeNet:
    """GoogLeNet for 32x32 images, ``width`` of the paper's filters.

    Stem 3x3 conv (32x32) -> pool -> 3x3 conv (16x16); modules 3a, 3b at 16x16 -> pool -> 4a, 4b at
    8x8 -> pool -> 5a at 4x4 -> global average pool -> linear.
    """
    return GoogLeNet(
        stages=("3a", "3b", "M", "4a", "4b", "M", "5a"),
        num_classes=num_classes,
        in_channels=in_channels,
        width=width,
        stem=(64, "M", 192),
    )
