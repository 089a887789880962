"""Measure a model: parameters, FLOPs, latency, and the output shape of each layer.

``inputs_or_shape`` is either an example input tensor or a shape tuple with
the batch included, e.g. ``(1, 3, 224, 224)``; a shape becomes random data on
the model's device and in its dtype.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tlcourse.core.device import get_device, synchronize
from tlcourse.core.modes import inference_mode

__all__ = [
    "LatencyResult",
    "LayerTrace",
    "count_flops",
    "count_parameters",
    "format_trace",
    "measure_latency",
    "trace_shapes",
]

InputsOrShape = torch.Tensor | Sequence[int]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones once); only ``requires_grad`` ones if ``trainable_only``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _example(model: nn.Module, inputs_or_shape: InputsOrShape) -> torch.Tensor:
    device, dtype = _model_device_dtype(model)
    if isinstance(inputs_or_shape, torch.Tensor):
        return inputs_or_shape.to(device)
    shape = tuple(int(s) for s in inputs_or_shape)
    if len(shape) < 2:
        raise ValueError(f"give a shape with the batch dimension first, e.g. (1, 3, 224, 224), not {shape}")
    return torch.randn(shape, device=device, dtype=dtype)


def count_flops(model: nn.Module, inputs_or_shape: InputsOrShape) -> int:
    """FLOPs of one forward pass, counted by ``torch.utils.flop_counter.FlopCounterMode``.

    A multiply-add counts as 2 FLOPs (so ``nn.Linear(10, 20)`` on a batch of 4
    is 2*4*10*20); the count covers the whole batch in the input. Only the
    operations torch has formulas for (matmuls, convolutions, attention) are
    counted; element-wise ops, biases and activations are not. Runs in eval mode
    under ``no_grad`` and restores the model's mode.
    """
    x = _example(model, inputs_or_shape)
    with inference_mode(model):
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    return int(counter.get_total_flops())


@dataclass
class LatencyResult:
    """Forward-pass time of one call, in milliseconds, over ``repeats`` timed runs."""

    median_ms: float
    mean_ms: float
    min_ms: float
    repeats: int
    device: str

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.2f} ms median (mean {self.mean_ms:.2f}, min {self.min_ms:.2f}) "
            f"over {self.repeats} runs on {self.device}"
        )


def measure_latency(
    model: nn.Module,
    inputs_or_shape: InputsOrShape,
    *,
    device: str | torch.device = "auto",
    warmup: int = 3,
    repeats: int = 10,
) -> LatencyResult:
    """Time ``model(x)`` in eval mode under ``no_grad`` after ``warmup`` untimed runs.

    Moves the model to ``device``. Each timed run waits for the device to finish
    (CUDA/MPS synchronisation) before and after, so the time is the real latency.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    dev = get_device(device)
    model.to(dev)
    x = _example(model, inputs_or_shape)
    times: list[float] = []
    with inference_mode(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            synchronize(dev)
            start = time.perf_counter()
            model(x)
            synchronize(dev)
            times.append((time.perf_counter() - start) * 1000.0)
    return LatencyResult(
        median_ms=statistics.median(times),
        mean_ms=statistics.fmean(times),
        min_ms=min(times),
        repeats=repeats,
        device=str(dev),
    )


@dataclass
class LayerTrace:
    """One module's output in a traced forward pass."""

    name: str
    type_name: str
    output_shape: tuple[Any, ...]
    num_params: int


def _modules_at_depth(model: nn.Module, depth: int) -> list[tuple[str, nn.Module]]:
    """Modules ``depth`` levels below ``model``; a leaf above that depth stands for itself."""
    level = [("", model)]
    for _ in range(depth):
        below: list[tuple[str, nn.Module]] = []
        for name, module in level:
            children = list(module.named_children())
            if not children:
                below.append((name, module))
            below += [(f"{name}.{child}" if name else child, sub) for child, sub in children]
        level = below
    return level


def _shape(output: Any) -> tuple[Any, ...]:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        shapes = tuple(_shape(o) for o in output if isinstance(o, (torch.Tensor, tuple, list)))
        return shapes[0] if len(shapes) == 1 else shapes
    if isinstance(output, dict):
        return _shape(list(output.values()))
    return ()


def trace_shapes(model: nn.Module, inputs_or_shape: InputsOrShape, depth: int = 1) -> list[LayerTrace]:
    """Run one forward pass and record each module's output shape, in call order.

    ``depth=1`` traces the model's direct children, ``depth=2`` their children,
    and so on. Runs in eval mode under ``no_grad`` and restores the model's mode.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    x = _example(model, inputs_or_shape)
    traces: list[LayerTrace] = []
    handles = []

    def hook_for(name: str, module: nn.Module) -> Any:
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            traces.append(LayerTrace(name, type(mod).__name__, _shape(output), count_parameters(mod)))

        return hook

    try:
        for name, module in _modules_at_depth(model, depth):
            handles.append(module.register_forward_hook(hook_for(name, module)))
        with inference_mode(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return traces


def format_trace(traces: Sequence[LayerTrace]) -> str:
    """An aligned text table of :func:`trace_shapes`'s result, with a total parameter count."""
    header = ("layer", "type", "output shape", "params")
    rows = [(t.name or "(model)", t.type_name, str(t.output_shape), f"{t.num_params:,}") for t in traces]
    seen: set[str] = set()
    total = sum(t.num_params for t in traces if not (t.name in seen or seen.add(t.name)))
    footer = ("total", "", "", f"{total:,}")
    widths = [max(len(r[i]) for r in (header, *rows, footer)) for i in range(4)]

    def line(row: Sequence[str]) -> str:
        cells = [row[i].ljust(widths[i]) for i in range(3)] + [row[3].rjust(widths[3])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header).ljust(sum(widths) + 6))
    return "\n".join([line(header), rule, *[line(r) for r in rows], rule, line(footer)])
