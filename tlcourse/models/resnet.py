"""ResNet (He, Zhang, Ren and Sun, 2015): residual blocks, assembled from a configuration.

A residual block computes ``relu(F(x) + shortcut(x))``: the layers ``F`` only have to learn what
to *add* to their input. The shortcut is the identity when the block keeps the shape, and a
*projection* (a 1x1 convolution with the block's stride, then BatchNorm) when the block changes
the number of channels or the resolution ("option B" of the paper).

* :class:`BasicBlock`: two 3x3 convolutions (ResNet-18/34 and the small CIFAR networks);
* :class:`Bottleneck`: 1x1 (reduce), 3x3, 1x1 (expand by 4) (ResNet-50 and deeper). As in
  torchvision (and "ResNet v1.5") the stride sits on the 3x3 convolution;
* :class:`ResNet`: a stem, stages of blocks, global average pooling and a linear classifier.

``residual=False`` builds the *plain* counterpart: the same layers without any shortcut (no
identity and no projection), the network of the paper's degradation experiment.

Module names follow torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``...), so torchvision's ImageNet state dicts load into :func:`resnet18`, :func:`resnet34` and
:func:`resnet50`, and the parameter counts are torchvision's exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tlcourse.core.lookup import lookup

Stem = Literal["imagenet", "cifar"]

__all__ = [
    "RESNET_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNetConfig",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_small",
    "without_normalization",
]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """The projection shortcut: a strided 1x1 convolution and BatchNorm (keys ``0`` and ``1``)."""
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def _shortcut(in_channels: int, out_channels: int, stride: int, residual: bool) -> nn.Module | None:
    if residual and (stride != 1 or in_channels != out_channels):
        return projection(in_channels, out_channels, stride)
    return None


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, plus the shortcut, then ReLU. Output: ``out_channels`` channels."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels * self.expansion, stride, residual)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce to ``mid_channels``, 3x3 (strided), 1x1 expand to ``4 * mid_channels``, plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        out_channels = mid_channels * self.expansion
        self.conv1 = _conv1x1(in_channels, mid_channels)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = _conv3x3(mid_channels, mid_channels, stride)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = _conv1x1(mid_channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride, residual)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


Block = type[BasicBlock] | type[Bottleneck]
_BLOCKS: dict[str, Block] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _imagenet_stem(in_channels: int, out_channels: int) -> tuple[nn.Conv2d, nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False)
    return conv, nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def _cifar_stem(in_channels: int, out_channels: int) -> tuple[nn.Conv2d, nn.Module]:
    return _conv3x3(in_channels, out_channels), nn.Identity()


# stem name -> (its convolution ``conv1``, what follows ``relu``: ``maxpool``)
_STEMS: dict[str, Callable[[int, int], tuple[nn.Conv2d, nn.Module]]] = {"imagenet": _imagenet_stem, "cifar": _cifar_stem}


@dataclass(frozen=True)
class ResNetConfig:
    """Everything that distinguishes one ResNet from another.

    ``layers[i]`` blocks of type ``block`` in stage ``i``, whose blocks have ``channels[i]`` channels
    (the output of the stage has ``channels[i] * expansion``: a bottleneck's 1x1 expands its
    ``channels[i]`` four times); every stage after the first halves the resolution with its first
    block's stride. ``stem``: "imagenet" (7x7/2 convolution and 3x3/2 max pooling, for 224x224 images)
    or "cifar" (one 3x3/1 convolution, for 32x32 images); ``stem_channels`` defaults to ``channels[0]``.
    """

    block: Literal["basic", "bottleneck"]
    layers: tuple[int, ...]
    channels: tuple[int, ...] = (64, 128, 256, 512)
    stem: Stem = "imagenet"
    stem_channels: int | None = None


#: The networks of the paper's table 1 (ImageNet) and of its CIFAR-10 section (``resnet_small``).
RESNET_CONFIGS: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig("basic", (2, 2, 2, 2)),
    "resnet34": ResNetConfig("basic", (3, 4, 6, 3)),
    "resnet50": ResNetConfig("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetConfig("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetConfig("bottleneck", (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """Stem -> ``layer1`` ... ``layerN`` (stages of blocks) -> global average pool -> ``fc``.

    ``residual=False`` gives the plain network with the same layers and no shortcuts.
    ``zero_init_residual=True`` starts each residual branch's last BatchNorm at zero, so that every
    block begins as the identity (a trick of Goyal et al., 2017; off by default, as in torchvision).
    """

    def __init__(
        self,
        config: ResNetConfig,
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        residual: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        block = lookup(_BLOCKS, config.block, "block")
        if len(config.layers) != len(config.channels):
            raise ValueError(f"layers {config.layers} and channels {config.channels} must have the same length.")
        self.config = config
        self.residual = residual
        stem_channels = config.stem_channels or config.channels[0]
        self.conv1, self.maxpool = lookup(_STEMS, config.stem, "stem")(in_channels, stem_channels)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)

        channels = stem_channels
        for index, (count, block_channels) in enumerate(zip(config.layers, config.channels)):
            stride = 1 if index == 0 else 2
            blocks = []
            for position in range(count):
                blocks.append(block(channels, block_channels, stride if position == 0 else 1, residual))
                channels = block_channels * block.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.num_stages = len(config.layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        self._initialise(zero_init_residual)

    def _initialise(self, zero_init_residual: bool) -> None:
        # He et al.'s initialisation for ReLU networks (fan-out mode, as in the paper's code and torchvision).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_bn().weight)

    @property
    def stages(self) -> list[nn.Sequential]:
        """``[layer1, layer2, ...]``."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: the stem convolution, the blocks' convolutions and ``fc``."""
        per_block = 2 if self.config.block == "basic" else 3
        return 2 + per_block * sum(self.config.layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector (``num_features`` per image) that ``fc`` classifies."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def resnet(
    config: str | ResNetConfig,
    *,
    in_channels: int = 3,
    num_classes: int = 1000,
    residual: bool = True,
    zero_init_residual: bool = False,
) -> ResNet:
    """Build a ResNet from a name in :data:`RESNET_CONFIGS` or from a :class:`ResNetConfig`."""
    if isinstance(config, str):
        config = lookup(RESNET_CONFIGS, config, "ResNet")
    return ResNet(
        config,
        in_channels=in_channels,
        num_classes=num_classes,
        residual=residual,
        zero_init_residual=zero_init_residual,
    )


