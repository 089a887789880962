"""Run a model without losing its train/eval state: every layer gets its own flag back.

``model.train(was_training)`` would set one flag on every layer, flattening what transfer learning
often sets on purpose (a frozen backbone kept in eval mode while the head trains). These context
managers remember each submodule's flag and put it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["inference_mode", "preserved_modes"]


@contextlib.contextmanager
def preserved_modes(model: nn.Module) -> Iterator[None]:
    """Afterwards every submodule of ``model`` has the train/eval flag it had before."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad; afterwards every submodule gets its own train/eval flag back."""
    with preserved_modes(model), torch.no_grad():
        model.eval()
        yield
