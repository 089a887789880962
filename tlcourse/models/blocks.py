"""The unit most of the course's CNNs are built from: convolution -> batch norm -> activation.

:class:`ConvNormAct` is the one such block: AlexNet and VGG, GoogLeNet, the ViT lesson's baseline
CNN and the mobile networks (as ``ConvBNAct``, with TensorFlow's settings) all use it.
torchvision's ``Conv2dNormActivation`` does the same, but numbers its children ``0, 1, 2`` and has
no TensorFlow SAME padding; ours names them ``conv``, ``bn``, ``act``: the names the
EfficientNet-Lite weights are mapped onto and the lessons reach into.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from tlcourse.core.lookup import UnknownNameError, unknown_name_message

__all__ = ["PADDINGS", "ConvNormAct", "Padding", "SamePad2d"]

#: "symmetric": ``kernel_size // 2`` on every side (PyTorch's usual); "same": TensorFlow's SAME padding.
Padding = Literal["same", "symmetric"]
PADDINGS: tuple[str, ...] = ("same", "symmetric")


class SamePad2d(nn.Module):
    """Zero padding of TensorFlow's ``padding="SAME"``, computed from the input's size.

    The output of the following convolution has ``ceil(size / stride)`` rows and columns; the
    total padding ``max((out - 1) * stride + kernel - size, 0)`` is split with the smaller half on
    the top/left. (``nn.Conv2d(padding="same")`` exists only for stride 1.)
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _split(self, size: int) -> tuple[int, int]:
        out = math.ceil(size / self.stride)
        total = max((out - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._split(x.shape[-2])
        left, right = self._split(x.shape[-1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return x

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class ConvNormAct(nn.Sequential):
    """Convolution -> batch norm -> activation, children ``conv``, ``bn``, ``act``.

    * ``kernel_size``: an int, or ``(height, width)`` for an asymmetric kernel such as ``(1, 7)``
      (Inception v3's factorisation; only with ``"symmetric"`` padding or explicit pixels).
    * ``padding``: pixels on every side, or ``"symmetric"`` (default): ``kernel_size // 2``, which keeps
      the size at stride 1, or ``"same"``: TensorFlow's SAME padding, the same at stride 1 and a
      :class:`SamePad2d` child ``pad`` before ``conv`` at stride > 1.
    * ``batch_norm=False`` leaves ``bn`` out, ``activation=None`` leaves ``act`` out (a linear block).
    * ``bias`` defaults to ``not batch_norm``: the batch norm's shift would cancel a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | Padding = "symmetric",
        *,
        groups: int = 1,
        batch_norm: bool = True,
        activation: Callable[[], nn.Module] | None = nn.ReLU,
        bias: bool | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        layers: list[tuple[str, nn.Module]] = []
        if isinstance(padding, str):
            if padding not in PADDINGS:
                raise UnknownNameError(unknown_name_message("padding", padding, PADDINGS))
            if padding == "same" and stride > 1:
                if not isinstance(kernel_size, int):
                    raise ValueError(f"padding='same' at stride {stride} needs a square kernel, not {kernel_size}")
                layers.append(("pad", SamePad2d(kernel_size, stride)))
                padding = 0
            elif isinstance(kernel_size, int):  # "symmetric", or "same" at stride 1: kernel_size // 2 on every side
                padding = kernel_size // 2
            else:
                padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        bias = not batch_norm if bias is None else bias
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        layers.append(("conv", conv))
        if batch_norm:
            layers.append(("bn", nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)))
        if activation is not None:
            layers.append(("act", activation()))
        super().__init__(OrderedDict(layers))
