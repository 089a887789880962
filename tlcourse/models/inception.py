"""The Inception module and a small GoogLeNet (Szegedy et al., *Going Deeper with Convolutions*, 2014).

An Inception module runs four branches side by side on the same input and concatenates their
outputs along the channels: a 1x1 convolution, a 3x3 and a 5x5 convolution, and a 3x3 max pool.
In the paper's final module (``reduce=True``) 1x1 convolutions first shrink the channels that
the 3x3 and 5x5 convolutions see and project the pooled branch; the "naive" module
(``reduce=False``) applies the 3x3 and 5x5 directly and passes the pooled input through.

:data:`GOOGLENET_INCEPTIONS` holds the paper's table 1 (the filters of modules 3a ... 5b);
:class:`GoogLeNet` assembles a network from a list of module names and "M" (max pool) with a
``width`` multiplier, so :func:`small_googlenet` trains on 32x32 images on a laptop CPU.

Inception v2/v3 (Szegedy et al., *Rethinking the Inception Architecture*, 2015) factorise the
convolutions: :class:`FactorizedConv` replaces a ``k x k`` convolution by stacked 3x3 ones or by
``1 x k`` then ``k x 1``; :class:`FactorizedInception` is the module of the paper's figures 5 and 6;
:class:`GridReduction` halves the grid with parallel stride-2 convolution and pooling branches
(figure 10); :class:`AuxClassifier` is the side classifier, with batch norm in its fully connected
layer ("BN-auxiliary"). :class:`GroupedInception` and :class:`XceptionBlock` (Chollet, *Xception*,
2017) carry the idea to its extreme, one spatial filter per channel: the depthwise separable convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import torch
from torch import nn

from tlcourse.core.lookup import UnknownNameError, unknown_name_message
from tlcourse.models.blocks import ConvNormAct

_RELU = partial(nn.ReLU, inplace=True)


Kernel = int | tuple[int, int]


def _conv(in_channels: int, out_channels: int, kernel_size: Kernel, batch_norm: bool, stride: int = 1) -> ConvNormAct:
    """GoogLeNet's convolution: "same" padding, batch norm (a bias only without it), ReLU."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride, batch_norm=batch_norm, activation=_RELU)


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


# ---------------------------------------------------------------------------------------------------
# Inception v2/v3: factorised convolutions (Szegedy et al., 2015)

#: How :class:`FactorizedConv` replaces a ``k x k`` convolution.
Factorization = Literal["none", "stacked", "asymmetric"]
FACTORIZATIONS: tuple[str, ...] = ("none", "stacked", "asymmetric")


