"""Learning-rate schedules for ``fit``: an ``lr_scheduler`` you built, or one named here that ``fit`` builds.

``fit(..., scheduler="onecycle")`` builds ``OneCycleLR`` peaking at each parameter group's ``lr``;
``"cosine"`` builds ``CosineAnnealingLR`` over the epochs; ``"none"`` (or ``None``) keeps the rate fixed.
A scheduler steps per batch for OneCycleLR/CyclicLR and per epoch otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import lr_scheduler as schedulers

from tlcourse.core.lookup import check_name, lookup

__all__ = ["SCHEDULES", "make_scheduler", "scheduler_interval"]

BATCH_SCHEDULERS = (schedulers.OneCycleLR, schedulers.CyclicLR)


def _onecycle(optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int | None) -> Any:
    if steps_per_epoch is None:
        raise ValueError("scheduler='onecycle' needs a train_loader with a length")
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return schedulers.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch)


def _cosine(optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int | None) -> Any:
    return schedulers.CosineAnnealingLR(optimizer, T_max=epochs)


SCHEDULES = {"onecycle": _onecycle, "cosine": _cosine, "none": None}


def make_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int | None) -> Any:
    """``scheduler`` itself when it is an object, else the named schedule built on ``optimizer`` (or None)."""
    if scheduler is None or not isinstance(scheduler, str):
        return scheduler
    build = lookup(SCHEDULES, scheduler, "scheduler")
    return None if build is None else build(optimizer, epochs, steps_per_epoch)


def scheduler_interval(scheduler: Any, interval: str | None) -> str | None:
    """``"batch"`` or ``"epoch"``: how often ``scheduler`` steps (None without a scheduler)."""
    if scheduler is None:
        return None
    if interval is None:
        return "batch" if isinstance(scheduler, BATCH_SCHEDULERS) else "epoch"
    check_name(interval, ("batch", "epoch"), "scheduler_interval")
    if interval == "batch" and isinstance(scheduler, schedulers.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau needs a metric and steps once per epoch; use scheduler_interval='epoch'")
    return interval
