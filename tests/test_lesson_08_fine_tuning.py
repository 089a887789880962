"""Lesson 08: fine-tuning Lite0 on ants vs bees, and the learning-rate range test of tlcourse.training.lr_finder."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, LessonRunner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.course.lessons import list_lessons, run_lesson
from tlcourse.measure.seeds import SeedComparison, adopt
from tlcourse.training.lr_finder import LRFinderResult, lr_range_test, suggest_lr
from tlcourse.transfer import stage_lrs

LESSON = "08_fine_tuning"
LESSONS = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}
LITE0_2_CLASSES = 4_652_008 - 1_281_000 + 1280 * 2 + 2  # Lite0 with a two-class head
FIELDS = ("label", "seeds", "val_acc", "reference_val_acc", "val_loss", "reference_val_loss", "images")


# ---------------------------------------------------------------- the lesson, smoke mode


def test_smoke_run_records_every_experiment(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["dataset"] == "hymenoptera" and r["smoke"] is True and r["backbone"] == "efficientnet_lite0"
    assert r["train_images"] == 8 and r["val_images"] == 8  # 4 per class in smoke mode
    for name in ("baseline", "uniform_lr", "bn_updated", "augmentation"):
        run = r["runs"][name]
        assert len(run["history"]["records"]) == r["epochs"], name
        assert 0.0 <= run["val_acc"] <= 1.0 and math.isfinite(run["val_loss"]), name
    assert set(r["comparison"]["fine_tuning"]) == {
        "progressive unfreezing", "all at once, spread lrs", "all at once, one lr",
        "BN statistics updated", "augmentation", "final recipe (early stopping)",
    }  # fmt: skip
    best = r["comparison"]["best_fine_tuning_acc"]
    assert best == max(r["comparison"]["fine_tuning"].values())
    assert r["comparison"]["target_met"] == (best >= r["comparison"]["feature_extraction_acc"])
    # every accuracy of the table comes with its 95% interval for the validation photos (8 in smoke mode: wide)
    intervals = r["comparison"]["intervals"]
    assert len(intervals) == len(r["comparison"]["fine_tuning"]) + 2
    assert all(0.0 <= low < high <= 1.0 and high - low > 0.3 for low, high in intervals.values())
    assert str(r["fe_resolution"]) in r["feature_extraction"] and str(r["resolution"]) in r["feature_extraction"]


def test_close_comparisons_are_paired_over_seeds_and_decide_the_recipe(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    seeds, n_val = r["seeds"], r["val_images"]
    assert seeds == [r["seed"], r["seed"] + 1]  # smoke mode: two seeds (full mode: three)
    for name in ("baseline", "uniform_lr", "bn_updated", "augmentation"):
        assert [run["seed"] for run in r["seed_runs"][name]] == seeds, name
    for name, comparison in r["seed_comparisons"].items():
        runs, reference = r["seed_runs"][name], r["seed_runs"]["baseline"]
        assert comparison["seeds"] == seeds and comparison["images"] == n_val, name
        assert comparison["val_acc"] == [run["val_acc"] for run in runs], name
        assert comparison["reference_val_loss"] == [run["val_loss"] for run in reference], name
    # the recipe follows tlcourse.measure.seeds.adopt (unit-tested below on made-up gaps)
    bn, augmentation = (SeedComparison(**{k: c[k] for k in FIELDS}) for c in
                        (r["seed_comparisons"]["bn_updated"], r["seed_comparisons"]["augmentation"]))
    assert r["final"]["frozen_bn"] == (not adopt(bn)) and r["final"]["augmentation"] == adopt(augmentation)
    assert all(run["bn_stats_changed"] for run in r["seed_runs"]["bn_updated"])
    assert not any(run["bn_stats_changed"] for run in r["seed_runs"]["augmentation"])


def test_progressive_unfreezing_trains_more_at_each_phase(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    phases = r["progressive"]
    assert [p["phase"][:2] for p in phases] == ["1.", "2.", "3."]
    trainable = [p["trainable"] for p in phases]
    assert trainable[0] == 1280 * 2 + 2  # the head alone
    assert trainable[0] < trainable[1] < trainable[2] == LITE0_2_CLASSES
    assert r["stage_names"][r["top_from"]] == "features.stage6"
    n = len(r["stage_names"])
    # phase 2 optimises only the top stages, with the rates those stages get in the full spread
    spread = stage_lrs(n, r["lr"], spread=r["lr_spread"])
    assert phases[1]["lrs"] == pytest.approx(spread[r["top_from"] :])
    assert phases[2]["lrs"] == pytest.approx(spread)


def test_param_groups_carry_the_intended_learning_rates(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    lr, spread, names = r["lr"], r["lr_spread"], r["stage_names"]
    groups = r["layerwise_groups"]
    assert [name for name, _ in groups["spread"]] == names
    spread_lrs = [v for _, v in groups["spread"]]
    assert spread_lrs[-1] == pytest.approx(lr) and spread_lrs[0] == pytest.approx(lr / spread)
    ratios = [b / a for a, b in zip(spread_lrs, spread_lrs[1:])]
    assert ratios == pytest.approx([spread ** (1 / (len(names) - 1))] * len(ratios))  # geometric
    decay_lrs = [v for _, v in groups["decay"]]
    assert decay_lrs[-1] == pytest.approx(lr)
    assert [b / a for a, b in zip(decay_lrs, decay_lrs[1:])] == pytest.approx([2.0] * (len(names) - 1))
    assert [name for name, _ in groups["top_only"]] == names[r["top_from"] :]
    # the runs really used them
    assert r["runs"]["baseline"]["lrs"] == pytest.approx(spread_lrs)
    assert r["runs"]["uniform_lr"]["lrs"] == pytest.approx([lr] * len(names))
    assert r["final"]["lrs"] == pytest.approx(spread_lrs)


def test_batch_norm_statistics_frozen_or_updated(smoke_lesson: LessonRunner) -> None:
    runs = smoke_lesson.results(LESSON)["runs"]
    assert runs["baseline"]["bn_stats_changed"] is False  # frozen: the ImageNet running mean is untouched
    assert runs["augmentation"]["bn_stats_changed"] is False
    assert runs["bn_updated"]["bn_stats_changed"] is True


def test_early_stopping_restores_the_best_epoch(smoke_lesson: LessonRunner) -> None:
    f = smoke_lesson.results(LESSON)["final"]
    records = f["history"]["records"]
    assert 1 <= f["epochs_run"] == len(records) <= f["max_epochs"]
    losses = [rec["val_loss"] for rec in records]
    assert f["best_epoch"] == 1 + losses.index(min(losses))
    assert f["best_val_loss"] == pytest.approx(min(losses))
    # the weights evaluated after training are the best epoch's, not the last one's
    assert f["restored_val_loss"] == pytest.approx(f["best_val_loss"], abs=1e-4)
    assert f["restored_val_acc"] == pytest.approx(f["best_epoch_val_acc"])


def test_range_test_and_schedules(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    sweep = r["range_test"]
    lrs = sweep["lrs"]
    assert lrs[0] == pytest.approx(1e-6) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert len(lrs) == len(sweep["losses"]) == len(sweep["smoothed"]) >= 2
    assert lrs[0] <= sweep["suggestion"] <= lrs[-1] and sweep["suggestion"] <= sweep["min_loss_lr"]
    assert sweep["restored"] is True
    assert sweep["group_ratios"][-1] == 1.0 and sweep["group_ratios"][0] == pytest.approx(1 / r["lr_spread"])
    for name, schedule in r["schedules"].items():
        peak = max(schedule)
        assert schedule[0] < peak / 5, name  # warm-up: starts low
        assert peak == pytest.approx(r["lr"], rel=0.05), name
        assert schedule[-1] < peak / 5, name  # anneals


@pytest.mark.long  # about 3 minutes on a 2-core CPU: run with `pytest -m long`
def test_full_mode_fine_tuning_against_feature_extraction(tmp_path: Path) -> None:
    run = run_lesson(LESSONS[LESSON], tmp_path, smoke=False, device="cpu")
    assert run.ok, f"{run.error} (see {run.output_notebook})"
    r = run.results
    assert r["train_images"] == 244 and r["val_images"] == 153
    c = r["comparison"]
    assert c["feature_extraction_acc"] >= 0.92
    assert c["best_fine_tuning_acc"] >= 0.9  # fine-tuning keeps what the pretrained network knew
    # the lesson's claim: one rate for every stage loses to layer-wise rates on every seed, in accuracy and in loss
    # (measured at 112 px: -5, -15 and -5 of 153 images; loss 0.49/0.45/0.46 against 0.39/0.36/0.41)
    uniform = r["seed_comparisons"]["uniform_lr"]
    assert uniform["consistent"] and uniform["behind"] == 3 and uniform["mean_gap_images"] <= -3, uniform
    assert uniform["lower_loss"] <= 1, uniform  # the spread rates' loss is lower on at least two of three seeds
    assert r["final"]["restored_val_loss"] == pytest.approx(r["final"]["best_val_loss"], abs=1e-4)
    # the close comparisons ran on three seeds; the seeds give different runs (different orders of photos)
    assert r["seeds"] == [0, 1, 2]
    baselines = r["seed_runs"]["baseline"]
    assert len({run["val_loss"] for run in baselines}) == 3, baselines


# ---------------------------------------------------------------- tlcourse.measure.seeds, directly


def _comparison(gaps: list[int], images: int = 100) -> SeedComparison:
    reference = [0.8] * len(gaps)
    return SeedComparison("option", list(range(len(gaps))), [0.8 + g / images for g in gaps], reference,
                          [0.3 - g / 1000 for g in gaps], [0.3] * len(gaps), images)


@pytest.mark.parametrize(
    ("gaps", "consistent", "adopted", "words"),
    [
        ([2, 3, 1], True, True, "Option ahead on all 3 seeds, by 2.0 images on average. A coin flip would give "
                                 "the same sign on all 3 seeds 1 time in 4"),
        ([-1, -4, -2], True, False, "Reference ahead on all 3 seeds"),
        ([2, 0, 3], False, False, "Option ahead on 2 seeds, reference ahead on 0, tied on 1 (+1.7 images"),
        ([-1, 0, 0], False, False, "Option ahead on 0 seeds, reference ahead on 1, tied on 2"),
        ([-1, 1, 7], False, False, "Option ahead on 2 seeds, reference ahead on 1 (+2.3 images"),
        ([0, 0], False, False, "The two sides tied on all 2 seeds"),
        ([5], False, False, "One seed cannot say"),
    ],
)
def test_seed_comparison_counts_decides_and_says_it(gaps, consistent, adopted, words) -> None:
    c = _comparison(gaps)
    assert c.gap_images == gaps and c.mean_gap_images == pytest.approx(sum(gaps) / len(gaps))
    assert c.ahead == sum(g > 0 for g in gaps) and c.behind == sum(g < 0 for g in gaps)
    assert c.consistent is consistent and adopt(c) is adopted
    assert words in c.verdict("option ahead", "reference ahead")
    assert c.lower_loss == sum(g > 0 for g in gaps)  # made-up losses fall as the gap grows
    assert c.to_dict()["gap_images"] == gaps


def test_seed_comparison_refuses_unpaired_runs() -> None:
    runs = [{"seed": 0, "val_acc": 0.9, "val_loss": 0.2}, {"seed": 1, "val_acc": 0.8, "val_loss": 0.3}]
    with pytest.raises(ValueError, match="different seeds"):
        SeedComparison.from_runs("x", runs, runs[::-1], 10)
    with pytest.raises(ValueError, match="one value per seed"):
        SeedComparison("x", [0, 1], [0.9], [0.8], [0.2], [0.3], 10)
    assert SeedComparison.from_runs("x", runs, runs, 10).gap_images == [0, 0]


# ---------------------------------------------------------------- tlcourse.training.lr_finder, directly


def _problem(seed: int = 0) -> tuple[nn.Module, DataLoader]:
    torch.manual_seed(seed)
    x = torch.randn(256, 10)
    y = (x @ torch.randn(10, 3)).argmax(1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return model, loader


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_lr_range_test_restores_model_and_optimizer() -> None:
    model, loader = _problem()
    optimizer = torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 1e-4}, {"params": [*model[1].parameters(), *model[3].parameters()]}],
        lr=1e-3,
    )
    for x, y in list(loader)[:3]:  # some optimizer state (moments, step counts) to protect
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    model_before = copy.deepcopy(model.state_dict())
    optimizer_before = copy.deepcopy(optimizer.state_dict())
    result = lr_range_test(model, loader, optimizer=optimizer, start_lr=1e-5, end_lr=1.0, steps=30, device="cpu")
    assert isinstance(result, LRFinderResult) and len(result.lrs) >= 2
    assert _same(model.state_dict(), model_before)  # weights and batch-norm statistics
    assert _same(optimizer.state_dict(), optimizer_before)  # moments, steps and both groups' lrs
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    assert result.group_ratios == pytest.approx([0.1, 1.0])
    assert model.training is False


def test_lr_range_test_sweeps_exponentially_and_suggests_inside_the_sweep() -> None:
    model, loader = _problem(1)
    result = lr_range_test(model, loader, start_lr=1e-5, end_lr=1e-2, steps=25, device="cpu")
    assert len(result.lrs) == 25 and not result.stopped_early  # more steps than the loader has: it restarts
    assert result.lrs[0] == pytest.approx(1e-5) and result.lrs[-1] == pytest.approx(1e-2)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert ratios == pytest.approx([1000 ** (1 / 24)] * 24)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert result.losses[-1] < result.losses[0]  # the loss falls over this (stable) range


def test_lr_range_test_reads_losses_once_per_window_not_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    model, loader = _problem()
    reads = {"item": 0, "tolist": 0}
    item, tolist = torch.Tensor.item, torch.Tensor.tolist

    def counted(name, original):
        def wrapper(self, *args, **kwargs):  # count reads made by tlcourse (the sweep runs in fit), not by torch
            if "tlcourse" in sys._getframe(1).f_code.co_filename:
                reads[name] += 1
            return original(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(torch.Tensor, "item", counted("item", item))
    monkeypatch.setattr(torch.Tensor, "tolist", counted("tolist", tolist))
    result = lr_range_test(model, loader, start_lr=1e-5, end_lr=1e-2, steps=40, check_every=10, device="cpu")
    monkeypatch.undo()
    assert len(result.losses) == 40
    # 40 steps: one read per window of 10, and fit's one read of the epoch's sums
    assert reads["item"] == 0 and reads["tolist"] <= 5, reads


def test_lr_range_test_stops_when_the_loss_diverges() -> None:
    model, loader = _problem(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, loader, optimizer=optimizer, start_lr=1e-4, end_lr=1e4, steps=200, device="cpu")
    assert result.stopped_early and len(result.lrs) < 200
    assert result.lrs[0] <= result.suggestion <= result.min_loss_lr < result.lrs[-1]
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_suggest_lr_on_a_known_curve() -> None:
    lrs = [10 ** (-6 + 6 * i / 60) for i in range(61)]
    # a valley with its minimum at 1e-2, steepest descent below it
    smoothed = [(math.log10(lr) + 2) ** 2 if lr <= 1e-2 else 10 * (math.log10(lr) + 2) ** 2 for lr in lrs]
    suggestion, min_lr, steepest = suggest_lr(lrs, smoothed)
    assert min_lr == pytest.approx(1e-2) and suggestion == pytest.approx(1e-3)
    assert steepest < min_lr
    assert suggest_lr([1e-3, 1e-2], [0.5, 1.0])[0] == 1e-3  # never below the sweep
    with pytest.raises(ValueError):
        lr_range_test(nn.Linear(2, 2), [], start_lr=1.0, end_lr=0.1)
