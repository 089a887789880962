"""The building blocks of mobile networks: depthwise separable convolutions and inverted residuals.

* :class:`DepthwiseSeparableConv` (MobileNet v1, Howard et al., 2017): a ``k x k`` convolution
  that filters each channel on its own (``groups=C``) followed by a ``1 x 1`` convolution that
  mixes channels. It replaces a standard ``k x k`` convolution at a fraction
  ``1/N + 1/k**2`` of its multiply-adds (``N`` output channels).
* :class:`MBConv` (the inverted residual of MobileNet v2, Sandler et al., 2018, with the optional
  squeeze-and-excitation of MnasNet/EfficientNet): expand ``1 x 1`` -> depthwise ``k x k`` ->
  (squeeze-and-excitation) -> linear projection ``1 x 1``, with a skip connection when the
  block keeps the shape.
* :class:`MobileNetV3Block` (Howard et al., *Searching for MobileNetV3*, 2019): the inverted residual
  with h-swish or ReLU, and squeeze-and-excitation gated by a hard sigmoid.

Padding: ``"same"`` reproduces TensorFlow's SAME padding, with which the EfficientNet-Lite weights
were trained. For stride 1 it is the symmetric ``k // 2``; for stride 2 on an even-sized input it
puts the extra row/column on the bottom/right only (see :class:`~tlcourse.models.blocks.SamePad2d`).
``"symmetric"`` is PyTorch's usual ``padding=k // 2`` everywhere (as in torchvision's own EfficientNet).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops import SqueezeExcitation, StochasticDepth

from tlcourse.models.blocks import PADDINGS, ConvNormAct, Padding, SamePad2d

__all__ = [
    "BN_EPS", "BN_MOMENTUM", "MOBILE", "PADDINGS", "ConvBNAct", "DepthwiseSeparableConv", "MBConv", "MobileNetV3Block",
    "Padding", "SamePad2d",
]

# TensorFlow's batch-norm settings used to train EfficientNet(-Lite): epsilon 1e-3 and a moving
# average decay of 0.99, which is momentum 0.01 in PyTorch's convention (1 - decay).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01

#: What :class:`ConvBNAct` changes in :class:`~tlcourse.models.blocks.ConvNormAct`'s defaults.
MOBILE: dict[str, Any] = {"activation": nn.ReLU6, "padding": "same", "bn_eps": BN_EPS, "bn_momentum": BN_MOMENTUM}


class ConvBNAct(ConvNormAct):
    """:class:`~tlcourse.models.blocks.ConvNormAct` with the mobile networks' settings (:data:`MOBILE`):
    ReLU6 (``activation=None`` for a linear layer), ``padding="same"``, no bias, TensorFlow's batch-norm constants.

    Children: ``pad`` (only for ``padding="same"`` with stride > 1), ``conv``, ``bn``, ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, **settings: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, **{**MOBILE, **settings})


class DepthwiseSeparableConv(nn.Sequential):
    """MobileNet v1's replacement for a ``k x k`` convolution: depthwise ``k x k``, then pointwise ``1 x 1``.

    ``depthwise`` filters every input channel separately (``groups=in_channels``: ``C * k * k``
    weights); ``pointwise`` mixes the channels (``C * N`` weights). A standard convolution has
    ``C * N * k * k`` weights, so the ratio of weights and of multiply-adds is ``1/N + 1/k**2``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        activation: Callable[[], nn.Module] | None = nn.ReLU6,
        padding: Padding = "same",
    ) -> None:
        depthwise = ConvBNAct(
            in_channels, in_channels, kernel_size, stride, groups=in_channels, activation=activation, padding=padding
        )
        pointwise = ConvBNAct(in_channels, out_channels, 1, activation=activation, padding=padding)
        super().__init__(OrderedDict([("depthwise", depthwise), ("pointwise", pointwise)]))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1 -> depthwise kxk -> [squeeze-excite] -> project 1x1 (+ input).

    * ``expand`` widens ``in_channels`` by ``expand_ratio``, or to ``hidden_channels`` when given
      (absent when that leaves the width unchanged);
    * ``depthwise`` filters each of the wide channels spatially, with ``stride``;
    * ``se`` (only if ``se_ratio`` or ``se_channels``) rescales channels by a gate (``se_gate``, a
      sigmoid by default) computed from their global average, with ``se_channels`` or
      ``max(1, int(in_channels * se_ratio))`` squeezed channels and ``se_activation`` (default
      ``activation``) between its two layers;
    * ``project`` maps back to ``out_channels`` with no activation (a *linear* bottleneck);
    * the input is added to the output when ``stride == 1`` and ``in_channels == out_channels``
      (``use_skip``); ``stochastic_depth_prob`` then drops the residual branch per sample in training.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: int = 6,
        se_ratio: float | None = None,
        activation: Callable[[], nn.Module] = nn.ReLU6,
        stochastic_depth_prob: float = 0.0,
        padding: Padding = "same",
        *,
        hidden_channels: int | None = None,
        se_channels: int | None = None,
        se_activation: Callable[[], nn.Module] | None = None,
        se_gate: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio if hidden_channels is None else hidden_channels
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.use_skip = stride == 1 and in_channels == out_channels
        self.expand = (
            ConvBNAct(in_channels, hidden, 1, activation=activation, padding=padding) if hidden != in_channels else None
        )
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, activation=activation, padding=padding)
        squeeze = se_channels if se_channels else (max(1, int(in_channels * se_ratio)) if se_ratio else None)
        self.se = (
            SqueezeExcitation(hidden, squeeze, activation=se_activation or activation, scale_activation=se_gate)
            if squeeze
            else None
        )
        self.project = ConvBNAct(hidden, out_channels, 1, activation=None, padding=padding)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row") if self.use_skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.use_skip:
            assert self.stochastic_depth is not None
            out = x + self.stochastic_depth(out)
        return out


class MobileNetV3Block(MBConv):
    """MobileNet v3's block ("bneck"): expand 1x1 -> depthwise kxk -> [SE] -> linear project 1x1 (+ input).

    The inverted residual of :class:`MBConv` with three changes from the MobileNet v3 paper:
    ``activation`` is h-swish (``nn.Hardswish``: ``x * ReLU6(x + 3) / 6``, a cheap swish) or ReLU;
    the squeeze-and-excitation squeezes to a quarter of the expanded channels (rounded to a multiple
    of 8), uses a ReLU inside and a hard sigmoid gate; expansion to any ``hidden_channels``.
    Padding is PyTorch's symmetric one, as in torchvision's ``mobilenet_v3_large``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        use_se: bool = True,
        activation: Callable[[], nn.Module] = nn.Hardswish,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            activation=activation,
            padding="symmetric",
            hidden_channels=hidden_channels,
            se_channels=int(_make_divisible(hidden_channels // 4, 8)) if use_se else None,
            se_activation=nn.ReLU,
            se_gate=nn.Hardsigmoid,
        )
