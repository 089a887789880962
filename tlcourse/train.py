"""Train and evaluate a classifier: ``fit`` returns a :class:`History`, ``evaluate`` an :class:`EvalResult`.

The loops never read a value back from the GPU inside a batch: loss and
accuracy are summed as device tensors and read once per phase (once after the
training batches, once after the validation batches). Everything else comes
from torch itself: ``torch.autocast``/``torch.amp.GradScaler`` for mixed
precision, ``torch.optim.lr_scheduler`` for schedules.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler as schedulers
from tqdm.auto import tqdm

from tlcourse.callbacks import Callback, TrainState, resolve_mode
from tlcourse.device import get_device, peak_memory_mb, reset_peak_memory
from tlcourse.modes import inference_mode

__all__ = ["EpochRecord", "EvalResult", "History", "evaluate", "fit"]

_BATCH_SCHEDULERS = (schedulers.OneCycleLR, schedulers.CyclicLR)


# ---------------------------------------------------------------- history


@dataclass
class EpochRecord:
    """Metrics of one epoch (plain Python numbers).

    ``lr`` is the first parameter group's learning rate at the end of the epoch,
    i.e. the one its last optimizer step used (read before the scheduler steps).
    ``seconds`` covers training and validation; ``images_per_sec`` training only.
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float
    images_per_sec: float
    peak_gpu_mem_mb: float | None = None


_COLUMNS = [f.name for f in fields(EpochRecord)]


def _fmt(value: Any, name: str) -> str:
    if value is None:
        return "-"
    if name == "epoch":
        return str(value)
    if name == "lr":
        return f"{value:.3g}"
    if name == "seconds":
        return f"{value:.2f}"
    if name in ("images_per_sec", "peak_gpu_mem_mb"):
        return f"{value:,.0f}"
    return f"{value:.4f}"


