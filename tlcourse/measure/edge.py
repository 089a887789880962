"""What a network costs on a small CPU: int8 post-training quantisation, size on disk and latency.

* :func:`quantize_int8` is PyTorch's own post-training static quantisation in FX graph mode
  (``torch.ao.quantization.quantize_fx``): the network is traced, convolution + batch norm + ReLU
  are fused, observers record the range of every activation on a few calibration batches, and
  ``convert_fx`` replaces the layers by int8 kernels (fbgemm/x86 or qnnpack). Weights are int8 per
  output channel (``per_channel=True``, the default) or with one scale per tensor. torch 2.10+
  marks ``torch.ao.quantization`` as deprecated in favour of the separate ``torchao`` package; it
  still ships and works in the installed torch, and it is the only int8 path that needs no extra
  dependency, so the deprecation warning is silenced here (and said in lesson 12).
* :func:`state_dict_bytes` saves a state dict to a temporary file and returns its size.
* :func:`cpu_latency` times a forward pass with a fixed number of CPU threads
  (:func:`~tlcourse.measure.profile.measure_latency` under :func:`cpu_threads`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from tlcourse.core.lookup import check_name
from tlcourse.measure.profile import LatencyResult, measure_latency

__all__ = ["QUANTIZED_ENGINES", "cpu_latency", "cpu_threads", "quantize_int8", "quantized_engine", "state_dict_bytes"]

#: The int8 CPU engines :func:`quantize_int8` accepts (those of the installed torch are in
#: ``torch.backends.quantized.supported_engines``).
QUANTIZED_ENGINES: tuple[str, ...] = ("x86", "fbgemm", "qnnpack")


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Use the int8 ``engine`` inside the block, the previous one after."""
    check_name(engine, QUANTIZED_ENGINES, "quantized engine")
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"this torch has no {engine!r} engine; it has {torch.backends.quantized.supported_engines}")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions", category=UserWarning)
        yield


def quantize_int8(
    model: nn.Module,
    calibration: Iterable[torch.Tensor] | Iterable[tuple[torch.Tensor, ...]],
    *,
    engine: str = "x86",
    per_channel: bool = True,
) -> torch.fx.GraphModule:
    """An int8 copy of ``model`` (CPU, eval mode), calibrated on the images of ``calibration``.

    ``calibration`` yields image batches or ``(images, labels, ...)`` tuples, e.g. a few batches of a
    training loader. ``model`` is left unchanged. The int8 network must run with the same ``engine``
    (it is set while quantising; wrap inference in :func:`quantized_engine` if you change it).
    """
    from torch.ao.quantization import QConfig, default_weight_observer, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    float_model = copy.deepcopy(model).cpu().eval()
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in calibration]
    if not batches:
        raise ValueError("quantize_int8 needs at least one calibration batch")
    with quantized_engine(engine), _quiet_deprecation():
        mapping = get_default_qconfig_mapping(engine)
        if not per_channel:
            default = mapping.global_qconfig
            mapping.set_global(QConfig(activation=default.activation, weight=default_weight_observer))
        prepared = prepare_fx(float_model, mapping, example_inputs=(batches[0].cpu(),))
        with torch.no_grad():
            for images in batches:
                prepared(images.cpu())
        quantized = convert_fx(prepared)
    return quantized.eval()


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` on disk (written to a temporary file, then removed)."""
    handle, path = tempfile.mkstemp(suffix=".pt")
    os.close(handle)
    try:
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, the previous count after."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_latency(
    model: nn.Module, inputs: torch.Tensor, *, threads: int = 1, warmup: int = 3, repeats: int = 10
) -> LatencyResult:
    """Median (and mean, min) CPU time of ``model(inputs)`` over ``repeats`` runs with ``threads`` threads."""
    with cpu_threads(threads):
        return measure_latency(model, inputs.cpu(), device="cpu", warmup=warmup, repeats=repeats)
