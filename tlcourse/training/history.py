"""What training measured: an :class:`EpochRecord` per epoch in a :class:`History`, and :class:`EvalResult`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from tlcourse.core.lookup import check_name

__all__ = ["COLUMNS", "EpochRecord", "EvalResult", "History", "resolve_mode"]


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


COLUMNS = [f.name for f in fields(EpochRecord)]


def resolve_mode(monitor: str, mode: str = "auto") -> str:
    """Return ``"min"`` or ``"max"``; ``"auto"`` means min for a *loss*, max for an *acc*."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"mode must be 'auto', 'min' or 'max', not {mode!r}")
    if "loss" in monitor:
        return "min"
    if "acc" in monitor:
        return "max"
    raise ValueError(f"cannot guess whether {monitor!r} should go up or down; pass mode='min' or 'max'")



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
            check_name(key, COLUMNS, "history column")
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
        cols = [c for c in COLUMNS if any(getattr(r, c) is not None for r in self.records)] or COLUMNS
        rows = [[_fmt(getattr(r, c), c) for c in cols] for r in self.records]
        widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(cols)]
        line = lambda cells: "| " + " | ".join(s.rjust(w) for s, w in zip(cells, widths)) + " |"
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
