"""The in-memory datasets' transform presets applied to whole batches: one call per batch, not per image.

A loader over an in-memory dataset (mnist5k, digits...) with a named preset used to run the preset's
``torchvision.transforms.v2`` pipeline image by image, 64 Python calls per batch: for LeNet on mnist5k that was
most of the time of a training step. :func:`batch_preset` builds the same preset for a ``(B, C, H, W)`` uint8
batch. The deterministic steps are torchvision's own, in the same order, so a batch equals the stacked images
exactly; the random steps (affine, crop, flip) are Kornia's, which draws new parameters for every image of the
batch (torchvision's v2 transforms draw once per call, i.e. once per batch). Photo presets (``imagenet``...)
decode files and have no batch version.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from tlcourse.data.registry import DatasetInfo
from tlcourse.data.transforms import AFFINE, grey_stats, lenet_resize

__all__ = ["BATCHED_PRESETS", "batch_preset"]

BATCHED_PRESETS = ("tensor", "normalize", "augment", "lenet", "lenet_augment")


def _float() -> Callable:
    return v2.ToDtype(torch.float32, scale=True)


def _random_affine() -> Callable:
    import kornia.augmentation as K  # imported only when an augmenting preset is built

    # nearest and zero fill, as torchvision's RandomAffine on uint8 images
    return K.RandomAffine(**AFFINE, resample="nearest", padding_mode="zeros", p=1.0)


def _crop_and_flip(size: int) -> list[Callable]:
    import kornia.augmentation as K

    return [K.RandomCrop((size, size), padding=max(1, size // 8)), K.RandomHorizontalFlip()]


def batch_preset(name: str, info: DatasetInfo) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The preset ``name`` for uint8 batches ``(B, C, H, W)`` of ``info``'s images, or None when it has none."""
    if name == "default":
        name = info.default_transform
    if name not in BATCHED_PRESETS or info.variable_size:
        return None
    grey = [v2.Grayscale(num_output_channels=1)] if info.channels != 1 else []
    if name == "tensor":
        return v2.Compose([_float()])
    if name == "normalize":
        return v2.Compose([_float(), v2.Normalize(info.mean, info.std)])
    if name == "lenet":
        return v2.Compose([*grey, *lenet_resize(info), _float(), v2.Normalize(*grey_stats(info))])
    if name == "lenet_augment":
        return v2.Compose([*grey, _float(), _random_affine(), *lenet_resize(info), v2.Normalize(*grey_stats(info))])
    # "augment": the digits' affine, or a padded crop and a flip for colour images of one size
    random = [_random_affine()] if info.channels == 1 else _crop_and_flip(info.image_shape[1])
    return v2.Compose([_float(), *random, v2.Normalize(info.mean, info.std)])
