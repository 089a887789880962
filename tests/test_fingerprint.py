"""tlcourse.data.fingerprint and extract_features(cache=True): caches keyed by content, reused across lessons."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from tlcourse import transfer
from tlcourse.data import load, tensor_loader
from tlcourse.data.fingerprint import dataset_fingerprint, loader_fingerprint, module_fingerprint, tensor_fingerprint


def _net(seed: int, activation: type[nn.Module] = nn.ReLU) -> nn.Module:
    torch.manual_seed(seed)  # batch norm: a 0-dim buffer (num_batches_tracked) to fingerprint too
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), activation(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))  # fmt: skip


def test_tensors_and_networks_are_told_apart_by_content_only() -> None:
    x = torch.randn(5, 3, 4, 4)
    assert tensor_fingerprint(x) == tensor_fingerprint(x.clone().contiguous(memory_format=torch.channels_last))
    assert tensor_fingerprint(x) != tensor_fingerprint(x + 1e-6) != tensor_fingerprint(x.double())
    a, b = _net(0), _net(0)
    assert module_fingerprint(a) == module_fingerprint(b.to(memory_format=torch.channels_last))
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] += 1e-4
    assert module_fingerprint(a) != module_fingerprint(b)
    head_changed = _net(0)
    head_changed[5] = nn.Linear(4, 2)
    assert module_fingerprint(a) != module_fingerprint(head_changed)
    assert module_fingerprint(a, skip="5") == module_fingerprint(head_changed, skip="5")
    # settings without weights count: another activation, another stride
    assert module_fingerprint(a) != module_fingerprint(_net(0, nn.GELU))
    strided = _net(0)
    strided[0].stride = (2, 2)
    assert module_fingerprint(a) != module_fingerprint(strided)


def test_loaders_fingerprint_in_order_only() -> None:
    data = TensorDataset(torch.randn(8, 3, 4, 4), torch.arange(8))
    assert loader_fingerprint(DataLoader(data, batch_size=4)) == loader_fingerprint(DataLoader(data, batch_size=8))
    assert loader_fingerprint(DataLoader(data, shuffle=True)) is None  # another order on every pass
    assert loader_fingerprint(DataLoader(data, batch_size=3, drop_last=True)) is None  # not every image
    assert loader_fingerprint([(torch.zeros(1), torch.zeros(1))]) is None  # not a DataLoader: unknown
    bundle = load("digits", transform="normalize", download=False)
    other = load("digits", transform="tensor", download=False)
    assert dataset_fingerprint(bundle.val) != dataset_fingerprint(other.val)  # the transform is part of it
    assert dataset_fingerprint(bundle.val) != dataset_fingerprint(bundle.test)
    assert dataset_fingerprint(bundle.val) == dataset_fingerprint(load("digits", transform="normalize").val)
    # random or opaque transforms are never cached: their draws would be frozen, or their repr hides them
    assert dataset_fingerprint(load("digits", transform="augment", download=False).val) is None
    assert dataset_fingerprint(load("digits", transform=lambda image: image.float(), download=False).val) is None
    assert dataset_fingerprint(load("digits", transform=v2.Lambda(lambda image: image.float())).val) is None


def test_image_files_are_keyed_by_path_size_and_time(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (6, 6), (10, 20, 30)).save(tmp_path / label / "x.png")
    folder = ImageFolder(str(tmp_path), transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]))
    before = dataset_fingerprint(folder)
    assert before is not None and before == dataset_fingerprint(ImageFolder(str(tmp_path), transform=folder.transform))
    path = tmp_path / "a" / "x.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert dataset_fingerprint(folder) != before


def test_extract_features_with_cache_true_is_computed_once_across_heads(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    images, labels = torch.randn(12, 3, 6, 6), torch.arange(12) % 2
    first = transfer.extract_features(_net(0), tensor_loader(images, labels, batch_size=5), device="cpu", cache=True)
    assert not first.from_disk and first.seconds > 0
    other_head = _net(0)
    other_head[5] = nn.Linear(4, 7)  # lesson 08's two-class head, lesson 09's...: the same features
    again = transfer.extract_features(other_head, tensor_loader(images, labels, batch_size=3), device="cpu", cache=True)
    assert again.from_disk and torch.equal(again.features, first.features) and again.seconds == first.seconds
    assert len(list((tmp_path / "features").glob("*.pt"))) == 1
    changed = transfer.extract_features(_net(1), tensor_loader(images, labels), device="cpu", cache=True)
    assert not changed.from_disk and not torch.equal(changed.features, first.features)
    shuffled = transfer.extract_features(_net(0), tensor_loader(images, labels, shuffle=True), device="cpu", cache=True)
    assert not shuffled.from_disk and len(list((tmp_path / "features").glob("*.pt"))) == 2  # computed, not cached


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_loader_indexes_whole_batches_like_a_row_loader(shuffle: bool) -> None:
    images, labels = torch.randn(23, 2, 3, 3), torch.arange(23)
    rows = DataLoader(TensorDataset(images, labels), batch_size=5, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(3) if shuffle else None)  # fmt: skip
    indexed = tensor_loader(images, labels, batch_size=5, shuffle=shuffle, seed=3)
    assert indexed.batch_size is None and len(indexed) == len(rows) == 5  # one fetch per batch, not per row
    for _ in range(2):  # the same batches, epoch after epoch
        for (x_rows, y_rows), (x_indexed, y_indexed) in zip(rows, indexed, strict=True):
            assert torch.equal(x_rows, x_indexed) and torch.equal(y_rows, y_indexed)
    # the same content key as the row loader's when in order, none when shuffled
    expected = None if shuffle else loader_fingerprint(DataLoader(TensorDataset(images, labels), batch_size=5))
    assert loader_fingerprint(indexed) == expected and (shuffle or expected is not None)
    dataset = TensorDataset(images, labels)
    no_key = {  # loaders that skip, drop or reorder rows
        "drops the last rows": DataLoader(dataset, sampler=BatchSampler(SequentialSampler(range(23)), 5, drop_last=True),
                                          batch_size=None),
        "reads only the first rows": DataLoader(dataset, sampler=BatchSampler(SequentialSampler(range(20)), 5, False),
                                                batch_size=None),
        "batch sampler shuffles": DataLoader(dataset, batch_sampler=BatchSampler(RandomSampler(dataset), 5, False)),
        "batch sampler drops rows": DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 5, True)),
        "sampler over fewer rows": DataLoader(dataset, batch_size=5, sampler=SequentialSampler(range(20))),
    }
    assert {what: loader_fingerprint(loader) for what, loader in no_key.items()} == dict.fromkeys(no_key)