class FactorizedConv(nn.Sequential):
    """A ``k x k`` convolution (``"none"``) or a cheaper stack with the same receptive field.

    * ``"stacked"``: ``(k - 1) / 2`` 3x3 convolutions (a 5x5 becomes two 3x3, a 7x7 three);
    * ``"asymmetric"``: a ``1 x k`` then a ``k x 1`` convolution.

    Every layer is convolution -> batch norm -> ReLU (the paper found the ReLU between the two
    factors better than a linear first layer). The layers before the last produce ``mid_channels``
    (default ``in_channels``), the last one ``out_channels``; at equal channels ``C -> C`` two 3x3
    cost ``18/25`` of a 5x5 and ``1 x k`` + ``k x 1`` cost ``2/k`` of a ``k x k``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        factorization: Factorization = "stacked",
        mid_channels: int | None = None,
        batch_norm: bool = True,
    ) -> None:
        if factorization not in FACTORIZATIONS:
            raise UnknownNameError(unknown_name_message("factorization", factorization, FACTORIZATIONS))
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        mid = in_channels if mid_channels is None else mid_channels
        kernels: list[Kernel]
        if factorization == "none" or kernel_size == 1:
            kernels = [kernel_size]
        elif factorization == "stacked":
            kernels = [3] * ((kernel_size - 1) // 2)
        else:
            kernels = [(1, kernel_size), (kernel_size, 1)]
        channels = [in_channels] + [mid] * (len(kernels) - 1) + [out_channels]
        super().__init__(*(_conv(a, b, k, batch_norm) for a, b, k in zip(channels, channels[1:], kernels)))
        self.kernel_size, self.factorization = kernel_size, factorization


class FactorizedInception(nn.Module):
    """Inception v2/v3 module: 1x1 | 1x1 -> W | 1x1 -> W -> W | 3x3 max pool -> 1x1, concatenated.

    ``W`` is a ``kernel_size`` convolution, factorised into ``1 x k`` then ``k x 1`` when
    ``asymmetric``. ``kernel_size=3`` (square) is the paper's figure 5: the 5x5 branch of
    :class:`Inception` becomes two 3x3. ``kernel_size=7, asymmetric=True`` is figure 6 (``n = 7``).
    Filters come from an :class:`InceptionSpec`: the ``ch5x5`` fields are the double branch's.
    (torchvision's Inception v3 pools with an average; we keep :class:`Inception`'s max pool so that
    the two modules differ only in their convolutions.)
    """

    def __init__(
        self,
        in_channels: int,
        spec: InceptionSpec,
        kernel_size: int = 3,
        asymmetric: bool = False,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        kind: Factorization = "asymmetric" if asymmetric else "none"

        def wide(a: int, b: int) -> FactorizedConv:
            return FactorizedConv(a, b, kernel_size, kind, batch_norm=batch_norm)

        self.branch1 = _conv(in_channels, spec.ch1x1, 1, batch_norm)
        self.branch2 = nn.Sequential(_conv(in_channels, spec.ch3x3_reduce, 1, batch_norm), wide(spec.ch3x3_reduce, spec.ch3x3))
        self.branch3 = nn.Sequential(
            _conv(in_channels, spec.ch5x5_reduce, 1, batch_norm),
            wide(spec.ch5x5_reduce, spec.ch5x5_reduce),
            wide(spec.ch5x5_reduce, spec.ch5x5),
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(in_channels, spec.pool_proj, 1, batch_norm))
        self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.ch5x5 + spec.pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class GridReduction(nn.Module):
    """Halve the grid and widen the channels without a representational bottleneck (the paper's figure 10).

    A 3x3 stride-2 convolution (``conv_channels`` filters) and a 3x3 stride-2 max pool run side by
    side on the same input and are concatenated: ``conv_channels + in_channels`` channels at half
    the size. Pooling first (cheap, but it squeezes the information through the smaller grid
    before the convolution widens it) and convolving first (expensive: the convolution runs on the
    large grid) are :func:`grid_reduction_alternatives`.
    """

    def __init__(self, in_channels: int, conv_channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = _conv(in_channels, conv_channels, 3, batch_norm, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_channels = conv_channels + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


def grid_reduction_alternatives(in_channels: int, out_channels: int, batch_norm: bool = True) -> dict[str, nn.Module]:
    """Three ways from ``in_channels @ d x d`` to ``out_channels @ d/2 x d/2`` (``out_channels > in_channels``).

    ``"conv then pool"``: 3x3 convolution on the full grid, then a stride-2 max pool;
    ``"pool then conv"``: stride-2 max pool, then the 3x3 convolution on the small grid;
    ``"parallel (v3)"``: :class:`GridReduction` with ``out_channels - in_channels`` convolution filters.
    """
    if out_channels <= in_channels:
        raise ValueError(f"a grid reduction widens the channels: out_channels {out_channels} <= in_channels {in_channels}")
    return {
        "conv then pool": nn.Sequential(_conv(in_channels, out_channels, 3, batch_norm), nn.MaxPool2d(3, 2, padding=1)),
        "pool then conv": nn.Sequential(nn.MaxPool2d(3, 2, padding=1), _conv(in_channels, out_channels, 3, batch_norm)),
        "parallel (v3)": GridReduction(in_channels, out_channels - in_channels, batch_norm),
    }


class AuxClassifier(nn.Sequential):
    """GoogLeNet's auxiliary classifier: average pool to 4x4 -> 1x1 conv (128) -> fc (1024) -> dropout -> fc.

    It sits on an intermediate feature map during training and adds its loss to the main one.
    Inception v3's "BN-auxiliary" (``batch_norm_fc=True``) also batch-normalises the fully connected
    layer, not only the convolution; the paper found that it regularises.
    """

    def __init__(self, in_channels: int, num_classes: int, batch_norm_fc: bool = True, dropout: float = 0.7) -> None:
        fc: list[nn.Module] = [nn.Linear(128 * 4 * 4, 1024, bias=not batch_norm_fc)]
        if batch_norm_fc:
            fc.append(nn.BatchNorm1d(1024))
        super().__init__(
            nn.AdaptiveAvgPool2d(4),
            _conv(in_channels, 128, 1, batch_norm=True),
            nn.Flatten(),
            *fc,
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )


# ---------------------------------------------------------------------------------------------------
# Xception (Chollet, 2017): Inception taken to the extreme


class GroupedInception(nn.Sequential):
    """Chollet's reformulation of an Inception tower: a 1x1 convolution, then a 3x3 on ``groups`` channel segments.

    ``groups=1``: a 1x1 followed by an ordinary 3x3 (one tower); ``groups=k``: the 3x3 sees ``k``
    separate segments of the channels, like ``k`` towers side by side; ``groups=channels``: one 3x3
    per channel, the "extreme Inception": a depthwise separable convolution with its two steps swapped.
    """

    def __init__(self, channels: int, groups: int = 1, batch_norm: bool = True) -> None:
        if channels % groups:
            raise ValueError(f"groups ({groups}) must divide channels ({channels})")
        super().__init__(
            _conv(channels, channels, 1, batch_norm),
            ConvNormAct(channels, channels, 3, groups=groups, batch_norm=batch_norm, activation=_RELU),
        )


class XceptionBlock(nn.Module):
    """Xception's middle-flow block: 3 x (ReLU -> separable 3x3 conv -> batch norm), plus the input.

    A separable convolution is a depthwise 3x3 (``groups=channels``) then a pointwise 1x1, with no
    activation between them (Chollet found none better than a ReLU there). ``standard=True`` uses
    ordinary 3x3 convolutions instead, the block's non-separable counterpart.
    """

    def __init__(self, channels: int = 728, standard: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(3):
            layers.append(nn.ReLU())
            if standard:
                layers.append(ConvNormAct(channels, channels, 3, activation=None))
            else:
                layers.append(ConvNormAct(channels, channels, 3, groups=channels, batch_norm=False, activation=None, bias=False))
                layers.append(ConvNormAct(channels, channels, 1, activation=None))
        self.residual = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)
