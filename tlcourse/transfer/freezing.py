"""Freeze and unfreeze a network by depth (its first stages) or by parameter name, and report what trains."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from torch import nn

from tlcourse.transfer.batchnorm import sync_frozen_bn_stats
from tlcourse.transfer.stages import select_parameters
from tlcourse.transfer.stages import stages as model_stages

__all__ = ["StageReport", "TrainableReport", "freeze", "freeze_to", "trainable_report", "unfreeze"]


def _set_trainable(model: nn.Module, selected: Iterable[str], trainable: bool, keep_frozen_bn_stats: bool) -> nn.Module:
    params = dict(model.named_parameters())
    for name in selected:
        params[name].requires_grad_(trainable)
    if keep_frozen_bn_stats:
        sync_frozen_bn_stats(model)
    return model


def freeze(
    model: nn.Module,
    stages: int | None = None,
    *,
    names: Sequence[str] | str | None = None,
    keep_frozen_bn_stats: bool = True,
) -> nn.Module:
    """Set ``requires_grad=False`` on the first ``stages`` stages, or on parameters matching ``names``.

    With neither, everything but the last stage (the head) is frozen. ``names`` are parameter-name
    prefixes (``"features.stem"``) or ``fnmatch`` patterns (``"*.bn.*"``). With ``keep_frozen_bn_stats`` (default),
    a batch norm whose parameters are all frozen also stops updating its running statistics.
    """
    if stages is None and names is None:
        stages = -1
    return _set_trainable(model, select_parameters(model, stages, names), False, keep_frozen_bn_stats)


def unfreeze(
    model: nn.Module,
    stages: int | None = None,
    *,
    names: Sequence[str] | str | None = None,
    keep_frozen_bn_stats: bool = True,
) -> nn.Module:
    """Make parameters trainable again: the first ``stages`` stages, those matching ``names``, or (neither) all."""
    return _set_trainable(model, select_parameters(model, stages, names), True, keep_frozen_bn_stats)


def freeze_to(model: nn.Module, n: int, *, keep_frozen_bn_stats: bool = True) -> nn.Module:
    """fast.ai's ``freeze_to``: stages before index ``n`` frozen, the others trainable (``n=-1``: head only)."""
    unfreeze(model, keep_frozen_bn_stats=False)
    return freeze(model, n, keep_frozen_bn_stats=keep_frozen_bn_stats) if n != 0 else _set_trainable(model, [], True, keep_frozen_bn_stats)


@dataclass(frozen=True)
class StageReport:
    """Trainable and total parameter counts of one stage."""

    name: str
    trainable: int
    total: int


@dataclass
class TrainableReport:
    """What :func:`trainable_report` found: per-stage counts and the trainable parameter names."""

    stages: list[StageReport]
    trainable_names: list[str] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(s.trainable for s in self.stages)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.stages)

    def __str__(self) -> str:
        width = max(len(s.name) for s in self.stages)
        lines = [f"{'stage':<{width}}  {'trainable':>12}  {'total':>12}"]
        for s in self.stages:
            mark = "" if s.trainable == s.total else ("  frozen" if s.trainable == 0 else "  partly frozen")
            lines.append(f"{s.name:<{width}}  {s.trainable:>12,}  {s.total:>12,}{mark}")
        lines.append(f"{'all':<{width}}  {self.trainable:>12,}  {self.total:>12,}")
        return "\n".join(lines)


def trainable_report(model: nn.Module) -> TrainableReport:
    """Which parameters train: counts per stage (print it for a table) and the trainable names."""
    params = dict(model.named_parameters())
    rows = [
        StageReport(
            s.name,
            sum(params[n].numel() for n in s.parameter_names if params[n].requires_grad),
            sum(params[n].numel() for n in s.parameter_names),
        )
        for s in model_stages(model)
    ]
    return TrainableReport(rows, [n for n, p in params.items() if p.requires_grad])
