"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) and VGG (Simonyan and Zisserman, 2014).

Both networks are assembled from a configuration, out of :class:`~tlcourse.models.blocks.ConvNormAct`
blocks as the papers had them (a bias on every convolution; batch norm, which came in 2015, only with
``batch_norm=True``), so that the same classes build

* the full-size ImageNet networks (``alexnet_config("imagenet")``, ``VGG_CONFIGS["vgg16"]``),
  whose parameter counts equal torchvision's (61,100,840 and 138,357,544), and
* scaled-down versions for 32x32 images (:func:`small_alexnet`, :func:`small_vgg`) that train
  in seconds on a laptop CPU (lesson 02).

``activation`` chooses the non-linearity ("relu" as in the papers, or "tanh"/"sigmoid" to
reproduce AlexNet's argument for the ReLU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tlcourse.core.lookup import lookup
from tlcourse.models.blocks import ConvNormAct

Activation = Literal["relu", "tanh", "sigmoid"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _activation(name: str) -> type[nn.Module]:
    return lookup(_ACTIVATIONS, name, "activation")


class ConvStack(nn.Sequential):
    """``num_layers`` convolutions of ``kernel_size`` (same padding), each followed by an activation.

    ``ConvStack(C, 3, kernel_size=3)`` is VGG's idea: three 3x3 layers see a 7x7 window, like one
    7x7 layer, with 27C² instead of 49C² weights and two more non-linearities.
    """

    def __init__(
        self,
        channels: int,
        num_layers: int,
        kernel_size: int = 3,
        bias: bool = False,
        activation: Activation = "relu",
    ) -> None:
        act = _activation(activation)
        super().__init__(
            *[
                ConvNormAct(channels, channels, kernel_size, batch_norm=False, activation=act, bias=bias)
                for _ in range(num_layers)
            ]
        )


class Classifier(nn.Sequential):
    """AlexNet's and VGG's head: (dropout -> linear -> activation) twice, then the output layer."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int,
        dropout: float = 0.5,
        activation: Activation = "relu",
        dropout_first: bool = True,
    ) -> None:
        act = _activation(activation)
        layers: list[nn.Module] = []
        features = in_features
        for _ in range(2):
            linear = [nn.Linear(features, hidden), act()]
            drop = [nn.Dropout(dropout)] if dropout > 0 else []
            layers += drop + linear if dropout_first else linear + drop
            features = hidden
        layers.append(nn.Linear(hidden, num_classes))
        super().__init__(*layers)


# ---------------------------------------------------------------- AlexNet


@dataclass(frozen=True)
class ConvSpec:
    """One AlexNet convolution: its filters, kernel, stride, padding, and whether a max pool follows."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    pool: bool = False


@dataclass(frozen=True)
class AlexNetConfig:
    """An AlexNet: its convolutions, the (overlapping) pooling, the pooled map size and the head's width."""

    convs: tuple[ConvSpec, ...]
    pool_kernel: int = 3
    pool_stride: int = 2
    pool_size: int = 6
    hidden: int = 4096


ALEXNET_CONFIGS: dict[str, AlexNetConfig] = {
    # the single-tower version torchvision ships (the paper split the filters over two GPUs)
    "imagenet": AlexNetConfig(
        convs=(
            ConvSpec(64, 11, stride=4, padding=2, pool=True),
            ConvSpec(192, 5, padding=2, pool=True),
            ConvSpec(384, 3, padding=1),
            ConvSpec(256, 3, padding=1),
            ConvSpec(256, 3, padding=1, pool=True),
        ),
        pool_size=6,
        hidden=4096,
    ),
    # for 32x32 images: the paper's filters (scale them with ``width``), a 5x5 first layer at stride 1
    # instead of 11x11 at stride 4, and a pooled map of 3x3: 32 -> 15 -> 7 -> 3
    "small": AlexNetConfig(
        convs=(
            ConvSpec(64, 5, padding=2, pool=True),
            ConvSpec(192, 5, padding=2, pool=True),
            ConvSpec(384, 3, padding=1),
            ConvSpec(256, 3, padding=1),
            ConvSpec(256, 3, padding=1, pool=True),
        ),
        pool_size=3,
        hidden=1024,
    ),
}


class AlexNet(nn.Module):
    """AlexNet: five convolutions with three overlapping max pools, then three fully connected layers.

    ``width`` scales every layer's filters and the head's width (the configuration's numbers at 1.0);
    ``batch_norm`` adds batch normalisation (2015, after AlexNet) after each convolution.
    """

    def __init__(
        self,
        config: AlexNetConfig | str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        activation: Activation = "relu",
        width: float = 1.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(config, str):
            config = lookup(ALEXNET_CONFIGS, config, "AlexNet configuration")
        act = _activation(activation)
        layers: list[nn.Module] = []
        channels = in_channels
        for spec in config.convs:
            out = max(1, round(spec.out_channels * width))
            conv = ConvNormAct(
                channels, out, spec.kernel_size, spec.stride, spec.padding, batch_norm=batch_norm, activation=act, bias=True
            )
            layers.append(conv)
            if spec.pool:
                layers.append(nn.MaxPool2d(config.pool_kernel, config.pool_stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(config.pool_size)
        hidden = max(1, round(config.hidden * width))
        self.classifier = Classifier(channels * config.pool_size**2, hidden, num_classes, dropout, activation)
        self.config = config
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---------------------------------------------------------------- VGG

#: Filters per 3x3 convolution, "M" for a 2x2 max pool (the paper's configurations A, B, D, E).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG: stages of 3x3 convolutions separated by 2x2 max pools, then three fully connected layers.

    ``width`` scales every stage's filters (0.25 for the 32x32 version); ``pool_size`` is the side of
    the map the head sees (7 at 224x224; 1 at 32x32, where five pools leave a 1x1 map).
    """

    def __init__(
        self,
        config: Sequence[int | str] | str = "vgg16",
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        hidden: int = 4096,
        pool_size: int = 7,
        dropout: float = 0.5,
        batch_norm: bool = False,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if isinstance(config, str):
            config = lookup(VGG_CONFIGS, config, "VGG configuration")
        act = _activation(activation)
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out = max(1, round(int(item) * width))
                layers.append(ConvNormAct(channels, out, 3, batch_norm=batch_norm, activation=act, bias=True))
                channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        # torchvision's order in the head: linear -> ReLU -> dropout
        self.classifier = Classifier(channels * pool_size**2, hidden, num_classes, dropout, activation, dropout_first=False)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def small_alexnet(
    num_classes: int = 10,
    in_channels: int = 1,
    activation: Activation = "relu",
    dropout: float = 0.5,
    width: float = 0.25,
    batch_norm: bool = False,
) -> AlexNet:
    """AlexNet for 32x32 images: the "small" configuration, ``width`` of the paper's filters (a 256-wide head at 0.25)."""
    return AlexNet(
        "small", num_classes, in_channels, dropout=dropout, activation=activation, width=width, batch_norm=batch_norm
    )


def small_vgg(
    name: str = "vgg11",
    num_classes: int = 10,
    in_channels: int = 1,
    width: float = 0.25,
    hidden: int | None = None,
    dropout: float = 0.5,
    batch_norm: bool = False,
    activation: Activation = "relu",
) -> VGG:
    """A VGG configuration for 32x32 images: ``width`` of the paper's filters, a 1x1 final map, and a head
    ``hidden`` wide (default ``1024 * width``, i.e. 256 at a quarter of the filters)."""
    hidden = max(1, round(1024 * width)) if hidden is None else hidden
    return VGG(name, num_classes, in_channels, width=width, hidden=hidden, pool_size=1, dropout=dropout,
               batch_norm=batch_norm, activation=activation)
