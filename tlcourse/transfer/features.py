"""Features computed once: run the frozen backbone over the data a single time, then train heads on the cache."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.core.config import cache_dir
from tlcourse.core.device import get_device, seeded
from tlcourse.core.files import atomic_torch_save, load_cache
from tlcourse.core.lookup import lookup
from tlcourse.core.modes import inference_mode
from tlcourse.data.fingerprint import loader_fingerprint, module_fingerprint
from tlcourse.data.tensors import tensor_loader
from tlcourse.training import History, fit
from tlcourse.training.step import Precision
from tlcourse.transfer.heads import head_name

__all__ = ["Features", "content_cache_key", "extract_features", "feature_cache_key", "frozen_pass", "train_head"]


@dataclass
class Features:
    """Backbone features computed once: ``features`` (N, D) and ``targets`` (N,), on the CPU.

    ``seconds`` is how long computing them took, measured when they were computed (a cache keeps it);
    ``from_disk`` says whether this call read them from a cache instead.
    """

    features: torch.Tensor
    targets: torch.Tensor
    seconds: float = 0.0
    from_disk: bool = False

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def dataset(self) -> TensorDataset:
        return TensorDataset(self.features, self.targets)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Features:
        """The features of the given rows (e.g. a few labelled images per class)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return Features(self.features[index], self.targets[index], self.seconds, self.from_disk)

    def loader(self, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A DataLoader over the cached tensors (no workers: the data is already in memory)."""
        return tensor_loader(self.features, self.targets, batch_size=batch_size, shuffle=shuffle, seed=seed)


def feature_cache_key(*parts: Any) -> str:
    """A short stable key (SHA-256 prefix) from descriptions of model, data and transform."""
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _feature_cache_path(key: str | None, file: str | os.PathLike[str] | None) -> Path:
    return Path(file) if file is not None else cache_dir() / "features" / f"{key}.pt"


def _read_features(path: Path) -> Features:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    features, targets = saved["features"], saved["targets"]
    if features.ndim != 2 or targets.ndim != 1 or len(features) != len(targets):
        raise ValueError(f"features {tuple(features.shape)} and targets {tuple(targets.shape)} do not pair up")
    return Features(features, targets, float(saved.get("seconds", 0.0)), from_disk=True)


def content_cache_key(model: nn.Module, loader: Iterable[Any], layer: str, device: torch.device) -> str | None:
    """The cache key of ``model``'s features at ``layer`` over ``loader``, from their content; None if unknowable.

    The network's weights and buffers (except ``layer``'s own: the features are its input), the layer, and the
    loader's images (pixels, or files and transform) in order (:mod:`tlcourse.data.fingerprint`): another lesson
    or a rerun that extracts the same features finds them, whatever head the network carries, and any change
    to the other weights, the images or the transform computes fresh ones. The device type and torch's version
    are part of the key too (a GPU's convolutions round differently, and its ``seconds`` are not this CPU's).
    """
    data = loader_fingerprint(loader)
    if data is None:
        return None
    return feature_cache_key("content", module_fingerprint(model, skip=layer), layer, data, device.type, torch.__version__)


def frozen_pass(
    model: nn.Module, loader: Iterable[Any], *, device: str | torch.device = "auto"
) -> tuple[torch.Tensor, float]:
    """Run ``model`` once over ``loader`` in eval mode under ``no_grad``; the targets ``(N,)`` and the seconds it took.

    What the pass computes is read by the caller's forward hooks. Batches are ``(inputs, targets, ...)`` as
    everywhere in the course, in channels-last on the CPU as in ``fit``; every layer's mode is restored.
    """
    precision = Precision(get_device(device))
    precision.prepare(model)
    targets = []
    start = time.perf_counter()
    with inference_mode(model):
        for batch in loader:
            model(precision.inputs(batch[0]))
            targets.append(torch.as_tensor(batch[1]).cpu())
    return torch.cat(targets).long(), time.perf_counter() - start


def extract_features(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    layer: str | None = None,
    device: str | torch.device = "auto",
    cache_key: str | None = None,
    cache_file: str | os.PathLike[str] | None = None,
    cache: bool = False,
) -> Features:
    """Run ``model`` once over ``loader`` in eval mode under ``no_grad`` and keep the input of its head.

    ``layer`` (default :func:`head_name`) is the module whose *input* is the feature: for a
    classifier, the pooled features its final linear layer sees. Only the features are kept.
    With ``cache_key`` (see :func:`feature_cache_key`) the result is saved under
    ``<cache>/features/<key>.pt`` (or ``cache_file``) and read back on the next call instead of
    recomputed. ``cache=True`` keys the cache by content instead (:func:`content_cache_key`): the same
    weights over the same images, in any lesson or rerun, are computed once; a shuffled loader or one
    whose dataset cannot be fingerprinted is computed without a cache. Every layer's train/eval mode is
    restored afterwards.
    """
    layer = layer or head_name(model)
    dev = get_device(device)
    if cache and cache_key is None and cache_file is None:
        cache_key = content_cache_key(model, loader, layer, dev)
    path = _feature_cache_path(cache_key, cache_file) if (cache_key or cache_file) else None
    cached = load_cache(path, _read_features, what="feature cache") if path is not None else None
    if cached is not None:
        return cached

    target = lookup(dict(model.named_modules()), layer, f"layer of {type(model).__name__}")
    captured: list[torch.Tensor] = []
    handle = target.register_forward_pre_hook(lambda m, args: captured.append(torch.flatten(args[0], 1).float().cpu()))
    try:
        targets, seconds = frozen_pass(model, loader, device=dev)
    finally:
        handle.remove()
    features = Features(torch.cat(captured), targets, seconds)
    if path is not None:  # atomically: a run killed here leaves no truncated cache behind
        atomic_torch_save({"features": features.features, "targets": features.targets, "seconds": features.seconds}, path)
    return features


def train_head(
    train: Features,
    val: Features | None,
    num_classes: int,
    *,
    epochs: int,
    lr: float,
    min_steps: int = 0,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> tuple[nn.Linear, History]:
    """Train a new ``nn.Linear(train.dim, num_classes)`` on cached features with :func:`~tlcourse.training.fit`.

    The head's initial weights and the shuffling come from ``seed`` (the global RNG is left as it
    was). It trains ``epochs`` epochs, or more when that is fewer than ``min_steps`` optimizer steps:
    with a handful of images an epoch is one or two steps, too few for the head to converge.
    Returns the head (on ``device``) and the history.
    """
    loader = train.loader(batch_size=batch_size, shuffle=True, seed=seed)
    epochs = max(epochs, math.ceil(min_steps / len(loader)))
    val_loader = val.loader(batch_size=256) if val is not None else None
    with seeded(seed):
        head = nn.Linear(train.dim, num_classes)
        history = fit(head, loader, val_loader, epochs=epochs, lr=lr, device=device, progress=progress)
    return head, history
