"""Lesson 07: a frozen pretrained Lite0 as a feature extractor for ants vs bees, features cached once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, LessonRunner

from tlcourse.course.lessons import list_lessons, run_lesson

LESSON = "07_feature_extraction"
LESSONS = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}


def test_smoke_run_records_what_it_measured(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["dataset"] == "hymenoptera" and r["backbone"] == "efficientnet_lite0"
    assert r["smoke"] is True and r["feature_dim"] == 1280
    assert r["train_images"] == 30 and r["val_images"] == 20  # 15 / 10 per class in smoke mode
    # only the new 1280 x 2 head trains
    assert r["trainable_parameters"] == 1280 * 2 + 2
    assert r["total_parameters"] == 4_652_008 - 1_281_000 + r["trainable_parameters"]
    # the head trained on cached features gives the full network's logits when put back into it
    assert r["end_to_end_agreement"] == 1.0 and r["end_to_end_max_logit_diff"] < 1e-3
    # pretrained features work even from 15 images per class; chance is 0.5
    assert r["head_val_acc"] >= 0.8
    assert r["head_val_acc"] > r["scratch_val_acc"]
    assert r["pretrained_knn5_acc"] > r["random_knn5_acc"]
    # the cache: training the head on cached features costs far less than computing them
    assert r["head_seconds"] < r["extract_seconds"]
    assert r["cache_reread_seconds"] < r["extract_seconds"] / 10
    curve = r["label_efficiency"]
    assert [c["per_class"] for c in curve] == [1, 2, 5, 10, "all"]
    assert [c["train_images"] for c in curve] == [2, 4, 10, 20, 30]
    assert all(0.0 <= c["mean_acc"] <= 1.0 for c in curve)


@pytest.mark.slow
def test_full_mode_reaches_93_percent_within_three_minutes(tmp_path: Path) -> None:
    run = run_lesson(LESSONS[LESSON], tmp_path, smoke=False, device="cpu")
    assert run.ok, f"{run.error} (see {run.output_notebook})"
    r = run.results
    assert r["train_images"] == 244 and r["val_images"] == 153
    assert r["head_val_acc"] >= 0.93, r["head_val_acc"]
    assert r["end_to_end_agreement"] == 1.0
    assert r["scratch_val_acc"] < r["head_val_acc"] - 0.1  # the weights, not the architecture
    assert r["pretrained_knn5_acc"] > r["random_knn5_acc"] + 0.1
    curve = {c["per_class"]: c["mean_acc"] for c in r["label_efficiency"]}
    assert curve["all"] > curve[1]  # more labels help
    assert curve[10] >= 0.85  # ten labelled photos per class already do most of the work
    assert run.seconds < 180, f"full lesson took {run.seconds} s"
