"""Run a model for inference without losing its train/eval state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad; afterwards every submodule gets its own train/eval flag back.

    Restoring per submodule matters for transfer learning, where a frozen backbone is
    often kept in eval mode (BatchNorm statistics fixed) while the head trains.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training