def resnet18(*, in_channels: int = 3, num_classes: int = 1000, residual: bool = True) -> ResNet:
    """ResNet-18 for 224x224 images: 11,689,512 parameters with 1,000 classes, as torchvision's."""
    return resnet("resnet18", in_channels=in_channels, num_classes=num_classes, residual=residual)


def resnet34(*, in_channels: int = 3, num_classes: int = 1000, residual: bool = True) -> ResNet:
    """ResNet-34 for 224x224 images: 21,797,672 parameters with 1,000 classes, as torchvision's."""
    return resnet("resnet34", in_channels=in_channels, num_classes=num_classes, residual=residual)


def resnet50(*, in_channels: int = 3, num_classes: int = 1000, residual: bool = True) -> ResNet:
    """ResNet-50 for 224x224 images: 25,557,032 parameters with 1,000 classes, as torchvision's."""
    return resnet("resnet50", in_channels=in_channels, num_classes=num_classes, residual=residual)


def resnet_small(
    depth: int = 20,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    channels: Sequence[int] = (16, 32, 64),
    residual: bool = True,
    zero_init_residual: bool = False,
) -> ResNet:
    """The paper's CIFAR-10 ResNet with ``depth = 6n + 2`` layers (20, 32, 44, 56, 110...).

    A 3x3 stem, then three stages of ``n`` basic blocks with 16, 32 and 64 channels at 32x32, 16x16
    and 8x8, global average pooling and ``fc``. (The paper's CIFAR networks used parameter-free
    zero-padding shortcuts, "option A"; here the two shape-changing blocks use projections.)
    """
    if len(channels) != 3:
        raise ValueError(f"resnet_small has three stages; got channels {tuple(channels)}.")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110...), got {depth}.")
    n = (depth - 2) // 6
    config = ResNetConfig("basic", (n,) * len(channels), tuple(channels), stem="cifar")
    return resnet(
        config, in_channels=in_channels, num_classes=num_classes, residual=residual, zero_init_residual=zero_init_residual
    )


def without_normalization(model: nn.Module) -> nn.Module:
    """The network as it would have been built before BatchNorm (2015), changed in place and returned.

    Every ``BatchNorm2d`` becomes the identity and every convolution and linear layer gets PyTorch's
    default initialisation back (uniform, variance ``1 / (3 * fan_in)``: a Glorot-like scale that does
    not compensate for the ReLU). Deep *plain* networks built this way show the vanishing gradient;
    their residual twins do not, because each shortcut passes the gradient back unchanged.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, nn.Identity())
        else:
            without_normalization(child)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
    return model
