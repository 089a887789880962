"""Capture what a layer outputs, for feature-map plots and feature extraction."""

from __future__ import annotations

import torch
from torch import nn

from tlcourse.core.lookup import check_name
from tlcourse.core.modes import inference_mode


def capture_activations(model: nn.Module, inputs: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Run ``model(inputs)`` once and return the outputs of the named submodules (on CPU).

    ``layers`` are names from ``model.named_modules()``, e.g. ``["c1", "c3"]`` for LeNet-5.
    """
    modules = dict(model.named_modules())
    for name in layers:
        check_name(name, [n for n in modules if n], f"layer of {type(model).__name__}")
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _module, _inputs, output, name=name: captured.__setitem__(name, output.detach().cpu())
        )
        for name in layers
    ]
    try:
        with inference_mode(model):
            device = next(model.parameters()).device
            model(inputs.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return captured
