"""fit's device paths: mixed precision, channels_last, peak memory, and no per-batch sync.

The CUDA tests skip on a machine without CUDA; ``benchmarks/gpu_check.sh`` runs this file on a GPU
(``TLCOURSE_TEST_DEVICE=cuda``). The sync counter runs everywhere: on CUDA it counts the synchronising calls
torch reports (``torch.cuda.set_sync_debug_mode``), elsewhere every read of a tensor's value on the host by code
outside torch (the course's loop, the test's own loop).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.training import fit

DEVICE = torch.device(os.environ.get("TLCOURSE_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
needs_cuda = pytest.mark.skipif(DEVICE.type != "cuda", reason="needs CUDA (benchmarks/gpu_check.sh runs it on a GPU)")
BATCHES, EPOCHS = 40, 2


def _loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(BATCHES * 16, 3, 16, 16, generator=g), torch.randint(0, 4, (BATCHES * 16,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))  # fmt: skip


@contextmanager
def count_syncs(device: torch.device) -> Iterator[list[str]]:
    """Collect one entry per host-device synchronisation (CUDA) or host read of a tensor's value (elsewhere)."""
    seen: list[str] = []
    if device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield seen
            finally:
                torch.cuda.set_sync_debug_mode("default")
        seen += [str(w.message) for w in caught if "synchroniz" in str(w.message)]
        return
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__float__", "__int__", "__bool__")}

    def counted(name):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith("torch."):  # torch's own CPU bookkeeping (AdamW's step counts) is not ours
                seen.append(f"{name} in {caller}")
            return originals[name](self, *args, **kwargs)

        return read

    try:
        for name in originals:
            setattr(torch.Tensor, name, counted(name))
        yield seen
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_fit_reads_the_device_once_per_phase_not_once_per_batch() -> None:
    train, val = _loaders()
    model = _cnn()
    fit(model, train, val, epochs=1, device=DEVICE, progress=False)  # warm-up: allocator, kernels
    with count_syncs(DEVICE) as syncs:
        fit(model, train, val, epochs=EPOCHS, device=DEVICE, progress=False)
    assert len(syncs) <= 4 * EPOCHS, f"{len(syncs)} syncs in {EPOCHS} epochs of {BATCHES} batches: {syncs[:10]}"
    # the counter itself works: a loop that reads the loss every batch is caught once per batch
    model.to(DEVICE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with count_syncs(DEVICE) as per_batch:
        for x, y in train:
            loss = nn.functional.cross_entropy(model(x.to(DEVICE)), y.to(DEVICE))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
    assert len(per_batch) >= BATCHES, per_batch[:5]


def _output_dtypes(model: nn.Module) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []
    model[-1].register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    return dtypes


@needs_cuda
@pytest.mark.parametrize("half", ["bf16", "fp16"])
def test_amp_trains_in_half_precision_and_fp16_uses_a_grad_scaler(half: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if half == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    if half == "fp16":  # what fit chooses on a GPU without bf16
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    train, val = _loaders()
    model = _cnn()
    dtypes = _output_dtypes(model)
    scalers = []
    import tlcourse.training.step as step_module

    real_scaler = step_module.torch.amp.GradScaler
    monkeypatch.setattr(step_module.torch.amp, "GradScaler", lambda *a, **k: scalers.append(1) or real_scaler(*a, **k))
    history = fit(model, train, val, epochs=2, device=DEVICE, amp=True, progress=False)
    expected = torch.bfloat16 if half == "bf16" else torch.float16
    assert dtypes and all(d == expected for d in dtypes), set(dtypes)
    assert bool(scalers) is (half == "fp16")
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in history)
    assert history.last.val_acc is not None and history[-1].train_loss < history[0].train_loss * 1.5


@needs_cuda
def test_channels_last_reaches_the_convolutions_and_peak_memory_is_recorded() -> None:
    train, val = _loaders()
    model = _cnn()
    layouts: list[bool] = []
    model[0].register_forward_pre_hook(lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    history = fit(model, train, val, epochs=1, device=DEVICE, channels_last=True, progress=False)
    assert layouts and all(layouts), "inputs reached the first convolution in NCHW"
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert history.last.peak_gpu_mem_mb is not None and history.last.peak_gpu_mem_mb > 0
    assert history.device.startswith("cuda")
