"""Lesson 13: detector anatomy on meta, the digit-canvas segmentation task, pretrained vs random backbones.

Also tests tlcourse.transfer.dense, tlcourse.transfer.detection and tlcourse.measure.segmentation directly.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from conftest import LessonRunner

from tlcourse.measure.segmentation import segmentation_scores
from tlcourse.models.efficientnet import efficientnet_lite
from tlcourse.models.resnet import resnet50, resnet_small
from tlcourse.transfer import freeze
from tlcourse.transfer.dense import make_canvases, predict_masks, resnet_segmenter, train_segmenter
from tlcourse.transfer.detection import build_detectors, detector_parts, lite_fpn, part_costs, resnet_fpn
from tlcourse.transfer.scenarios import digit_tensors

LESSON = "13_beyond_classification"
RESNET50_FC = 2048 * 1000 + 1000  # what a ResNet-50 detector drops of the classifier


def test_smoke_run_splits_the_detectors_and_measures_the_arms(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["dataset"] == "mnist5k" and r["smoke"] is True
    detectors = r["detectors"]
    assert set(detectors) == {"Faster R-CNN", "Mask R-CNN", "RetinaNet", "SSDlite"}
    for name, d in detectors.items():
        parts = d["parts"]
        # the split covers every parameter exactly once
        assert sum(p["parameters"] for p in parts.values()) == d["total_parameters"], name
        assert d["backbone_parameters"] + d["neck_parameters"] + d["head_parameters"] == d["total_parameters"]
        assert all(p["flops"] > 0 for p in parts.values()), name
        assert 0 < d["backbone_flop_share"] < 1 and d["dropped_from_classifier"] > 0
    assert set(detectors["Mask R-CNN"]["parts"]) == {"backbone", "neck", "rpn", "box head", "mask head"}
    assert set(detectors["RetinaNet"]["parts"]) == {"backbone", "neck", "head"}
    # ResNet-50 keeps everything but fc; the two R-CNNs share backbone and neck, Mask R-CNN adds a mask head
    for name in ("Faster R-CNN", "Mask R-CNN"):
        assert detectors[name]["dropped_from_classifier"] == RESNET50_FC
    assert detectors["Mask R-CNN"]["total_parameters"] - detectors["Faster R-CNN"]["total_parameters"] == (
        detectors["Mask R-CNN"]["parts"]["mask head"]["parameters"]
    )
    # backbone shares as measured (0.56, 0.53, 0.23, 0.47): the pretrained part is at most about half
    shares = {n: d["backbone_share"] for n, d in detectors.items()}
    assert 0.50 < shares["Faster R-CNN"] < 0.60 and 0.48 < shares["Mask R-CNN"] < shares["Faster R-CNN"]
    assert 0.18 < shares["RetinaNet"] < 0.30 and 0.40 < shares["SSDlite"] < 0.55
    assert r["regions"] == {"box head": 1000, "mask head": 100}
    assert r["full_forward_on_meta"] != "ran"  # the data-dependent steps cannot run on meta
    assert 105e6 < r["bert_base_parameters"]["total"] < 115e6  # "110M" in Devlin et al. 2018

    # the dense task: the all-background baseline, then the arms
    base = r["all_background"]
    assert base["pixel_accuracy"] == pytest.approx(r["background_fraction"])
    assert base["mean_iou"] == pytest.approx(r["background_fraction"] / 11)
    assert 0.85 < r["background_fraction"] < 0.99
    assert r["pretrain_acc"] > 0.8  # 10 classes; measured 0.86-0.89 after one epoch
    arms = r["arms"]
    assert set(arms) == {"pretrained, frozen", "random, frozen", "pretrained, fine-tuned", "random, fine-tuned"}
    assert all(len(a["runs"]) == r["seeds"] for a in arms.values())
    assert arms["pretrained, frozen"]["trainable"] == arms["random, frozen"]["trainable"]
    assert arms["pretrained, frozen"]["trainable"] < arms["pretrained, fine-tuned"]["trainable"]
    assert arms["pretrained, frozen"]["trainable"] == r["segmenter_parameters"]["neck"] + r["segmenter_parameters"]["head"]
    # smoke mode, measured over master seeds 0-2: the best arm 0.14-0.16 against 0.086 for all background;
    # pretrained arms beat random ones by 0.029-0.044 on average (frozen and fine-tuned pooled)
    assert arms[r["best_arm"]]["mean_iou"] > base["mean_iou"] + 0.03
    for arm in ("pretrained, frozen", "pretrained, fine-tuned"):
        assert arms[arm]["mean_iou"] > base["mean_iou"] + 0.02, arm
    pretrained = (arms["pretrained, frozen"]["mean_iou"] + arms["pretrained, fine-tuned"]["mean_iou"]) / 2
    random = (arms["random, frozen"]["mean_iou"] + arms["random, fine-tuned"]["mean_iou"]) / 2
    assert pretrained > random + 0.015, (pretrained, random)
    # the summary's claim holds for each pair on its own: frozen and fine-tuned (smoke: +0.011..+0.035, +0.023..+0.053)
    assert r["gain_frozen"] > 0 and r["gain_fine_tuned"] > 0, (r["gain_frozen"], r["gain_fine_tuned"])
    # "the background class scores well for every arm" (smoke: arm means 0.92-0.97; full mode above 0.99)
    for arm, a in arms.items():
        assert sum(run["iou"][0] for run in a["runs"]) / len(a["runs"]) > 0.8, arm


# ---------------------------------------------------------------- tlcourse.transfer.dense


def _toy_digits(n: int = 6, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.arange(n) % 10


def test_single_digit_canvases_hold_the_digit_and_its_mask() -> None:
    digits, labels = _toy_digits()
    canvases = make_canvases(digits, labels, 20, size=16, digits_per_canvas=(1, 1), threshold=0.5, seed=3)
    assert canvases.images.shape == (20, 1, 16, 16) and canvases.masks.shape == (20, 16, 16)
    assert (canvases.sources[:, 0] >= 0).all()
    for i in range(20):
        k = int(canvases.sources[i, 0])
        row, col = canvases.positions[i, 0].tolist()
        window = canvases.images[i, 0, row : row + 8, col : col + 8]
        assert torch.equal(window, digits[k, 0])
        expected = torch.zeros(16, 16, dtype=torch.long)
        expected[row : row + 8, col : col + 8][digits[k, 0] > 0.5] = 1 + int(labels[k])
        assert torch.equal(canvases.masks[i], expected)
        outside = canvases.images[i, 0].clone()
        outside[row : row + 8, col : col + 8] = 0
        assert outside.abs().sum() == 0  # nothing else was pasted


def test_multi_digit_canvases_label_exactly_the_bright_pixels_with_a_pasted_digit() -> None:
    digits, labels = _toy_digits(10)
    canvases = make_canvases(digits, labels, 30, size=20, digits_per_canvas=(1, 3), threshold=0.6, seed=1)
    assert torch.equal(canvases.images[:, 0] > 0.6, canvases.masks > 0)  # the canvas keeps the brighter pixel
    counts = (canvases.sources >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 3 and len(set(counts.tolist())) > 1
    for i in range(30):
        pasted = [k for k in canvases.sources[i].tolist() if k >= 0]
        assert len(set(pasted)) == len(pasted)  # no digit twice on one canvas
        present = set(canvases.masks[i].unique().tolist()) - {0}
        assert present <= {1 + int(labels[k]) for k in pasted}
    assert canvases.num_classes == 11 and 0 < canvases.background_fraction() < 1


def test_canvases_are_seeded_and_arguments_checked() -> None:
    digits, labels = _toy_digits()
    a = make_canvases(digits, labels, 5, size=16, seed=7)
    b = make_canvases(digits, labels, 5, size=16, seed=7)
    c = make_canvases(digits, labels, 5, size=16, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and torch.equal(a.sources, b.sources)
    assert not torch.equal(a.images, c.images)
    with pytest.raises(ValueError):
        make_canvases(digits, labels, 2, size=4)  # 8x8 digits do not fit
    with pytest.raises(ValueError):
        make_canvases(digits[:, 0], labels, 2)  # no channel dimension
    with pytest.raises(ValueError):
        make_canvases(digits, labels, 2, size=16, digits_per_canvas=(2, 1))


def test_train_and_test_canvases_share_no_digit(shared_data_root) -> None:
    digits = digit_tensors("tensor")
    train = make_canvases(*digits["train"], 200, seed=0)
    test = make_canvases(*digits["test"], 200, seed=1000)

    def used(canvases, images):
        return {images[k].numpy().tobytes() for k in canvases.sources.flatten().tolist() if k >= 0}

    train_used, test_used = used(train, digits["train"][0]), used(test, digits["test"][0])
    assert len(train_used) > 100 and len(test_used) > 100
    assert not train_used & test_used


def test_segmenter_shapes_and_shared_backbone() -> None:
    backbone = resnet_small(8, in_channels=1, num_classes=10)
    model = resnet_segmenter(backbone, num_classes=11, channels=16)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 11, 64, 64)
    assert model(torch.zeros(1, 1, 40, 48)).shape == (1, 11, 40, 48)
    features = model.body(torch.zeros(1, 1, 64, 64))
    assert [tuple(f.shape) for f in features.values()] == [(1, 16, 64, 64), (1, 32, 32, 32), (1, 64, 16, 16)]
    assert model.body.conv1.weight is backbone.conv1.weight  # the backbone's weights, not a copy
    assert not any(name.startswith("body.fc") for name, _ in model.named_parameters())  # fc dropped
    # with an ImageNet stem (stride 4 at layer1) the logits are upsampled to the input
    assert resnet_segmenter(resnet50(num_classes=10))(torch.zeros(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_train_segmenter_leaves_a_frozen_body_alone() -> None:
    digits, labels = _toy_digits(10, size=12)
    canvases = make_canvases(digits, labels, 16, size=24, seed=0)
    torch.manual_seed(0)
    model = resnet_segmenter(resnet_small(8, in_channels=1, num_classes=10), channels=8)
    freeze(model, names="body")
    body = copy.deepcopy(model.body.state_dict())
    head = copy.deepcopy(model.head.state_dict())
    history = train_segmenter(model, canvases.images, canvases.masks, epochs=1, lr=1e-2, batch_size=8,
                              foreground_weight=3.0, device="cpu")  # fmt: skip
    assert len(history.records) == 1
    assert all(torch.equal(v, model.body.state_dict()[k]) for k, v in body.items())  # weights and BN statistics
    assert not torch.equal(head["3.weight"], model.head.state_dict()["3.weight"])
    predicted = predict_masks(model, canvases.images, batch_size=5, device="cpu")
    assert predicted.shape == (16, 24, 24) and predicted.dtype == torch.long and model.training


def test_segmentation_scores_by_hand() -> None:
    target = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 0]])
    predicted = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 0]])
    scores = segmentation_scores(predicted, target, 4)
    # class 0: 3 right of 5 in the union; class 1: 2 of 3; class 2: 1 of 2; class 3 absent (NaN, not averaged)
    assert scores.iou[:3] == pytest.approx([3 / 5, 2 / 3, 1 / 2])
    assert scores.mean_iou == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(6 / 8)
    assert segmentation_scores(target, target, 3).mean_iou == 1.0


# ---------------------------------------------------------------- tlcourse.transfer.detection


def test_detectors_on_meta_split_into_parts_that_cover_them() -> None:
    detectors = build_detectors()
    for name, d in detectors.items():
        assert next(d.model.parameters()).device.type == "meta", name
        parts = detector_parts(d.model)
        assert sum(sum(p.numel() for p in m.parameters()) for m in parts.values()) == sum(
            p.numel() for p in d.model.parameters()
        ), name
    # the course ResNet-50 + FPN is torchvision's own Faster R-CNN, parameter for parameter
    with torch.device("meta"):
        reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    assert sum(p.numel() for p in reference.parameters()) == sum(p.numel() for p in detectors["Faster R-CNN"].model.parameters())
    with pytest.raises(TypeError):
        detector_parts(resnet50())


def test_pyramids_read_strides_8_16_32_and_part_costs_trace_them() -> None:
    with torch.device("meta"):
        fpn = resnet_fpn(resnet50())
        lite = lite_fpn(efficientnet_lite("lite0"))
    pyramid = fpn(torch.zeros(1, 3, 256, 256, device="meta"))
    assert [256 // t.shape[-1] for t in pyramid.values()] == [4, 8, 16, 32, 64]
    assert all(t.shape[1] == 256 for t in pyramid.values())
    levels = lite(torch.zeros(1, 3, 256, 256, device="meta"))
    assert [256 // t.shape[-1] for t in levels.values()] == [8, 16, 32, 64, 128]  # P3-P7, as in RetinaNet
    with pytest.raises(KeyError, match="stage3"):
        lite_fpn(efficientnet_lite("lite0"), stages=("stage9",))
    retina = build_detectors()["RetinaNet"].model
    costs = {c.part: c for c in part_costs(retina, 256)}
    assert [256 // s[-1] for s in costs["backbone"].output_shapes.values()] == [8, 16, 32]
    assert costs["backbone"].flops < part_costs(retina, 512)[0].flops  # FLOPs grow with the image
