"""Pick the compute device, seed every random generator, and read GPU memory.

One place decides where the course's code runs: ``get_device("auto")`` prefers
CUDA, then Apple's MPS, then the CPU. The memory helpers return ``None`` (or do
nothing) off CUDA, so callers never need their own ``if cuda`` checks.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "available_devices",
    "describe_device",
    "get_device",
    "peak_memory_mb",
    "reset_peak_memory",
    "seed_everything",
    "seeded",
    "synchronize",
]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can use, e.g. ``["cuda:0", "cpu"]``."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def _unavailable(spec: str, why: str) -> ValueError:
    return ValueError(
        f"device {spec!r} is not available ({why}). Available here: "
        f"{', '.join(available_devices())}. Use device='auto' to pick the best one, "
        "or device='cpu'."
    )


def get_device(spec: str | torch.device = "auto") -> torch.device:
    """Return a usable ``torch.device``: ``"auto"`` picks cuda > mps > cpu.

    Accepts ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``;
    raises ``ValueError`` (listing what is available) for a device this machine lacks.
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec.strip().lower() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError) as err:
        raise _unavailable(str(spec), f"not a device name: {err}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _unavailable(str(spec), "this machine has no CUDA GPU, or torch was built without CUDA")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise _unavailable(str(spec), f"only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise _unavailable(str(spec), "MPS needs an Apple-silicon Mac and a torch built with MPS")
        return torch.device("mps")
    raise _unavailable(str(spec), f"the course supports cpu, cuda and mps, not {device.type!r}")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: torch's generators (CPU and every GPU) seeded with ``seed``; afterwards as they were before.

    Library code that needs reproducible random weights uses this instead of reseeding the
    global generators behind the caller's back.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    mps_state = torch.mps.get_rng_state() if _mps_available() else None
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)  # also seeds the MPS generator, which fork_rng does not save
            yield
    finally:
        if mps_state is not None:
            torch.mps.set_rng_state(mps_state)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python ``random``, NumPy and torch (all GPUs): call it at the top of a lesson or script.

    (String hashing cannot be seeded from inside a running interpreter; ``PYTHONHASHSEED`` only
    works when set before Python starts, so it is not touched here. Library code never calls this:
    it uses :func:`seeded`, which leaves the caller's generators as they were.)

    ``deterministic=True`` also makes cuDNN deterministic (benchmark off) and asks
    torch for deterministic algorithms, warning (not failing) where none exists.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA (and MPS) generator
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        # cuBLAS needs this to be deterministic on CUDA >= 10.2 (read when cuBLAS starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def describe_device(device: str | torch.device = "auto") -> str:
    """One line about a device, e.g. ``"cpu (2 threads)"`` or ``"cuda:0 (NVIDIA H100, 80 GB)"``."""
    device = get_device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda:{device.index} ({props.name}, {props.total_memory / 1e9:.0f} GB)"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: str | torch.device = "auto") -> None:
    """Wait until all queued work on ``device`` has finished (no-op on the CPU)."""
    device = get_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: str | torch.device = "auto") -> None:
    """Start a new peak-memory measurement on a CUDA device (no-op elsewhere)."""
    device = get_device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: str | torch.device = "auto") -> float | None:
    """Peak GPU memory allocated by tensors since the last reset, in MB (2**20 bytes); ``None`` unless CUDA."""
    device = get_device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
