"""One training step, the same everywhere: ``fit``, the learning-rate range test and ``fine_tune`` use it.

A batch is ``(inputs, targets, ...)``; extra items are ignored. :class:`Precision` says how a batch
runs on its device (autocast dtype, memory format) and :class:`TrainStep` takes one optimizer step:
zero the gradients, forward and loss (under autocast when asked), backward (through a GradScaler for
fp16), clip the gradient norm, step. Nothing is read back from the device.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Precision", "TrainStep", "class_index", "default_channels_last"]


def default_channels_last(device: torch.device) -> bool:
    """Whether 4-D batches and convolution weights use the channels-last memory format by default.

    On by default on the CPU, where oneDNN's convolutions run faster in it at the course's sizes (measured on
    2 cores, training steps: LeNet 1.8x, GoogLeNet and MobileNet v1 1.5x, ResNet-20 to -56 1.06-1.35x, Lite0 at
    112-160 px 1.5-1.6x; inference at 224 px 1.3-1.4x; ``benchmarks/channels_last.py``). Off elsewhere unless
    asked for (``channels_last=True``): on a GPU it pays with mixed precision on tensor cores, which
    ``benchmarks/gpu_check.sh`` measures.
    """
    return device.type == "cpu"


@dataclass
class Precision:
    """How batches run on ``device``: autocast dtype (or None) and memory format (None: :func:`default_channels_last`)."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.channels_last is None:
            self.channels_last = default_channels_last(self.device)

    @classmethod
    def for_device(cls, device: torch.device, amp: bool = False, channels_last: bool | None = None) -> Precision:
        """Mixed precision (bf16 where supported, else fp16) on CUDA only; channels-last as asked, else the default."""
        dtype = None
        if amp and device.type != "cuda":
            warnings.warn(
                f"amp=True has no effect on {device.type}: mixed precision is used on CUDA only",
                stacklevel=3,
            )
        elif amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return cls(device, dtype, channels_last)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` when mixed precision is on, else a context that does nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def batch(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` of a batch, moved to the device without waiting for the copy."""
        return self.inputs(batch[0]), batch[1].to(self.device, non_blocking=True)

    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """A batch of inputs on the device, 4-D ones in the memory format, without waiting for the copy."""
        if self.channels_last and inputs.dim() == 4:
            return inputs.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return inputs.to(self.device, non_blocking=True)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (and memory format: 4-D weights only, none if it has 5-D ones); returns it."""
        model.to(self.device)
        if self.channels_last and not any(p.dim() == 5 for p in model.parameters()):
            model.to(memory_format=torch.channels_last)
        return model


def class_index(targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Integer class targets; one-hot or soft (N x C float) targets become their argmax.

    Distillation targets (N x (1 + C) float: the label, then the teacher's logits, see
    :func:`tlcourse.training.distill.pack_targets`) give their label, or the teacher's argmax where
    the label is -1 (an image without one).
    """
    if targets.is_floating_point() and targets.shape == outputs.shape:
        return targets.argmax(1)
    if targets.is_floating_point() and targets.dim() == 2 and targets.shape[1] == outputs.shape[1] + 1:
        labels = targets[:, 0].long()
        return torch.where(labels >= 0, labels, targets[:, 1:].argmax(1))
    return targets


@dataclass
class TrainStep:
    """One optimizer step on one batch; returns ``(outputs, targets, loss)``, all still on the device.

    ``loss_fn`` (default cross-entropy) must return a batch mean. With fp16 autocast a
    ``torch.amp.GradScaler`` scales the loss; bf16 keeps fp32's exponent range and needs none.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., torch.Tensor] = field(default_factory=nn.CrossEntropyLoss)
    precision: Precision | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.precision is None:  # the model's device, and its memory format as fit() would set it
            device = next(self.model.parameters()).device
            self.precision = Precision(device)
            self.precision.prepare(self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        fp16 = self.precision.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.precision.device.type) if fp16 else None

    def __call__(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, targets = self.precision.batch(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            outputs = self.model(inputs)
            loss = self.loss_fn(outputs, targets)
        self.update(loss)
        return outputs, targets, loss.detach()

    def update(self, loss: torch.Tensor) -> None:
        """Backward ``loss`` (scaled for fp16), clip, step the optimizer (steps that compute their own loss reuse it)."""
        if self.scaler is None:
            loss.backward()
            self._clip()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
            self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def _clip(self) -> None:
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
