"""A lesson's measured results: written as JSON at its end, read by tests and ``tlcourse run``."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import tlcourse
from tlcourse.core.files import atomic_write_text


def to_jsonable(value: Any) -> Any:
    """Plain-JSON copy of ``value``: tensors and numpy scalars become numbers, paths strings."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    return str(value)


def environment() -> dict[str, str]:
    """Versions a result depends on, stored beside it."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tlcourse": tlcourse.__version__,
        "platform": platform.platform(terse=True),
    }


def run_context(dataset: str, dataset_note: str | None, device: Any, smoke: bool, seed: int) -> dict[str, Any]:
    """The keys every lesson records first: what data, which device, smoke mode or not, and the seed."""
    context = {"dataset": dataset, "dataset_note": dataset_note, "device": str(device), "smoke": smoke, "seed": seed}
    return context if dataset_note is not None else {k: v for k, v in context.items() if k != "dataset_note"}


def save_results(path: str | os.PathLike[str] | None, lesson: str, results: Mapping[str, Any]) -> dict[str, Any]:
    """Write a lesson's results as a JSON object to ``path`` (skipped when ``path`` is None).

    Returns the record that was (or would have been) written, so a notebook can display it.
    """
    record = {"lesson": lesson, "results": to_jsonable(results), "environment": environment()}
    if path is not None:
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    return record


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file written by :func:`save_results`; returns its ``results`` object."""
    return json.loads(Path(path).read_text())["results"]
