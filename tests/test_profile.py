"""Parameter and FLOP counts, latency, and layer-by-layer shape traces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.measure.profile import (
    LatencyResult,
    LayerTrace,
    count_flops,
    count_parameters,
    format_trace,
    measure_latency,
    trace_shapes,
)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 6 x 14 x 14
        nn.Flatten(),
        nn.Sequential(nn.Linear(6 * 14 * 14, 32), nn.ReLU(), nn.Dropout(0.5)),
        nn.Linear(32, 10),
    )  # fmt: skip


def test_count_parameters_known_layers():
    assert count_parameters(nn.Linear(10, 20)) == 10 * 20 + 20
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 3 * 8 * 3 * 3 + 8
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 220 + 105
    assert count_parameters(model, trainable_only=True) == 105
    shared = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(shared, shared)) == 20  # shared weights counted once


def test_count_flops_linear_and_conv():
    assert count_flops(nn.Linear(10, 20), (4, 10)) == 2 * 4 * 10 * 20
    assert count_flops(nn.Linear(10, 20), torch.randn(4, 10)) == 2 * 4 * 10 * 20
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (2, 3, 16, 16)) == 2 * (2 * 8 * 16 * 16) * (3 * 3 * 3)


def test_count_flops_restores_modes():
    model = small_cnn()
    model.train()
    model[4][2].eval()  # a submodule the user froze in eval mode
    count_flops(model, (1, 1, 28, 28))
    assert model.training and model[0].training
    assert not model[4][2].training


def test_trace_shapes_depth_1_and_2():
    model = small_cnn()
    traces = trace_shapes(model, (2, 1, 28, 28))
    assert all(isinstance(t, LayerTrace) for t in traces)
    assert [t.name for t in traces] == ["0", "1", "2", "3", "4", "5"]
    assert [t.output_shape for t in traces] == [
        (2, 6, 28, 28), (2, 6, 28, 28), (2, 6, 14, 14), (2, 1176), (2, 32), (2, 10),
    ]  # fmt: skip
    assert traces[0].type_name == "Conv2d" and traces[0].num_params == 156
    assert traces[4].type_name == "Sequential" and traces[4].num_params == 1176 * 32 + 32
    assert sum(t.num_params for t in traces) == count_parameters(model)

    deep = trace_shapes(model, (2, 1, 28, 28), depth=2)
    assert [t.name for t in deep][-4:] == ["4.0", "4.1", "4.2", "5"]
    assert deep[-4].output_shape == (2, 32) and deep[-4].type_name == "Linear"
    assert not model._forward_hooks and not model[0]._forward_hooks  # hooks removed


def test_format_trace_is_an_aligned_table():
    traces = trace_shapes(small_cnn(), torch.randn(1, 1, 28, 28))
    text = format_trace(traces)
    lines = text.splitlines()
    assert "output shape" in lines[0] and "params" in lines[0]
    assert "Conv2d" in text and "(1, 6, 28, 28)" in text and "MaxPool2d" in text
    assert lines[-1].startswith("total") and f"{count_parameters(small_cnn()):,}" in lines[-1]
    body = [line for line in lines if line and not line.startswith("-")]
    shape_col = lines[0].index("output shape")
    assert all(line[shape_col - 2 : shape_col] == "  " for line in body[1:-1])


def test_measure_latency_positive():
    result = measure_latency(small_cnn(), (1, 1, 28, 28), device="cpu", warmup=1, repeats=5)
    assert isinstance(result, LatencyResult)
    assert result.repeats == 5 and result.device == "cpu"
    assert 0 < result.min_ms <= result.median_ms
    assert result.mean_ms > 0
    assert "ms" in str(result)
    with pytest.raises(ValueError):
        measure_latency(small_cnn(), (1, 1, 28, 28), device="cpu", repeats=0)
