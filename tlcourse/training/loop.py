"""Train and evaluate a classifier: ``fit`` returns a :class:`History`, ``evaluate`` an :class:`EvalResult`.

The loops never read a value back from the GPU inside a batch: loss and accuracy are summed as
device tensors and read once per phase (once after the training batches, once after the
validation batches). Each batch is one :class:`~tlcourse.training.step.TrainStep`; everything else
comes from torch itself: ``torch.autocast``/``torch.amp.GradScaler`` for mixed precision,
``torch.optim.lr_scheduler`` for schedules (or a name from :mod:`tlcourse.training.schedules`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler as schedulers
from tqdm.auto import tqdm

from tlcourse.core.device import get_device, peak_memory_mb, reset_peak_memory
from tlcourse.core.modes import inference_mode
from tlcourse.training.callbacks import Callback, TrainState
from tlcourse.training.history import EpochRecord, EvalResult, History
from tlcourse.training.schedules import make_scheduler
from tlcourse.training.schedules import scheduler_interval as scheduler_interval_of
from tlcourse.training.step import Precision, TrainStep, class_index

__all__ = ["evaluate", "fit"]


# ---------------------------------------------------------------- evaluate


def _eval_sums(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: Callable[..., torch.Tensor],
    precision: Precision,
    keep_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int, list[torch.Tensor], list[torch.Tensor]]:
    """Summed loss and correct count (device tensors), example count, and optionally logits/targets."""
    device = precision.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n_seen = 0
    logits: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    with inference_mode(model):
        for batch in loader:
            inputs, targets = precision.batch(batch)
            with precision.autocast():
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            n = targets.shape[0]
            n_seen += n
            loss_sum.add_(loss.detach(), alpha=n)
            classes = class_index(targets, outputs)
            correct.add_((outputs.argmax(1) == classes).sum())
            if keep_outputs:
                logits.append(outputs.float())
                labels.append(classes)
    return loss_sum, correct, n_seen, logits, labels


# ---------------------------------------------------------------- evaluate


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: str | torch.device = "auto",
    loss_fn: Callable[..., torch.Tensor] | None = None,
) -> EvalResult:
    """Run ``model`` over ``loader`` in eval mode: loss, accuracy, predictions and softmax probabilities.

    Moves the model to ``device``. Outputs are gathered on the device and copied
    to the CPU once at the end. ``loss_fn`` (default cross-entropy) must return a batch mean.
    """
    precision = Precision(get_device(device))
    model = precision.prepare(model)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    loss_sum, _, n, logits, labels = _eval_sums(model, loader, loss_fn, precision, keep_outputs=True)
    if n == 0:
        raise ValueError("evaluate() got an empty loader")
    probabilities = torch.cat(logits).softmax(dim=1).cpu()
    targets = torch.cat(labels).long().cpu()
    predictions = probabilities.argmax(dim=1)
    return EvalResult(
        loss=loss_sum.item() / n,
        accuracy=(predictions == targets).double().mean().item(),
        n=n,
        predictions=predictions,
        targets=targets,
        probabilities=probabilities,
    )


# ---------------------------------------------------------------- fit


def _length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _postfix(record: EpochRecord) -> str:
    parts = [f"loss {record.train_loss:.4f}", f"acc {record.train_acc:.3f}"]
    if record.val_loss is not None:
        parts += [f"val_loss {record.val_loss:.4f}", f"val_acc {record.val_acc:.3f}"]
    parts.append(f"{record.images_per_sec:,.0f} img/s")
    return ", ".join(parts)


def _step_scheduler(scheduler: Any, val_loss: float | None, train_loss: float) -> None:
    if isinstance(scheduler, schedulers.ReduceLROnPlateau):
        scheduler.step(val_loss if val_loss is not None else train_loss)
    else:
        scheduler.step()


def _train_epoch(
    step: TrainStep,
    loader: Iterable[Any],
    state: TrainState,
    callbacks: list[Callback],
    scheduler: Any,
    interval: str | None,
    bar: tqdm,
) -> tuple[float, float, int, float, float]:
    """One pass over ``loader``: mean loss, accuracy, images seen, seconds, and the lr of the last step."""
    device = step.precision.device
    optimizer = step.optimizer
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n_seen = 0
    lr_used = optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    for batch in loader:
        outputs, targets, loss = step(batch)
        if interval == "batch":
            lr_used = optimizer.param_groups[0]["lr"]  # a dict read; a tensor lr is copied, not read
            lr_used = lr_used.clone() if isinstance(lr_used, torch.Tensor) else lr_used
            scheduler.step()
        n = targets.shape[0]
        n_seen += n
        loss_sum.add_(loss, alpha=n)
        correct.add_((outputs.detach().argmax(1) == class_index(targets, outputs)).sum())
        bar.update()
        for cb in callbacks:
            cb.on_batch_end(state, loss)
        if state.stop:
            break
    if n_seen == 0:
        raise ValueError("fit() got an empty train_loader")
    total_loss, total_correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()  # sync 1
    if interval != "batch":
        lr_used = optimizer.param_groups[0]["lr"]
    return total_loss / n_seen, total_correct / n_seen, n_seen, time.perf_counter() - start, float(lr_used)


def _validate(model: nn.Module, loader: Iterable[Any], loss_fn: Callable[..., torch.Tensor], precision: Precision
              ) -> tuple[float, float]:  # fmt: skip
    """Mean loss and accuracy over ``loader`` in eval mode."""
    loss_sum, correct, n, _, _ = _eval_sums(model, loader, loss_fn, precision)
    if n == 0:
        raise ValueError("fit() got an empty val_loader")
    total_loss, total_correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()  # sync 2
    return total_loss / n, total_correct / n


def _run_epoch(
    epoch: int,
    epochs: int,
    step: TrainStep,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    loss_fn: Callable[..., torch.Tensor],
    precision: Precision,
    state: TrainState,
    callbacks: list[Callback],
    scheduler: Any,
    interval: str | None,
    bar: tqdm,
) -> tuple[EpochRecord, bool]:
    """Train one epoch, validate, step a per-epoch schedule; the epoch's record and whether a callback cut it short."""
    state.epoch = epoch
    reset_peak_memory(precision.device)
    step.model.train()
    bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
    start = time.perf_counter()
    train_loss, train_acc, n_seen, train_seconds, lr_used = _train_epoch(step, train_loader, state, callbacks, scheduler, interval, bar)
    cut_short = state.stop  # a callback stopped in the middle of the epoch
    val_loss = val_acc = None
    if val_loader is not None:
        val_loss, val_acc = _validate(step.model, val_loader, loss_fn, precision)
    if interval == "epoch":
        _step_scheduler(scheduler, val_loss, train_loss)
    record = EpochRecord(
        epoch=epoch,
        train_loss=train_loss,
        train_acc=train_acc,
        val_loss=val_loss,
        val_acc=val_acc,
        lr=lr_used,
        seconds=time.perf_counter() - start,
        images_per_sec=n_seen / train_seconds if train_seconds > 0 else float("inf"),
        peak_gpu_mem_mb=peak_memory_mb(precision.device),
    )
    return record, cut_short


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    scheduler: Any = None,
    scheduler_interval: str | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
    channels_last: bool | None = None,
    callbacks: Sequence[Callback] | Callback = (),
    grad_clip: float | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return a :class:`History` of per-epoch metrics.

    * ``optimizer`` defaults to AdamW over the trainable parameters with ``lr``
      (fused on CUDA); ``loss_fn`` to cross-entropy (a batch mean).
    * ``scheduler`` is an ``lr_scheduler`` you built on the optimizer, or a name that ``fit``
      builds (``"onecycle"``, ``"cosine"``, ``"none"``: :mod:`tlcourse.training.schedules`). It steps
      per batch for OneCycleLR/CyclicLR and per epoch otherwise (override with ``scheduler_interval``);
      ReduceLROnPlateau steps on val_loss (train_loss without validation).
    * ``amp=True`` runs batches under ``torch.autocast`` on CUDA (bf16 where the GPU supports it,
      else fp16 with ``torch.amp.GradScaler``); elsewhere it is a no-op with a warning.
      ``channels_last`` (None: on for the CPU, see :func:`~tlcourse.training.step.default_channels_last`)
      puts 4-D batches and convolution weights in that memory format.
    * ``grad_clip`` clips the global gradient norm. Callbacks see every epoch (and every batch's
      loss, still on the device) and may stop training early.

    Metrics are summed on the device and read once per phase, never per batch.
    ``EpochRecord.lr`` is the first parameter group's lr used by the epoch's last step.
    """
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    precision = Precision.for_device(get_device(device), amp, channels_last)
    model = precision.prepare(model)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        optimizer = torch.optim.AdamW(params, lr=lr, fused=precision.device.type == "cuda")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    step = TrainStep(model, optimizer, loss_fn, precision, grad_clip)
    scheduler = make_scheduler(scheduler, optimizer, epochs, _length(train_loader))
    interval = scheduler_interval_of(scheduler, scheduler_interval)
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    history = History(device=str(precision.device))
    state = TrainState(model=model, optimizer=optimizer, epoch=0, history=history)
    for cb in callbacks:
        cb.on_train_begin(state)

    # One bar for the whole call, over every batch of every epoch (updated by hand: iterating a tqdm would
    # close it before the epoch's metrics are known); the per-epoch table is printed once, at the end.
    batches = _length(train_loader)
    bar = tqdm(total=epochs * batches if batches else None, desc=f"epoch 1/{epochs}", unit="batch", disable=not progress)
    try:
        for epoch in range(1, epochs + 1):
            record, cut_short = _run_epoch(epoch, epochs, step, train_loader, val_loader, loss_fn, precision, state,
                                           callbacks, scheduler, interval, bar)  # fmt: skip
            history.records.append(record)
            bar.set_postfix_str(_postfix(record), refresh=True)
            for cb in callbacks:
                cb.on_epoch_end(state, record)
            if state.stop:
                history.stopped_early = history.stopped_early or epoch < epochs or cut_short
                bar.total = bar.n  # stopped early on purpose: a full bar, not a failed one
                break
    finally:
        bar.close()

    for cb in callbacks:
        cb.on_train_end(state)
    if progress:
        print(history)  # one compact table: a row per epoch
    return history
