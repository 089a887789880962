"""Layer-wise learning rates: the head learns fastest, the early stages (generic features) slowest."""

from __future__ import annotations

from typing import Any

from torch import nn

from tlcourse.transfer.stages import stages

__all__ = ["param_groups", "stage_lrs"]


def stage_lrs(n: int, lr: float, *, decay: float | None = None, spread: float | None = None) -> list[float]:
    """Learning rates of ``n`` stages, input first, the last (the head) getting ``lr``.

    ``decay``: each stage down gets ``decay`` times the one above (e.g. 0.5). ``spread``: the rates go
    geometrically from ``lr / spread`` (first stage) to ``lr`` (fast.ai's ``slice(lr / spread, lr)``).
    Neither: ``lr`` everywhere.
    """
    if decay is not None and spread is not None:
        raise ValueError("give decay or spread, not both")
    if n < 1:
        raise ValueError("n must be >= 1")
    if decay is not None:
        return [lr * decay ** (n - 1 - i) for i in range(n)]
    if spread is not None:
        if n == 1:
            return [lr]
        return [lr / spread * spread ** (i / (n - 1)) for i in range(n)]
    return [lr] * n


def param_groups(
    model: nn.Module,
    lr: float,
    *,
    decay: float | None = None,
    spread: float | None = None,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per stage, with :func:`stage_lrs` learning rates.

    The rates are set over all stages (so a stage's rate does not depend on what is frozen);
    frozen parameters are left out and stages with nothing to train are dropped. Each group
    carries its stage's ``"name"``. Pass the result to any ``torch.optim`` optimizer.
    """
    all_stages = stages(model)
    params = dict(model.named_parameters())
    groups = []
    for stage, stage_lr in zip(all_stages, stage_lrs(len(all_stages), lr, decay=decay, spread=spread)):
        trainable = [params[n] for n in stage.parameter_names if params[n].requires_grad]
        if trainable:
            group: dict[str, Any] = {"params": trainable, "lr": stage_lr, "name": stage.name}
            if weight_decay is not None:
                group["weight_decay"] = weight_decay
            groups.append(group)
    return groups
