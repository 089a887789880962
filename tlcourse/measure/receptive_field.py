"""Receptive fields: how many input pixels one output pixel can see.

:func:`receptive_field` computes it from the layers' kernels and strides with the usual
recurrence (each layer adds ``(k - 1) * jump`` pixels, where ``jump`` is the product of the
strides before it); :func:`empirical_receptive_field` measures it on a real module, as the
extent of the input pixels that receive a non-zero gradient from the centre output pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from tlcourse.core.modes import preserved_modes

__all__ = ["conv_layers", "empirical_receptive_field", "receptive_field"]

Layer = int | tuple[int, int]


def receptive_field(layers: Iterable[Layer]) -> int:
    """Side of the receptive field of a stack of layers given as kernel sizes or ``(kernel, stride)``.

    ``receptive_field([3, 3, 3]) == 7``; ``receptive_field([(11, 4), (3, 2)]) == 19``.
    Dilation is not modelled (use an effective kernel ``d * (k - 1) + 1``).
    """
    field, jump = 1, 1
    for layer in layers:
        kernel, stride = (layer, 1) if isinstance(layer, int) else layer
        if kernel < 1 or stride < 1:
            raise ValueError(f"kernel and stride must be positive, got {layer!r}")
        field += (kernel - 1) * jump
        jump *= stride
    return field


def _pair_first(value: int | Sequence[int]) -> int:
    return int(value if isinstance(value, int) else value[0])


def conv_layers(module: nn.Module) -> list[tuple[int, int]]:
    """``(kernel, stride)`` of every convolution and pooling layer of ``module``, in registration order.

    Valid for plain chains (VGG/AlexNet features); a network with parallel branches has no single chain.
    """
    found: list[tuple[int, int]] = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            kernel = (_pair_first(m.kernel_size) - 1) * _pair_first(m.dilation) + 1
            found.append((kernel, _pair_first(m.stride)))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            stride = m.stride if m.stride is not None else m.kernel_size
            found.append((_pair_first(m.kernel_size), _pair_first(stride)))
    return found


def empirical_receptive_field(module: nn.Module, input_shape: Sequence[int], seed: int = 0, trials: int = 16) -> int:
    """Measured side of the receptive field of ``module``'s centre output pixel (input ``(C, H, W)``).

    Back-propagates from the centre pixel of the output (summed over channels) for a batch of
    ``trials`` random inputs (``seed``) and returns the height of the box of input pixels whose
    gradient is non-zero for at least one of them (one input alone can hide pixels behind ReLUs
    that happen to be off). Make the input larger than the expected field.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((trials, *input_shape), generator=generator, requires_grad=True)
    with preserved_modes(module):
        module.eval()
        out = module(x)
    h, w = out.shape[-2] // 2, out.shape[-1] // 2
    out[:, :, h, w].sum().backward()
    assert x.grad is not None
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.max() - rows.min() + 1) if len(rows) else 0
