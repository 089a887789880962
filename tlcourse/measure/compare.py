"""Compare backbones: what each one costs (parameters, FLOPs, latency, memory) and the Pareto front.

* :func:`measure_backbone` measures one network at one input size: parameters and FLOPs
  (:mod:`tlcourse.measure.profile`), the median latency of one image and of a batch, and the peak memory
  of a forward pass on one image (:func:`peak_memory`);
* :func:`pareto_front` finds the points that no other point beats on both cost (lower is better)
  and score (higher is better) — the backbones worth considering at some budget.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tlcourse.core.device import get_device
from tlcourse.core.modes import inference_mode
from tlcourse.measure.profile import count_flops, count_parameters, measure_latency

__all__ = ["BackboneCost", "MemoryResult", "dominates", "measure_backbone", "pareto_front", "peak_memory"]

MB = 1024.0**2


@dataclass(frozen=True)
class MemoryResult:
    """Peak memory of one forward pass: ``total_bytes`` (weights + buffers + activations) and the activations alone.

    ``method`` says how it was measured: ``"cuda_max_memory_allocated"``, ``"torch_mem_tracker"``
    (every tensor storage alive during the pass, counted by torch's ``MemTracker``) or ``"rss_delta"``
    (growth of the process's resident memory: rough, the allocator may reuse freed memory).
    """

    total_bytes: int
    activation_bytes: int
    method: str


@dataclass
class BackboneCost:
    """What running one network costs at one input size (see :func:`measure_backbone`)."""

    name: str
    input_shape: tuple[int, ...]
    parameters: int
    flops: int
    latency_ms: float
    batch_size: int
    batch_latency_ms: float
    peak_memory_mb: float
    activation_memory_mb: float
    memory_method: str
    device: str
    threads: int

    @property
    def batch_ms_per_image(self) -> float:
        """Latency of the batch divided by its size: the throughput view of the same network."""
        return self.batch_latency_ms / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["batch_ms_per_image"] = self.batch_ms_per_image
        return out


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def _state_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def peak_memory(model: nn.Module, batch_shape: Sequence[int], *, device: str | torch.device = "auto") -> MemoryResult:
    """Peak memory of one forward pass (eval mode, no gradients) on a random batch of ``batch_shape`` ``(N, C, H, W)``.

    On CUDA: ``torch.cuda.max_memory_allocated`` over the pass (weights on the device included). On the
    CPU: torch's ``MemTracker`` (``torch.distributed._tools``), which counts every tensor storage alive
    at each step of the pass — exact for tensors, deterministic, blind to the allocator's own overhead.
    Where it is missing, the growth of the resident set size (psutil), which is rough.
    """
    dev = get_device(device)
    model.to(dev)
    x = torch.randn(tuple(int(s) for s in batch_shape), device=dev)
    weights = _state_bytes(model)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        with inference_mode(model):
            model(x)
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev)
        return MemoryResult(int(peak), int(peak - base), "cuda_max_memory_allocated")
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except Exception:  # torch built without distributed
        MemTracker = None
    if MemTracker is not None:
        tracker = MemTracker()
        tracker.track_external(model)
        with inference_mode(model), tracker:
            model(x)
        snapshot = tracker.get_tracker_snapshot("peak")[dev]
        total = int(snapshot["Total"])
        return MemoryResult(total, max(total - weights, 0), "torch_mem_tracker")
    import psutil

    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    with inference_mode(model):
        model(x)
    activations = max(process.memory_info().rss - before, 0)
    return MemoryResult(weights + activations, activations, "rss_delta")


def measure_backbone(
    model: nn.Module,
    input_shape: Sequence[int] = (3, 224, 224),
    *,
    name: str = "",
    batch_size: int = 8,
    device: str | torch.device = "auto",
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
) -> BackboneCost:
    """Parameters, FLOPs (one image), median latency of one image and of a batch, peak memory (one image).

    ``input_shape`` is one image's ``(C, H, W)``. ``threads`` fixes torch's CPU threads while timing
    (restored afterwards): one thread is steadier on a shared machine. Latencies are medians of
    ``repeats`` runs after ``warmup`` (see :func:`tlcourse.measure.profile.measure_latency`).
    """
    shape = tuple(int(s) for s in input_shape)
    dev = get_device(device)
    model.to(dev)
    flops = count_flops(model, (1, *shape))
    with _threads(threads) as used:
        one = measure_latency(model, (1, *shape), device=dev, warmup=warmup, repeats=repeats)
        batch = measure_latency(model, (batch_size, *shape), device=dev, warmup=min(warmup, 1), repeats=repeats)
    memory = peak_memory(model, (1, *shape), device=dev)
    return BackboneCost(
        name=name or type(model).__name__,
        input_shape=shape,
        parameters=count_parameters(model),
        flops=flops,
        latency_ms=one.median_ms,
        batch_size=batch_size,
        batch_latency_ms=batch.median_ms,
        peak_memory_mb=memory.total_bytes / MB,
        activation_memory_mb=memory.activation_bytes / MB,
        memory_method=memory.method,
        device=str(dev),
        threads=used,
    )


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a = (cost, score)`` dominates ``b``: no more costly, no worse, and strictly better in one of the two."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points ``(cost, score)`` that no other point dominates, sorted by cost (then score).

    Lower cost and higher score are better. Equal points are all kept.
    """
    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
