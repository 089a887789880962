"""The learning-rate range test (Smith, 2015/2017): how large a learning rate can this network take?

Train for a few hundred mini-batches while the learning rate grows exponentially from ``start_lr``
to ``end_lr``, recording the loss after each step. The loss first barely moves (lr too small), then
falls, then explodes (lr too large). A good learning rate sits where the loss still falls steeply,
about ten times below the rate of the smallest (smoothed) loss.

:func:`lr_range_test` is :func:`~tlcourse.training.fit` with an exponential schedule and the
:class:`LRFinder` callback, which records every step's loss and stops the sweep when the loss
diverges (as fastai's ``LRFinder`` is a callback of its ``Learner``). It works on a copy of nothing:
it trains ``model`` and ``optimizer`` in place and puts both back exactly as they were afterwards
(weights, batch-norm statistics, optimizer moments and learning rates, every layer's train/eval
mode), so it can run in the middle of a training recipe. With several
parameter groups (layer-wise rates) all groups are swept together, keeping their ratios; the rates
reported are those of the group with the largest learning rate.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from tlcourse.core.modes import preserved_modes
from tlcourse.training.callbacks import Callback, TrainState
from tlcourse.training.loop import fit

__all__ = ["LRFinder", "LRFinderResult", "lr_range_test", "suggest_lr"]


@dataclass
class LRFinderResult:
    """What :func:`lr_range_test` recorded: one learning rate and loss per step, and the suggestion.

    ``lrs`` (increasing) and ``losses`` (raw mini-batch losses) have one entry per step taken;
    ``smoothed`` is their exponential moving average (bias-corrected). ``suggestion`` is the lr at the
    minimum of ``smoothed`` divided by 10, ``min_loss_lr`` that minimum's lr, ``steepest_lr`` where the
    smoothed loss falls fastest. ``stopped_early`` is True when the loss diverged before ``end_lr``.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_loss_lr: float
    steepest_lr: float
    start_lr: float
    end_lr: float
    stopped_early: bool = False
    seconds: float = 0.0
    group_ratios: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "suggestion": self.suggestion,
            "min_loss_lr": self.min_loss_lr,
            "steepest_lr": self.steepest_lr,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "group_ratios": self.group_ratios,
        }

    def plot(self, ax: Any = None) -> Any:
        """Loss against learning rate (log scale), raw and smoothed, with the suggestion marked; returns the Figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 4))
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, color="0.75", lw=1, label="mini-batch loss")
        ax.plot(self.lrs, self.smoothed, color="tab:blue", lw=2, label="smoothed")
        ax.axvline(self.min_loss_lr, color="tab:red", ls=":", label=f"minimum of smoothed loss ({self.min_loss_lr:.1e})")
        ax.axvline(self.suggestion, color="tab:green", ls="--", label=f"suggestion = minimum / 10 ({self.suggestion:.1e})")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (largest group)")
        ax.set_ylabel("training loss")
        finite = [v for v in self.smoothed if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) * 0.9, min(max(finite), 3 * finite[0]) * 1.1)
        ax.legend(fontsize=8)
        ax.set_title("Learning-rate range test")
        fig.tight_layout()
        return fig


def suggest_lr(lrs: list[float], smoothed: list[float]) -> tuple[float, float, float]:
    """``(suggestion, min_loss_lr, steepest_lr)`` from a sweep: the minimum's lr / 10 (kept inside the sweep)."""
    if not lrs or len(lrs) != len(smoothed):
        raise ValueError("need as many smoothed losses as learning rates, at least one")
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        raise ValueError("every loss of the sweep is inf or nan")
    best = min(finite, key=lambda i: smoothed[i])
    min_loss_lr = lrs[best]
    suggestion = max(min_loss_lr / 10, lrs[0])
    slopes = [
        (smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(len(lrs) - 1)
        if math.isfinite(smoothed[i]) and math.isfinite(smoothed[i + 1]) and lrs[i + 1] > lrs[i]
    ]
    steepest_lr = lrs[min(range(len(slopes)), key=lambda i: slopes[i])] if slopes else min_loss_lr
    return suggestion, min_loss_lr, steepest_lr


def _batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches, starting it over whenever it runs out."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("lr_range_test() got an empty train_loader")


class LRFinder(Callback):
    """Record each step's loss during an exponential lr sweep; stop when the smoothed loss diverges.

    Losses stay on the device and are read back once every ``check_every`` steps (not per batch);
    the divergence test then runs on that window, and the record ends at the first diverging step.
    """

    def __init__(self, start_lr: float, growth: float, *, beta: float = 0.9, diverge: float = 4.0,
                 check_every: int = 10, steps: int | None = None) -> None:  # fmt: skip
        self.start_lr, self.growth, self.beta, self.diverge = start_lr, growth, beta, diverge
        self.check_every, self.steps = check_every, steps
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.diverged = False
        self._pending: list[torch.Tensor] = []  # this window's losses, still on the device
        self._average, self._best, self._taken = 0.0, math.inf, 0

    def on_batch_end(self, state: TrainState, loss: torch.Tensor) -> None:
        """Keep the loss; every ``check_every`` steps (and at the last) read the window and test it."""
        self._pending.append(loss)
        self._taken += 1
        if len(self._pending) == self.check_every or self._taken == self.steps:
            state.stop = self._read_window()

    def on_train_end(self, state: TrainState) -> None:
        """Read what is still pending (a sweep cut short by the loader)."""
        if self._pending and not self.diverged:
            self._read_window()

    def _read_window(self) -> bool:
        """Read the pending losses back at once and run the stop test; True when the sweep diverged."""
        values = torch.stack(self._pending).float().tolist()  # one sync per window
        self._pending.clear()
        for value in values:
            step = len(self.losses)
            self._average = self.beta * self._average + (1 - self.beta) * value
            current = self._average / (1 - self.beta ** (step + 1))
            self.lrs.append(self.start_lr * self.growth**step)
            self.losses.append(value)
            self.smoothed.append(current)
            if not math.isfinite(current) or (step > 0 and current > self.diverge * self._best):
                self.diverged = True
                return True
            self._best = min(self._best, current)
        return False


def lr_range_test(
    model: nn.Module,
    train_loader: Iterable[Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    beta: float = 0.9,
    diverge: float = 4.0,
    check_every: int = 10,
    device: str | torch.device = "auto",
) -> LRFinderResult:
    """Sweep the learning rate exponentially from ``start_lr`` to ``end_lr`` over ``steps`` mini-batches.

    ``optimizer`` defaults to AdamW over the trainable parameters; with several parameter groups the
    largest group's rate follows the sweep and the others keep their ratio to it. The loader is
    restarted when it runs out. The loss is smoothed with an exponential moving average (``beta``);
    the test stops when the smoothed loss exceeds ``diverge`` times its minimum (or is not finite),
    checked every ``check_every`` steps (see :class:`LRFinder`). Batches follow ``fit``'s convention
    (``(inputs, targets, ...)``, outputs ``(N, classes)``). Afterwards the model's state dict and
    every layer's train/eval mode, and the optimizer's state dict, are as they were before.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError("need 0 < start_lr < end_lr")
    if steps < 2:
        raise ValueError("steps must be >= 2")
    if check_every < 1:
        raise ValueError("check_every must be >= 1")
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        optimizer = torch.optim.AdamW(params, lr=start_lr)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())

    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(group_lrs) or 1.0
    ratios = [lr / top for lr in group_lrs]
    for group, ratio in zip(optimizer.param_groups, ratios):
        group["lr"] = start_lr * ratio
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    schedule = lr_scheduler.LambdaLR(optimizer, lambda step: growth**step)
    finder = LRFinder(start_lr, growth, beta=beta, diverge=diverge, check_every=check_every, steps=steps)
    start = time.perf_counter()
    try:
        with preserved_modes(model):
            fit(model, itertools.islice(_batches(train_loader), steps), epochs=1, optimizer=optimizer,
                loss_fn=loss_fn, scheduler=schedule, scheduler_interval="batch", callbacks=[finder],
                device=device, progress=False)  # fmt: skip
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.zero_grad(set_to_none=True)
    suggestion, min_loss_lr, steepest_lr = suggest_lr(finder.lrs, finder.smoothed)
    return LRFinderResult(
        lrs=finder.lrs,
        losses=finder.losses,
        smoothed=finder.smoothed,
        suggestion=suggestion,
        min_loss_lr=min_loss_lr,
        steepest_lr=steepest_lr,
        start_lr=start_lr,
        end_lr=end_lr,
        stopped_early=finder.diverged and len(finder.losses) < steps,
        seconds=time.perf_counter() - start,
        group_ratios=ratios,
    )
