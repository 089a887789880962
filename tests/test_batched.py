"""tlcourse.data.batched: in-memory datasets transformed a batch at a time, equal to the per-image presets."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from tlcourse.data import load, transform_preset
from tlcourse.data.batched import BATCHED_PRESETS, batch_preset
from tlcourse.data.registry import get_info


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
@pytest.mark.parametrize("preset", ["tensor", "normalize", "lenet", "default"])
def test_deterministic_presets_give_the_stacked_images_exactly(name: str, preset: str) -> None:
    bundle = load(name, transform=preset, batch_size=50, download=False)
    images, labels = next(iter(bundle.val_loader))
    one_by_one = [bundle.val[i] for i in range(50)]  # __getitem__: the per-image torchvision pipeline
    assert type(images) is torch.Tensor and images.dtype == torch.float32
    assert torch.equal(images, torch.stack([image for image, _ in one_by_one]))
    assert labels.tolist() == [label for _, label in one_by_one]
    assert "applied per batch" in bundle.summary()


@pytest.mark.parametrize(("name", "preset", "side"), [("mnist5k", "lenet_augment", 32), ("mnist5k", "augment", 28),
                                                      ("digits", "lenet_augment", 32)])  # fmt: skip
def test_random_presets_draw_for_every_image_of_a_batch(name: str, preset: str, side: int) -> None:
    info = get_info(name)
    augment = batch_preset(preset, info)
    image = load(name, transform=None, download=False).train[0][0]  # one raw uint8 image
    batch = torch.as_tensor(image).expand(16, *image.shape).clone()
    torch.manual_seed(0)
    out = augment(batch)
    assert out.shape == (16, 1, side, side) and out.dtype == torch.float32
    assert len({tuple(x.flatten().tolist()) for x in out}) == 16  # sixteen copies, sixteen different draws
    torch.manual_seed(0)
    assert torch.equal(augment(batch), out)  # seeded like everything else
    # the same distribution as the per-image preset: the ink stays about the same (a shift, turn or zoom)
    per_image = transform_preset(preset, info)
    torch.manual_seed(0)
    singles = torch.stack([per_image(batch[i]) for i in range(16)])
    assert out.mean().item() == pytest.approx(singles.mean().item(), abs=0.1)


def test_loaders_fetch_a_batch_with_one_call_unless_the_transform_changes() -> None:
    bundle = load("mnist5k", transform="lenet", train_transform="lenet_augment", batch_size=64, download=False)
    calls = []
    batched = bundle.train.batch_transform
    bundle.train.batch_transform = lambda images: calls.append(len(images)) or batched(images)
    images, _ = next(iter(bundle.train_loader))
    assert calls == [64] and images.shape == (64, 1, 32, 32)
    subset = bundle.train.subset(range(10))
    assert subset.batch_transform is bundle.train.batch_transform  # a subset keeps it
    subset.transform = transform_preset("lenet", "mnist5k")  # another transform: per image again, as asked
    calls.clear()
    assert torch.equal(next(iter(DataLoader(subset, batch_size=10)))[0],
                       torch.stack([subset[i][0] for i in range(10)])) and calls == []  # fmt: skip


def test_photos_and_callables_keep_the_per_image_path() -> None:
    assert batch_preset("imagenet", get_info("hymenoptera")) is None
    assert batch_preset("augment", get_info("hymenoptera")) is None  # variable-size photos: decoded image by image
    assert set(BATCHED_PRESETS) < set(__import__("tlcourse.data", fromlist=["PRESETS"]).PRESETS)
    bundle = load("digits", transform=lambda image: torch.as_tensor(image).float(), download=False)
    assert bundle.val.batch_transform is None and "per batch" not in bundle.summary()
