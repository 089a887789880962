"""Linear probes: how much a layer's features say about a task, measured by a linear classifier on them.

:func:`pooled_stage_features` runs a frozen network once over the data and keeps, for each named
layer, its output averaged over positions (N, C): one vector per image and layer. :func:`linear_probe`
trains a linear head on such features (standardised with the training statistics, so that every layer
gets the same learning rate) with :func:`tlcourse.transfer.train_head`, once per seed, each seed with its
own draw of labelled training images, and returns the accuracies on the test features.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tlcourse.core.lookup import check_name
from tlcourse.data.splits import per_class_indices
from tlcourse.transfer.features import Features, frozen_pass, train_head

__all__ = ["linear_probe", "pooled_stage_features", "standardized"]


def pooled_stage_features(
    model: nn.Module, loader: Iterable[Any], layers: Sequence[str], *, device: str | torch.device = "auto"
) -> dict[str, Features]:
    """For each of ``layers`` (names from ``model.named_modules()``), its output globally average-pooled, (N, C).

    One :func:`~tlcourse.transfer.features.frozen_pass` (eval mode, ``no_grad``, channels-last on the CPU as in
    ``fit``); ``seconds`` of each result is the time of that whole pass.
    """
    modules = dict(model.named_modules())
    for name in layers:
        check_name(name, [n for n in modules if n], f"layer of {type(model).__name__}")
    pooled: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def keep(name: str):
        return lambda _m, _inputs, output: pooled[name].append(output.float().mean(dim=(2, 3)).cpu())

    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    try:
        labels, seconds = frozen_pass(model, loader, device=device)
    finally:
        for handle in handles:
            handle.remove()
    return {name: Features(torch.cat(pooled[name]), labels, seconds) for name in layers}


def standardized(train: Features, test: Features) -> tuple[Features, Features]:
    """Both feature sets shifted and scaled by the training set's per-dimension mean and std."""
    mean = train.features.mean(0)
    std = train.features.std(0).clamp(min=1e-6)
    scale = lambda f: Features((f.features - mean) / std, f.targets, f.seconds, f.from_disk)
    return scale(train), scale(test)


def linear_probe(
    train: Features,
    test: Features,
    num_classes: int,
    *,
    seeds: Sequence[int] = (0,),
    per_class: int | None = None,
    epochs: int = 30,
    lr: float = 1e-2,
    min_steps: int = 200,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Test accuracy of a linear head on standardised ``train`` features, one value per seed.

    Each seed draws its own ``per_class`` training images per class (``None``: all, then only the head's
    initialisation and the shuffling differ) and initialises the head from that seed.
    """
    accuracies = []
    for seed in seeds:
        chosen = train
        if per_class is not None:
            chosen = train.subset(per_class_indices(train.targets.tolist(), per_class, seed=seed, sort=False))
        fitted, evaluated = standardized(chosen, test)
        _, history = train_head(fitted, evaluated, num_classes, epochs=epochs, lr=lr, min_steps=min_steps,
                                seed=seed, device=device)  # fmt: skip
        accuracies.append(float(history.last.val_acc))
    return accuracies
