"""Named ``torchvision.transforms.v2`` presets that work on PIL images and uint8 tensors alike."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from tlcourse.core.lookup import check_name
from tlcourse.data.registry import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, get_info

#: Preset names and what they do (``"default"`` resolves to the dataset's own preset).
PRESETS: dict[str, str] = {
    "tensor": "float tensor in 0..1, native size",
    "normalize": "float tensor, normalised with the dataset's mean/std, native size",
    "augment": "small random affine (digits) or crop+flip (photos), then normalize",
    "lenet": "1 channel, 32x32 (pad 28->32, resize otherwise), normalised",
    "lenet_augment": "random affine (10 deg, 10% shift, 0.9-1.1 scale), then lenet",
    "imagenet": "Resize 256, CenterCrop 224, 3 channels, ImageNet mean/std",
    "imagenet_augment": "RandomResizedCrop 224, horizontal flip, 3 channels, ImageNet mean/std",
    "default": "the dataset's default preset (imagenet for hymenoptera, normalize otherwise)",
}

_NEEDS_DATASET = {"normalize", "augment", "lenet", "lenet_augment", "default"}
_GREY_WEIGHTS = (0.299, 0.587, 0.114)
#: the random affine of the digit presets: degrees, translation (fraction of the side), scale range
AFFINE = {"degrees": 10, "translate": (0.1, 0.1), "scale": (0.9, 1.1)}


def _to_float() -> list[Callable]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def grey_stats(info: DatasetInfo) -> tuple[tuple[float], tuple[float]]:
    """Mean/std for one channel (luminance-weighted approximation for colour datasets)."""
    if info.channels == 1:
        return (info.mean[0],), (info.std[0],)
    mean = sum(w * m for w, m in zip(_GREY_WEIGHTS, info.mean))
    std = sum(w * s for w, s in zip(_GREY_WEIGHTS, info.std))
    return (round(mean, 4),), (round(std, 4),)


def lenet_resize(info: DatasetInfo) -> list[Callable]:
    """The lenet presets' step to 32x32: pad 28x28 images by 2, resize any other size (none for 32x32)."""
    _, height, width = info.image_shape
    if not info.variable_size and height == width == 28:
        return [v2.Pad(2)]
    if info.variable_size or (height, width) != (32, 32):
        return [v2.Resize((32, 32))]
    return []


def _lenet(info: DatasetInfo, augment: bool) -> list[Callable]:
    steps: list[Callable] = [v2.ToImage()]
    if info.channels != 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    if augment:
        steps.append(v2.RandomAffine(**AFFINE))
    steps += lenet_resize(info)
    mean, std = grey_stats(info)
    return steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def _augment(info: DatasetInfo) -> list[Callable]:
    steps: list[Callable] = [v2.ToImage()]
    if info.channels == 1:
        steps.append(v2.RandomAffine(**AFFINE))
    elif info.variable_size:
        steps += [v2.RandomResizedCrop(info.image_shape[1:]), v2.RandomHorizontalFlip()]
    else:
        size = info.image_shape[1]
        steps += [v2.RandomCrop(size, padding=max(1, size // 8)), v2.RandomHorizontalFlip()]
    return steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]


def transform_preset(name: str, dataset: str | DatasetInfo | None = None) -> Callable:
    """Build the named preset (see :data:`PRESETS`) for ``dataset``.

    Every preset returns a float32 image tensor ``(C, H, W)``. ``normalize``, ``augment``,
    ``lenet``, ``lenet_augment`` and ``default`` need the dataset (for its mean/std and size).
    """
    check_name(name, sorted(PRESETS), "transform preset")
    info = get_info(dataset) if dataset is not None else None
    if info is None and name in _NEEDS_DATASET:
        raise ValueError(
            f"Transform preset {name!r} needs a dataset (for its size and mean/std), "
            f"e.g. transform_preset({name!r}, 'mnist')."
        )
    if name == "default":
        assert info is not None
        return transform_preset(info.default_transform, info)
    if name == "tensor":
        return v2.Compose(_to_float())
    if name == "imagenet":
        steps = [v2.ToImage(), v2.Resize(256), v2.CenterCrop(224), v2.RGB()]
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        return v2.Compose(steps)
    if name == "imagenet_augment":
        steps = [v2.ToImage(), v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(), v2.RGB()]
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        return v2.Compose(steps)
    assert info is not None
    if name == "normalize":
        return v2.Compose(_to_float() + [v2.Normalize(info.mean, info.std)])
    if name == "augment":
        return v2.Compose(_augment(info))
    return v2.Compose(_lenet(info, augment=name == "lenet_augment"))
