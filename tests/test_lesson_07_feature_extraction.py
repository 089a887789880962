"""Lesson 07: a frozen pretrained Lite0 as a feature extractor for ants vs bees, features cached once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, LessonRunner

from tlcourse.course.lessons import list_lessons, run_lesson

LESSON = "07_feature_extraction"
LESSONS = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}
FULL_SECONDS = 300  # full mode took 158 s on 2 cores (lesson 150 s of it), with the Grad-CAM and probe sections


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


STAGES = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
POOLED_DIMS = [32, 16, 24, 40, 80, 112, 192, 320, 1280]  # Lite0's channels after each stage


def test_smoke_grad_cam_shows_right_and_wrong_predictions_and_points_at_evidence(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["cam_layer"] == "features.head" and r["cam_map_size"] == [7, 7]
    wrong = min(2, r["val_wrong"])  # smoke mode shows 2 right per class and up to 2 wrong
    assert r["cam_wrong_shown"] == wrong and r["cam_images"] == 2 * 2 + wrong
    # at the last layer Grad-CAM is the class activation map computed from the head's weights
    assert r["cam_equals_class_activation_map_max_diff"] < 1e-5
    # the map of "ants" differs from the map of "bees" on the same photos
    assert r["cam_class_difference"] > 0.05
    p = r["cam_predicted_probability"]
    assert all(0.0 <= v <= 1.0 for v in p.values())
    # hiding the hottest quarter hurts the predicted class more than hiding the coldest quarter
    assert p["hottest quarter greyed"] < p["coldest quarter greyed"]
    assert 0 <= r["cam_hot_hurts_more"] <= r["cam_images"]


def _probe_table(r: dict, domain: str) -> list[dict]:
    rows = r["stage_probes"][domain]["stages"]
    assert [row["stage"] for row in rows] == STAGES and [row["dim"] for row in rows] == POOLED_DIMS
    return rows


def test_smoke_probes_every_stage_on_both_domains(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["probe_layers"] == [f"features.{s}" for s in STAGES]
    assert set(r["stage_probes"]) == {"ants vs bees", "digits (mnist5k)"}
    assert r["digit_images"] == 10 * (8 + 5)  # smoke mode: 8 training and 5 test digits per class
    for domain in r["stage_probes"]:
        rows = _probe_table(r, domain)
        assert all(len(row["accs"]) == 2 and all(0.0 <= a <= 1.0 for a in row["accs"]) for row in rows)  # 2 seeds
    photos, digits = _probe_table(r, "ants vs bees"), _probe_table(r, "digits (mnist5k)")
    assert r["stage_probes"]["digits (mnist5k)"]["chance"] == 0.1
    # the last stage reads ants vs bees well, far better than the stem does (chance 0.5)
    assert photos[-1]["mean_acc"] >= 0.8 and photos[-1]["mean_acc"] > photos[0]["mean_acc"] + 0.2
    # digits: some stage is far above chance (0.1), even from 6 labelled digits per class
    assert max(row["mean_acc"] for row in digits) >= 0.5


@pytest.mark.slow
def test_full_mode_reaches_93_percent_and_shows_generic_early_specific_late(tmp_path: Path) -> None:
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
    # Grad-CAM: hiding what it marks hurts more than hiding what it leaves cold, for most of the photos shown
    assert r["cam_images"] == 4 * 2 + min(4, r["val_wrong"])
    assert r["cam_hot_hurts_more"] > r["cam_images"] / 2
    # generic early, specific late: 3 seeds per stage; photos best read late, digits drop after a middle stage
    photos, digits = _probe_table(r, "ants vs bees"), _probe_table(r, "digits (mnist5k)")
    assert all(len(row["accs"]) == 3 for row in photos + digits)
    assert photos[-1]["mean_acc"] >= 0.88 and photos[-1]["mean_acc"] > photos[0]["mean_acc"] + 0.25
    best_digits = max(digits, key=lambda row: row["mean_acc"])
    assert best_digits["stage"] in STAGES[3:-1] and best_digits["mean_acc"] >= 0.8
    assert digits[-1]["mean_acc"] < best_digits["mean_acc"] - 0.05
    assert run.seconds < FULL_SECONDS, f"full lesson took {run.seconds} s"