@dataclass
class History:
    """What :func:`fit` did: one :class:`EpochRecord` per epoch, plus how training ended.

    ``history["val_acc"]`` gives a column as a list, ``history[-1]`` a record.
    """

    records: list[EpochRecord] = field(default_factory=list)
    device: str = "cpu"
    stopped_early: bool = False
    best_epoch: int | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            if key not in _COLUMNS:
                raise KeyError(f"{key!r}; columns are {', '.join(_COLUMNS)}")
            return [getattr(r, key) for r in self.records]
        return self.records[key]

    @property
    def last(self) -> EpochRecord:
        """The record of the final epoch."""
        if not self.records:
            raise IndexError("history is empty")
        return self.records[-1]

    @property
    def total_seconds(self) -> float:
        """Wall-clock seconds of all epochs together."""
        return float(sum(r.seconds for r in self.records))

    def best(self, metric: str = "val_acc", mode: str = "auto") -> EpochRecord:
        """The record with the best ``metric`` (min for *loss*, max for *acc* when ``mode="auto"``)."""
        mode = resolve_mode(metric, mode)
        scored = [r for r in self.records if getattr(r, metric) is not None and not math.isnan(getattr(r, metric))]
        if not scored:
            raise ValueError(f"no epoch has a value for {metric!r}")
        pick = min if mode == "min" else max
        return pick(scored, key=lambda r: getattr(r, metric))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (plain floats, ints, bools and None)."""
        return {
            "device": self.device,
            "stopped_early": bool(self.stopped_early),
            "best_epoch": self.best_epoch,
            "records": [asdict(r) for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a History from :meth:`to_dict`'s output."""
        return cls(
            records=[EpochRecord(**r) for r in data.get("records", [])],
            device=data.get("device", "cpu"),
            stopped_early=bool(data.get("stopped_early", False)),
            best_epoch=data.get("best_epoch"),
        )

    def to_markdown(self) -> str:
        """The records as a Markdown table (columns with no values left out)."""
        cols = [c for c in _COLUMNS if any(getattr(r, c) is not None for r in self.records)] or _COLUMNS
        rows = [[_fmt(getattr(r, c), c) for c in cols] for r in self.records]
        widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(cols)]
        line = lambda cells: "| " + " | ".join(s.rjust(w) for s, w in zip(cells, widths)) + " |"  # noqa: E731
        out = [line(cols), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
        out += [line(row) for row in rows]
        return "\n".join(out)

    def __repr__(self) -> str:
        extra = f", stopped early, best epoch {self.best_epoch}" if self.stopped_early else ""
        if not self.stopped_early and self.best_epoch is not None:
            extra = f", best epoch {self.best_epoch}"
        head = f"History({len(self)} epochs on {self.device}, {self.total_seconds:.1f} s{extra})"
        return head + ("\n" + self.to_markdown() if self.records else "")

    def _repr_markdown_(self) -> str:  # rendered as a table in Jupyter
        return self.__repr__().replace("\n", "\n\n", 1)


@dataclass
class EvalResult:
    """Loss, accuracy and per-example outputs of :func:`evaluate` (tensors on the CPU)."""

    loss: float
    accuracy: float
    n: int
    predictions: torch.Tensor
    targets: torch.Tensor
    probabilities: torch.Tensor

    def __repr__(self) -> str:
        return f"EvalResult(loss={self.loss:.4f}, accuracy={self.accuracy:.4f}, n={self.n})"


# ---------------------------------------------------------------- helpers


@dataclass
class _Precision:
    """How batches run on this device: autocast dtype (or None), grad scaler, memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def for_device(cls, device: torch.device, amp: bool, channels_last: bool) -> _Precision:
        if device.type != "cuda":
            if amp:
                warnings.warn(
                    f"amp=True has no effect on {device.type}: mixed precision is used on CUDA only",
                    stacklevel=3,
                )
            return cls(device)
        dtype = None
        if amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return cls(device, dtype, channels_last)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def batch(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = batch[0], batch[1]
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        else:
            inputs = inputs.to(self.device, non_blocking=True)
        return inputs, targets.to(self.device, non_blocking=True)


def _class_index(targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Integer class targets; one-hot or soft (N x C float) targets become their argmax."""
    if targets.is_floating_point() and targets.shape == outputs.shape:
        return targets.argmax(1)
    return targets


def _prepare_model(model: nn.Module, precision: _Precision) -> nn.Module:
    model.to(precision.device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _eval_sums(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: Callable[..., torch.Tensor],
    precision: _Precision,
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
            classes = _class_index(targets, outputs)
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
    precision = _Precision(get_device(device))
    model = _prepare_model(model, precision)
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


def _scheduler_interval(scheduler: Any, interval: str | None) -> str | None:
    if scheduler is None:
        return None
    if interval is None:
        return "batch" if isinstance(scheduler, _BATCH_SCHEDULERS) else "epoch"
    if interval not in ("batch", "epoch"):
        raise ValueError(f"scheduler_interval must be 'batch', 'epoch' or None, not {interval!r}")
    if interval == "batch" and isinstance(scheduler, schedulers.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau needs a metric and steps once per epoch; use scheduler_interval='epoch'")
    return interval


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
    channels_last: bool = False,
    callbacks: Sequence[Callback] | Callback = (),
    grad_clip: float | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return a :class:`History` of per-epoch metrics.

    * ``optimizer`` defaults to AdamW over the trainable parameters with ``lr``
      (fused on CUDA); ``loss_fn`` to cross-entropy (a batch mean).
    * ``scheduler`` is an ``lr_scheduler`` you built on the optimizer. It steps
      per batch for OneCycleLR/CyclicLR and per epoch otherwise (override with
      ``scheduler_interval``); ReduceLROnPlateau steps on val_loss (train_loss without validation).
    * ``amp=True`` runs batches under ``torch.autocast`` on CUDA (bf16 where the
      GPU supports it, else fp16 with ``torch.amp.GradScaler``); elsewhere it is
      a no-op with a warning. (With fp16 and an optimizer you pass that is not
      ``fused=True``, the GradScaler itself reads one value back per step.)
      ``channels_last=True`` uses that memory format, CUDA only.
    * ``grad_clip`` clips the global gradient norm. Callbacks may stop training early.

    Metrics are summed on the device and read once per phase, never per batch.
    ``EpochRecord.lr`` is the first parameter group's lr used by the epoch's last step.
    """
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    precision = _Precision.for_device(get_device(device), amp, channels_last)
    dev = precision.device
    model = _prepare_model(model, precision)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        if not params:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        optimizer = torch.optim.AdamW(params, lr=lr, fused=dev.type == "cuda")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    interval = _scheduler_interval(scheduler, scheduler_interval)
    # bf16 keeps fp32's exponent range and needs no loss scaling; fp16 does.
    scaler = torch.amp.GradScaler(dev.type) if precision.amp_dtype == torch.float16 else None
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)

    history = History(device=str(dev))
    state = TrainState(model=model, optimizer=optimizer, epoch=0, history=history)
    for cb in callbacks:
        cb.on_train_begin(state)

    for epoch in range(1, epochs + 1):
        state.epoch = epoch
        reset_peak_memory(dev)
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        n_seen = 0
        # Updated by hand: iterating a tqdm closes it before the epoch's metrics are known.
        bar = tqdm(total=_length(train_loader), desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress)
        start = time.perf_counter()
        for batch in train_loader:
            inputs, targets = precision.batch(batch)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            if scaler is not None:
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(params, grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
            if interval == "batch":
                lr_used = optimizer.param_groups[0]["lr"]  # a dict read; a tensor lr is copied, not read
                lr_used = lr_used.clone() if isinstance(lr_used, torch.Tensor) else lr_used
                scheduler.step()
            n = targets.shape[0]
            n_seen += n
            loss_sum.add_(loss.detach(), alpha=n)
            correct.add_((outputs.detach().argmax(1) == _class_index(targets, outputs)).sum())
            bar.update()
        if n_seen == 0:
            bar.close()
            raise ValueError("fit() got an empty train_loader")
        train_loss, train_correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()  # sync 1
        train_seconds = time.perf_counter() - start

        val_loss = val_acc = None
        if val_loader is not None:
            v_loss, v_correct, v_n, _, _ = _eval_sums(model, val_loader, loss_fn, precision)
            if v_n == 0:
                bar.close()
                raise ValueError("fit() got an empty val_loader")
            v_loss_sum, v_correct_sum = torch.stack([v_loss, v_correct.to(v_loss.dtype)]).tolist()  # sync 2
            val_loss, val_acc = v_loss_sum / v_n, v_correct_sum / v_n

        if interval != "batch":
            lr_used = optimizer.param_groups[0]["lr"]
        if interval == "epoch":
            if isinstance(scheduler, schedulers.ReduceLROnPlateau):
                scheduler.step(val_loss if val_loss is not None else train_loss / n_seen)
            else:
                scheduler.step()
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss / n_seen,
            train_acc=train_correct / n_seen,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=float(lr_used),
            seconds=time.perf_counter() - start,
            images_per_sec=n_seen / train_seconds if train_seconds > 0 else float("inf"),
            peak_gpu_mem_mb=peak_memory_mb(dev),
        )
        history.records.append(record)
        bar.set_postfix_str(_postfix(record), refresh=True)
        bar.close()
        for cb in callbacks:
            cb.on_epoch_end(state, record)
        if state.stop:
            history.stopped_early = history.stopped_early or epoch < epochs
            break

    for cb in callbacks:
        cb.on_train_end(state)
    return history
