"""Caches, checkpoints and results survive interruption: a run killed mid-write, then run again."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from tlcourse.core.files import CacheWarning, atomic_write_text, load_cache
from tlcourse.training import Checkpoint
from tlcourse.transfer import extract_features

# a process that dies (SIGKILL, nothing cleaned up) halfway through writing the bytes of a torch.save
DIES_MID_WRITE = """
import io, os, signal, sys
import torch
from torch import nn

real_save = torch.save

def save_half_then_die(obj, f, *args, **kwargs):
    buffer = io.BytesIO()
    real_save(obj, buffer)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_half_then_die
"""


def _model_and_loader() -> tuple[nn.Module, list]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    return model, [(torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0]))]


def _run_and_kill(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DIES_MID_WRITE + textwrap.dedent(script)], capture_output=True, text=True, timeout=120)


def test_a_run_killed_while_writing_the_feature_cache_leaves_none_and_the_rerun_recomputes(tmp_path: Path) -> None:
    cache = tmp_path / "features" / "backbone.pt"
    killed = _run_and_kill(f"""
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        loader = [(torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0]))]
        from tlcourse.transfer import extract_features
        extract_features(model, loader, device="cpu", cache_file={str(cache)!r})
    """)
    assert killed.returncode == -9, killed.stderr
    assert not cache.exists(), "a killed write left a cache file at the final path"
    (leftover,) = cache.parent.glob(".backbone.pt.*.tmp")  # the dead writer's half-written temporary file
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    model, loader = _model_and_loader()
    first = extract_features(model, loader, device="cpu", cache_file=cache)
    again = extract_features(model, loader, device="cpu", cache_file=cache)
    assert not first.from_disk and again.from_disk
    assert torch.equal(first.features, again.features) and first.features.shape == (4, 12)
    assert not leftover.exists(), "the next write did not remove the stale temporary file"


def test_a_truncated_or_mismatched_cache_is_a_miss_with_one_warning(tmp_path: Path) -> None:
    model, loader = _model_and_loader()
    cache = tmp_path / "backbone.pt"
    buffer = io.BytesIO()
    torch.save({"features": torch.zeros(4, 12), "targets": torch.zeros(4)}, buffer)
    cache.write_bytes(buffer.getvalue()[:100])  # what a plain torch.save killed mid-write used to leave
    with pytest.warns(CacheWarning, match="backbone.pt is unreadable or does not match") as caught:
        features = extract_features(model, loader, device="cpu", cache_file=cache)
    assert len(caught) == 1 and not features.from_disk and features.features.shape == (4, 12)
    assert extract_features(model, loader, device="cpu", cache_file=cache).from_disk  # rewritten whole

    torch.save({"features": torch.zeros(5, 12), "targets": torch.zeros(4)}, cache)  # readable, but no pair
    with pytest.warns(CacheWarning, match=r"features \(5, 12\) and targets \(4,\) do not pair up"):
        assert not extract_features(model, loader, device="cpu", cache_file=cache).from_disk


def test_a_run_killed_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    torch.save({"model": nn.Linear(2, 2).state_dict(), "epoch": 3, "val_loss": 0.5}, path)
    killed = _run_and_kill(f"""
        from types import SimpleNamespace
        from tlcourse.training import Checkpoint
        callback = Checkpoint({str(path)!r}, monitor="val_loss")
        callback.on_train_begin(None)
        record = SimpleNamespace(epoch=4, val_loss=0.1)
        callback.on_epoch_end(SimpleNamespace(model=nn.Linear(2, 2)), record)
    """)
    assert killed.returncode == -9, killed.stderr
    checkpoint = Checkpoint.load(path, nn.Linear(2, 2))
    assert checkpoint["epoch"] == 3, "the interrupted write replaced the previous checkpoint"


def test_atomic_text_and_load_cache(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "deep" / "results.json", json.dumps({"acc": 0.9}))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "an atomic write must keep the usual file mode"
    assert load_cache(path, lambda p: json.loads(p.read_text())) == {"acc": 0.9}
    assert load_cache(tmp_path / "missing.json", lambda p: 1) is None
    path.write_text("{")
    with pytest.warns(CacheWarning, match="results.json"):
        assert load_cache(path, lambda p: json.loads(p.read_text())) is None
    assert not path.exists()
    path.write_text("{}")
    with pytest.raises(PermissionError):  # not a cache problem: the error reaches the user, the file stays
        load_cache(path, lambda p: (_ for _ in ()).throw(PermissionError("no access")))
    assert path.exists()
