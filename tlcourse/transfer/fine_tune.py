"""Fine-tuning in one call: the head first with the backbone frozen, then the network with layer-wise rates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tlcourse.training import Callback, History, fit
from tlcourse.transfer.freezing import freeze_to
from tlcourse.transfer.layerwise import param_groups

__all__ = ["FineTuneResult", "fine_tune"]


@dataclass
class FineTuneResult:
    """The two phases of :func:`fine_tune`: the head alone (backbone frozen), then the unfrozen network."""

    head_history: History | None
    history: History | None
    head_lrs: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_history": self.head_history.to_dict() if self.head_history else None,
            "history": self.history.to_dict() if self.history else None,
            "head_lrs": self.head_lrs,
            "lrs": self.lrs,
        }


def fine_tune(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    epochs: int,
    head_epochs: int = 1,
    lr: float = 1e-3,
    head_lr: float | None = None,
    lr_spread: float | None = 100.0,
    lr_decay: float | None = None,
    freeze_until: int = -1,
    unfreeze_to: int = 0,
    weight_decay: float = 0.01,
    scheduler: str | None = "onecycle",
    keep_frozen_bn_stats: bool = True,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "auto",
    progress: bool = False,
    **fit_kwargs: Any,
) -> FineTuneResult:
    """fast.ai-style fine-tuning in one call, both phases run by :func:`tlcourse.training.fit`.

    1. ``head_epochs`` epochs with the first ``freeze_until`` stages frozen (default ``-1``: all but the
       head), at ``head_lr`` (default ``2 * lr``);
    2. ``epochs`` epochs with the stages from ``unfreeze_to`` on trainable (default 0: everything), with
       layer-wise rates from :func:`param_groups`: ``lr`` for the head, ``lr / lr_spread`` for the first
       stage (or times ``lr_decay`` per stage; ``lr_spread=None`` and ``lr_decay=None``: ``lr`` everywhere).

    Both phases use AdamW (``weight_decay``) and ``scheduler``, a schedule's name that ``fit`` builds on
    each phase's optimizer (``"onecycle"`` per batch, ``"cosine"`` per epoch, or ``"none"``). Either phase is skipped when its epoch count is 0. Extra keyword arguments
    go to ``fit`` (``amp``, ``grad_clip``, ...). The model is left fully trainable from ``unfreeze_to``.
    """
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(
            "fine_tune builds an optimizer per phase, so its scheduler is a schedule's name "
            f"('onecycle', 'cosine' or 'none'), not {type(scheduler).__name__}; call fit() to pass your own"
        )
    if lr_decay is not None:
        lr_spread = None
    head_history = history = None
    head_lrs: list[float] = []
    lrs: list[float] = []
    fit_kwargs = {"scheduler": scheduler, "callbacks": callbacks, "device": device, "progress": progress, **fit_kwargs}
    if head_epochs > 0:
        freeze_to(model, freeze_until, keep_frozen_bn_stats=keep_frozen_bn_stats)
        groups = param_groups(model, head_lr if head_lr is not None else 2 * lr, weight_decay=weight_decay)
        head_lrs = [g["lr"] for g in groups]  # read before the schedule moves them
        head_history = fit(model, train_loader, val_loader, epochs=head_epochs, optimizer=torch.optim.AdamW(groups),
                           **fit_kwargs)  # fmt: skip
    if epochs > 0:
        freeze_to(model, unfreeze_to, keep_frozen_bn_stats=keep_frozen_bn_stats)
        groups = param_groups(model, lr, decay=lr_decay, spread=lr_spread, weight_decay=weight_decay)
        lrs = [g["lr"] for g in groups]
        history = fit(model, train_loader, val_loader, epochs=epochs, optimizer=torch.optim.AdamW(groups), **fit_kwargs)
    return FineTuneResult(head_history, history, head_lrs, lrs)
