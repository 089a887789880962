"""Lesson 09: several backbones on the same transfer task, accuracy against cost, the Pareto front."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO, LessonRunner
from torch import nn

from tlcourse.course.lessons import list_lessons, run_lesson
from tlcourse.measure.compare import BackboneCost, dominates, measure_backbone, pareto_front, peak_memory
from tlcourse.measure.crossval import cross_validate_head, pooled
from tlcourse.measure.metrics import wilson_interval
from tlcourse.transfer import Features

LESSON = "09_choosing_an_architecture"
LESSONS = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}
ROW_FIELDS = {
    "label", "arch", "protocol", "weights", "input_size", "val_acc", "parameters", "flops", "latency_ms",
    "batch_latency_ms", "batch_ms_per_image", "peak_memory_mb", "activation_memory_mb", "memory_method", "depth",
    "on_front_latency", "on_front_flops",
}  # fmt: skip
PROTOCOLS = {"pretrained features", "random features", "trained from scratch"}


# ---------------------------------------------------------------- the lesson's recorded claims


def _check_front(rows: list[dict], key: str, flag: str, names: list[str]) -> None:
    points = [(r[key], r["val_acc"]) for r in rows]
    front = [i for i, r in enumerate(rows) if r[flag]]
    assert [rows[i]["label"] for i in pareto_front(points)] == names
    assert sorted(front) == sorted(pareto_front(points))
    # the most accurate point (the cheapest of them, if tied) is on the front
    best = max(range(len(rows)), key=lambda i: (points[i][1], -points[i][0]))
    assert best in front
    # no point on the front is dominated by any point; every point off it is
    for i in front:
        assert not any(dominates(q, points[i]) for q in points)
    for i in set(range(len(rows))) - set(front):
        assert any(dominates(points[j], points[i]) for j in front)


def test_smoke_run_compares_backbones_on_both_sides(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["dataset"] == "hymenoptera" and r["smoke"] is True
    assert r["train_images"] == 30 and r["val_images"] == 20
    rows = r["rows"]
    assert 4 <= len(rows) <= 6  # smoke: a few backbones, the three packaged Lites among them
    assert sorted(r["pretrained_lite_accs"]) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert {row["arch"]: row["input_size"] for row in rows if row["protocol"] == "pretrained features"} == {
        "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
    for row in rows:
        assert set(row) >= ROW_FIELDS, ROW_FIELDS - set(row)
        assert row["protocol"] in PROTOCOLS
        assert 0.0 <= row["val_acc"] <= 1.0
        for key in ("parameters", "flops", "latency_ms", "batch_latency_ms", "peak_memory_mb", "depth"):
            assert row[key] > 0, (row["label"], key)
        # weights + buffers are part of the peak: 4 bytes per float32 parameter at least
        assert row["peak_memory_mb"] * 2**20 >= 4 * row["parameters"]
    by_label = {row["label"]: row for row in rows}
    pretrained, random = by_label["Lite0, ImageNet weights"], by_label["Lite0, random weights"]
    # same architecture, same cost: the weights' values change none of it
    for key in ("parameters", "flops", "latency_ms", "peak_memory_mb"):
        assert pretrained[key] == random[key]
    assert pretrained["parameters"] == 4_652_008 and 0.7e9 < pretrained["flops"] < 0.85e9
    # ... but the accuracy: ImageNet features separate ants from bees from 15 photos per class, random ones do not
    assert pretrained["val_acc"] >= 0.8
    assert pretrained["val_acc"] > random["val_acc"]
    assert r["pretrained_minus_random_acc"] == pytest.approx(pretrained["val_acc"] - random["val_acc"])
    assert any(row["protocol"] == "trained from scratch" for row in rows)
    _check_front(rows, "latency_ms", "on_front_latency", r["front_latency"])
    _check_front(rows, "flops", "on_front_flops", r["front_flops"])
    assert not random["on_front_latency"]  # dominated by its pretrained twin at the same cost
    # offline, the torchvision path runs and skips with a reason; online it adds rows
    for name, reason in r["torchvision_skipped"].items():
        assert name in reason and "not available" in reason
    assert set(r["torchvision_used"]).isdisjoint(r["torchvision_skipped"])
    # the honest estimate: every pretrained row cross-validated on the pooled photos, each tested once per repeat
    cv = r["cross_validation"]
    assert set(cv) == {row["label"] for row in rows if row["protocol"] == "pretrained features"}
    for result in cv.values():
        assert result["images"] == r["train_images"] + r["val_images"] and result["folds"] == r["cv_folds"]
        assert len(result["repeat_accuracies"]) == r["cv_repeats"] == 2
        assert len(result["fold_accuracies"]) == r["cv_folds"] * r["cv_repeats"]
        assert result["ci_low"] <= result["mean"] <= result["ci_high"] and result["ci_high"] - result["ci_low"] > 0.05
        assert result["mean"] >= 0.8  # pretrained features, 50 photos (measured 0.93-0.95)
    assert r["cv_goal_met"] == (cv[r["best_cv_label"]]["mean"] >= r["cv_goal"])


@pytest.mark.long  # about 2 minutes on a 2-core CPU: run with `pytest -m long`
def test_full_mode_pretrained_weights_beat_every_other_offline_backbone(tmp_path: Path) -> None:
    run = run_lesson(LESSONS[LESSON], tmp_path, smoke=False, device="cpu")
    assert run.ok, f"{run.error} (see {run.output_notebook})"
    r = run.results
    assert r["train_images"] == 244 and r["val_images"] == 153
    offline = [row for row in r["rows"] if row["arch"] not in r["torchvision_used"]]
    assert len(offline) == 10
    lites = [row for row in offline if row["protocol"] == "pretrained features"]
    assert sorted(row["arch"] for row in lites) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert [row["input_size"] for row in sorted(lites, key=lambda row: row["arch"])] == [224, 240, 260]
    others = [row for row in offline if row not in lites]
    assert min(row["val_acc"] for row in lites) >= 0.9 > max(row["val_acc"] for row in others)
    assert r["best_label"] in {row["label"] for row in lites}
    assert r["pretrained_minus_random_acc"] >= 0.2
    assert r["best_scratch_acc"] < r["pretrained_lite0_acc"] - 0.1
    # the course's goal for the best packaged backbone, measured honestly (repeated 5-fold cross-validation)
    best = r["cross_validation"][r["best_cv_label"]]
    assert best["images"] == 397 and best["mean"] >= r["cv_goal"] == 0.955, best


# ---------------------------------------------------------------- tlcourse.measure.compare directly


def test_pareto_front_of_hand_made_points() -> None:
    points = [(1.0, 0.50), (2.0, 0.90), (3.0, 0.80), (0.5, 0.40), (2.0, 0.90), (4.0, 0.95), (2.0, 0.70)]
    # (3, 0.8) is dominated by (2, 0.9); (2, 0.7) too; the two equal (2, 0.9) both stay
    assert pareto_front(points) == [3, 0, 1, 4, 5]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.1)]) == [0]
    # a point both cheaper and better than all others is the whole front
    assert pareto_front([(5.0, 0.5), (1.0, 0.99), (2.0, 0.6)]) == [1]
    assert dominates((1, 0.9), (2, 0.9)) and dominates((1, 0.9), (1, 0.8))
    assert not dominates((1, 0.9), (1, 0.9)) and not dominates((1, 0.5), (2, 0.9))


def test_pareto_front_has_no_dominated_point_on_random_clouds() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        points = [tuple(p) for p in torch.rand(30, 2, generator=g).tolist()]
        front = pareto_front(points)
        assert front and all(not any(dominates(q, points[i]) for q in points) for i in front)
        assert all(any(dominates(points[j], points[i]) for j in front) for i in set(range(30)) - set(front))
        costs = [points[i][0] for i in front]
        scores = [points[i][1] for i in front]
        assert costs == sorted(costs) and scores == sorted(scores)  # a staircase: dearer means better


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )  # fmt: skip


def test_measure_backbone_fields_are_positive_and_counts_exact() -> None:
    torch.manual_seed(0)
    model = _small_cnn()
    threads = torch.get_num_threads()
    cost = measure_backbone(model, (3, 16, 16), name="tiny", batch_size=4, threads=1, repeats=3)
    assert isinstance(cost, BackboneCost) and cost.name == "tiny" and cost.threads == 1
    assert torch.get_num_threads() == threads  # restored
    assert cost.parameters == 3 * 8 * 9 + 8 + 8 * 2 + 2
    assert cost.flops == 2 * 16 * 16 * 8 * 27 + 2 * 8 * 2  # convolution + linear, multiply-add = 2
    assert cost.latency_ms > 0 and cost.batch_latency_ms > 0 and cost.batch_ms_per_image > 0
    assert cost.input_shape == (3, 16, 16) and cost.batch_size == 4 and cost.device == "cpu"
    d = cost.to_dict()
    assert d["batch_ms_per_image"] == pytest.approx(cost.batch_latency_ms / 4)
    assert cost.peak_memory_mb > 0 and cost.activation_memory_mb > 0 and cost.memory_method


def test_peak_memory_counts_weights_and_grows_with_the_activations() -> None:
    model = _small_cnn()
    weights = sum(p.numel() * 4 for p in model.parameters())
    small = peak_memory(model, (1, 3, 16, 16))
    big = peak_memory(model, (8, 3, 64, 64))
    assert small.total_bytes >= weights + small.activation_bytes - 1
    if small.method == "torch_mem_tracker":  # exact: the 8x16x16 float32 feature map is alive at the peak
        assert small.activation_bytes >= 8 * 16 * 16 * 4
        # 128x more pixels in the batch: the activations grow accordingly, the weights do not
        assert big.activation_bytes >= 100 * small.activation_bytes
        assert big.total_bytes - big.activation_bytes == small.total_bytes - small.activation_bytes


# ---------------------------------------------------------------- tlcourse.measure.crossval and the interval


@pytest.mark.parametrize(("correct", "total"), [(0, 10), (7, 10), (146, 153), (153, 153), (380, 397)])
def test_wilson_interval_matches_scipy(correct: int, total: int) -> None:
    from scipy.stats import binomtest

    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(correct, total)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_cross_validation_tests_every_image_once_per_repeat_and_separates_signal_from_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    targets = torch.arange(60) % 2
    signal = Features(torch.randn(60, 8, generator=generator) + 3.0 * targets[:, None], targets)
    noise = Features(torch.randn(60, 8, generator=generator), targets)
    options = dict(epochs=20, lr=0.05, min_steps=40)
    separable = cross_validate_head(signal, 2, folds=5, repeats=2, seed=0, **options)
    assert separable.images == 60 and len(separable.fold_accuracies) == 10 and len(separable.repeat_accuracies) == 2
    assert separable.mean >= 0.95
    chance = cross_validate_head(noise, 2, folds=5, repeats=2, seed=0, **options)
    assert chance.mean < 0.75  # labels unrelated to the features: held-out accuracy stays near 0.5
    seen = []
    def spy(train: Features, test: Features) -> tuple[Features, Features]:
        seen.append(len(test))
        return train, test
    cross_validate_head(signal, 2, folds=3, repeats=1, seed=0, prepare=spy, **options)
    assert seen == [20, 20, 20]  # each image held out exactly once
    assert len(pooled(signal, noise)) == 120
