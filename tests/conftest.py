"""Shared fixtures: where the offline data lives, and the rule that CI never skips a data test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _candidate_roots() -> list[Path]:
    roots = []
    if os.environ.get("TLCOURSE_DATA"):
        roots.append(Path(os.environ["TLCOURSE_DATA"]))
    roots.append(REPO.parent / "shared" / "data")
    return roots


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The folder holding ``hymenoptera_data/``; skips locally when absent, fails in CI."""
    for root in _candidate_roots():
        if (root / "hymenoptera_data" / "train").is_dir():
            return root
    message = (
        "ants-vs-bees data not found in "
        + ", ".join(str(r) for r in _candidate_roots())
        + "; set TLCOURSE_DATA to the folder that holds hymenoptera_data/"
    )
    if IN_CI:
        pytest.fail("CI must run data tests: " + message)
    pytest.skip(message)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with TLCOURSE_OFFLINE=1."""
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
