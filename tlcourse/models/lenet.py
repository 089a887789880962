"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), layer by layer as in the paper.

The paper names its layers C1, S2, C3, S4, C5, F6 (C: convolution, S: subsampling,
F: fully connected) and feeds them a 32x32 image. Two simplifications that every modern
re-implementation makes are kept here and explained in lesson 01:

* C3 connects every S2 map to every C3 map (the paper used a hand-made table of 60
  connections out of 96 to save compute and break symmetry);
* the output layer is a linear layer trained with cross-entropy (the paper used
  Euclidean radial basis function units).

``activation``/``pooling`` choose between the paper's squashing function with average
subsampling ("classic") and the ReLU with max pooling that later networks adopted ("modern").
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import nn

from tlcourse.core.lookup import lookup

Activation = Literal["tanh", "relu", "sigmoid"]
Pooling = Literal["avg", "max"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
_POOLING: dict[str, type[nn.Module]] = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}

LENET_VARIANTS: dict[str, dict[str, str]] = {
    "classic": {"activation": "tanh", "pooling": "avg"},
    "modern": {"activation": "relu", "pooling": "max"},
}


class LeNet5(nn.Sequential):
    """LeNet-5 on a 32x32 input: C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output.

    Layers are named after the paper (``model.c1``, ``model.s2``, ...), so that
    ``tlcourse.measure.profile.trace_shapes`` prints the paper's names and a lesson can hook any layer.
    ``model.features`` would be ``model[:9]`` (everything up to C5's activation).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        activation: Activation = "tanh",
        pooling: Pooling = "avg",
    ) -> None:
        act = lookup(_ACTIVATIONS, activation, "activation")
        pool = lookup(_POOLING, pooling, "pooling")
        super().__init__(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(in_channels, 6, kernel_size=5)),  # 32x32 -> 6@28x28
                    ("act1", act()),
                    ("s2", pool(kernel_size=2, stride=2)),  # -> 6@14x14
                    ("c3", nn.Conv2d(6, 16, kernel_size=5)),  # -> 16@10x10
                    ("act3", act()),
                    ("s4", pool(kernel_size=2, stride=2)),  # -> 16@5x5
                    ("c5", nn.Conv2d(16, 120, kernel_size=5)),  # -> 120@1x1
                    ("act5", act()),
                    ("flatten", nn.Flatten()),  # -> 120
                    ("f6", nn.Linear(120, 84)),  # -> 84
                    ("act6", act()),
                    ("output", nn.Linear(84, num_classes)),  # -> num_classes
                ]
            )
        )
        self.activation = activation
        self.pooling = pooling


def lenet5(variant: str = "classic", num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """Build LeNet-5 from a named configuration in :data:`LENET_VARIANTS` ("classic" or "modern")."""
    choices = lookup(LENET_VARIANTS, variant, "LeNet-5 variant")
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **choices)  # type: ignore[arg-type]
