"""Hooks that :func:`tlcourse.training.fit` calls around training: early stopping, checkpoints, and more.

A callback sees a :class:`TrainState`, each batch's loss (a device tensor: reading it is the
callback's choice, and its cost) and the finished epoch's
:class:`~tlcourse.training.EpochRecord` (plain Python floats, already read from the device once
per epoch). Setting ``state.stop = True`` ends training after the current batch. The
learning-rate range test (:mod:`tlcourse.training.lr_finder`) is such a callback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlcourse.core.files import atomic_torch_save
from tlcourse.core.lookup import check_name
from tlcourse.training.history import COLUMNS, EpochRecord, History, resolve_mode

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "TrainState",
    "is_improvement",
    "resolve_mode",
]


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta`` (``best=None`` always loses)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_monitor(monitor: str, mode: str) -> str:
    """The monitor's mode ("min"/"max") after checking it names a column of :class:`EpochRecord`."""
    check_name(monitor, [c for c in COLUMNS if c != "epoch"], "metric to monitor")
    return resolve_mode(monitor, mode)


def _monitored(record: EpochRecord, monitor: str) -> float:
    value = getattr(record, monitor, None)
    if value is None:
        hint = " (did you pass a val_loader to fit?)" if monitor.startswith("val_") else ""
        raise ValueError(f"epoch record has no value for {monitor!r}{hint}")
    return float(value)


@dataclass
class TrainState:
    """What callbacks can see and change during :func:`tlcourse.training.fit`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    history: History | None = None
    stop: bool = False


class Callback:
    """Base class: override any of the four hooks (each does nothing by default)."""

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch."""

    def on_batch_end(self, state: TrainState, loss: torch.Tensor) -> None:
        """Called after each optimizer step with the batch's mean loss, still on the device."""

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        """Called after each epoch (training and validation) with its record."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once after the last epoch, including after an early stop."""


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy (never a reference) of ``model.state_dict()``."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best weights.

    ``mode="auto"`` minimises metrics named *loss* and maximises *acc*. The best
    weights are kept as a CPU copy and loaded back when training ends. Sets
    ``history.stopped_early`` and ``history.best_epoch``.
    """

    monitor: str = "val_loss"
    mode: str = "auto"
    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)
    wait: int = field(default=0, init=False)
    _best_state: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.mode = _check_monitor(self.monitor, self.mode)
        if self.patience < 0 or self.min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")

    def on_train_begin(self, state: TrainState) -> None:
        """Forget anything from an earlier run."""
        self.best, self.best_epoch, self.wait, self._best_state = None, None, 0, None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        """Remember an improvement, or count a patient epoch and ask to stop."""
        value = _monitored(record, self.monitor)
        if is_improvement(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, record.epoch, 0
            if self.restore_best_weights:
                self._best_state = _cpu_copy(state.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop = True
            if state.history is not None:
                state.history.stopped_early = True

    def on_train_end(self, state: TrainState) -> None:
        """Load the best weights back (if asked) and record the best epoch."""
        if self.restore_best_weights and self._best_state is not None:
            state.model.load_state_dict(self._best_state)
        if state.history is not None and self.best_epoch is not None:
            state.history.best_epoch = self.best_epoch


@dataclass
class Checkpoint(Callback):
    """Save ``{"model": state_dict, "epoch": n, monitor: value}`` to ``path`` with ``torch.save`` (atomically).

    With ``save_best_only`` (default) the file is written only when ``monitor``
    improves, so it always holds the best epoch; otherwise after every epoch.
    """

    path: str | os.PathLike[str]
    monitor: str = "val_loss"
    mode: str = "auto"
    save_best_only: bool = True
    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.mode = _check_monitor(self.monitor, self.mode)

    def on_train_begin(self, state: TrainState) -> None:
        """Forget anything from an earlier run."""
        self.best, self.best_epoch = None, None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        """Write the checkpoint when due."""
        value = _monitored(record, self.monitor)
        improved = is_improvement(value, self.best, self.mode)
        if improved:
            self.best, self.best_epoch = value, record.epoch
        if improved or not self.save_best_only:
            # atomically: an interrupted run keeps the previous best checkpoint, never a truncated file
            atomic_torch_save({"model": state.model.state_dict(), "epoch": record.epoch, self.monitor: value}, self.path)

    def on_train_end(self, state: TrainState) -> None:
        """Record the best epoch in the history when no one else has."""
        if state.history is not None and state.history.best_epoch is None and self.save_best_only:
            state.history.best_epoch = self.best_epoch

    @staticmethod
    def load(path: str | os.PathLike[str], model: nn.Module) -> dict[str, Any]:
        """Load a checkpoint's weights into ``model`` (on its current device); return the checkpoint."""
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(checkpoint["model"])
        return checkpoint
