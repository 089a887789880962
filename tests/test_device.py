"""Device choice, seeding and the memory helpers (on whatever machine runs the tests)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from tlcourse.core.device import (
    available_devices,
    describe_device,
    get_device,
    peak_memory_mb,
    reset_peak_memory,
    seed_everything,
    seeded,
    synchronize,
)

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def test_cpu_spec_and_device_object():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(" CPU ") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    assert "cpu" in available_devices()


def test_auto_prefers_cuda_then_mps_then_cpu():
    expected = "cuda" if HAS_CUDA else "mps" if HAS_MPS else "cpu"
    assert get_device("auto").type == expected
    assert get_device().type == expected


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_missing_cuda_raises_helpful_error():
    for spec in ("cuda", "cuda:1", torch.device("cuda", 0)):
        with pytest.raises(ValueError) as err:
            get_device(spec)
        message = str(err.value)
        assert "not available" in message and "'auto'" in message and "'cpu'" in message


@pytest.mark.skipif(HAS_MPS, reason="this machine has MPS")
def test_missing_mps_raises():
    with pytest.raises(ValueError, match="auto"):
        get_device("mps")


@pytest.mark.parametrize("spec", ["banana", "gpu", ""])
def test_nonsense_spec_raises_value_error(spec):
    with pytest.raises(ValueError, match="auto"):
        get_device(spec)


@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(ValueError):
        get_device(f"cuda:{torch.cuda.device_count()}")


def test_seed_everything_repeats_random_streams(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    seed_everything(123)
    first = (torch.randn(5), np.random.rand(3), random.random())
    seed_everything(123)
    second = (torch.randn(5), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
    assert "PYTHONHASHSEED" not in os.environ  # it only works before Python starts, so it is not set
    seed_everything(124)
    assert not torch.equal(torch.randn(5), first[0])


def test_seeded_gives_the_same_numbers_and_leaves_the_caller_generator_alone():
    torch.manual_seed(7)
    expected_next = torch.randn(3)
    torch.manual_seed(7)
    with seeded(5):
        inside = torch.randn(4)
    with seeded(5):
        again = torch.randn(4)
    assert torch.equal(inside, again)
    assert torch.equal(torch.randn(3), expected_next)  # the caller's stream went on as if nothing happened


def test_seed_everything_deterministic_sets_flags(monkeypatch):
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def test_describe_and_memory_helpers_on_cpu():
    text = describe_device("cpu")
    assert text.startswith("cpu (") and "thread" in text
    synchronize("cpu")
    reset_peak_memory("cpu")
    assert peak_memory_mb("cpu") is None
    assert isinstance(describe_device("auto"), str)
