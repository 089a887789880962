"""Networks of the course, each assembled from small blocks and a configuration."""

from tlcourse.models.lenet import LENET_VARIANTS, LeNet5, lenet5

__all__ = ["LENET_VARIANTS", "LeNet5", "lenet5"]
