"""Lesson 02 (AlexNet and VGG): receptive fields, ReLU vs sigmoid, full-size counts, the timeline."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import LessonRunner
from torch import nn

from tlcourse import data
from tlcourse.core.device import seed_everything
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.measure.receptive_field import conv_layers, empirical_receptive_field, receptive_field
from tlcourse.measure.timeline import ARCHITECTURES, architecture_timeline, format_timeline
from tlcourse.models.alexnet_vgg import VGG, AlexNet, ConvStack, small_alexnet, small_vgg
from tlcourse.training import fit


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_receptive_field_of_n_stacked_3x3_convolutions_is_2n_plus_1(n: int) -> None:
    assert receptive_field([3] * n) == 2 * n + 1
    assert empirical_receptive_field(ConvStack(4, n), (4, 2 * n + 9, 2 * n + 9)) == 2 * n + 1


def test_receptive_field_with_strides_and_of_real_networks() -> None:
    assert receptive_field([(11, 4), (3, 2)]) == 19
    with torch.device("meta"):
        alexnet, vgg16 = AlexNet("imagenet"), VGG("vgg16")
    assert receptive_field(conv_layers(alexnet.features)) == 195  # after the last pool
    assert receptive_field(conv_layers(vgg16.features)[:-1]) == 196  # conv5_3


@pytest.mark.parametrize("channels", [8, 64])
def test_three_3x3_convolutions_cost_27_c2_against_49_c2_for_one_7x7(channels: int) -> None:
    stack = count_parameters(ConvStack(channels, 3, kernel_size=3, bias=False))
    single = count_parameters(nn.Conv2d(channels, channels, 7, bias=False))
    assert stack == 27 * channels**2
    assert single == 49 * channels**2
    assert stack < single
    assert count_parameters(ConvStack(channels, 2, bias=False)) < count_parameters(nn.Conv2d(channels, channels, 5, bias=False))


def test_full_size_alexnet_and_vgg16_match_torchvision() -> None:
    with torch.device("meta"):
        ours_alexnet, ours_vgg16 = AlexNet("imagenet"), VGG("vgg16")
        tv_alexnet, tv_vgg16 = torchvision.models.alexnet(weights=None), torchvision.models.vgg16(weights=None)
    assert count_parameters(tv_alexnet) == count_parameters(ours_alexnet) == 61_100_840
    assert count_parameters(tv_vgg16) == count_parameters(ours_vgg16) == 138_357_544
    assert count_flops(ours_alexnet, (1, 3, 224, 224)) == count_flops(tv_alexnet, (1, 3, 224, 224))
    assert count_flops(ours_vgg16, (1, 3, 224, 224)) == count_flops(tv_vgg16, (1, 3, 224, 224))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_models_take_32x32_images(in_channels: int) -> None:
    x = torch.randn(2, in_channels, 32, 32)
    for model in (small_alexnet(10, in_channels), small_vgg("vgg11", 10, in_channels, batch_norm=True)):
        assert model(x).shape == (2, 10)
    with pytest.raises(ValueError):
        small_alexnet(activation="swish")  # type: ignore[arg-type]


def test_relu_reaches_the_target_loss_in_fewer_epochs_than_sigmoid() -> None:
    """The lesson's experiment, direct and seeded: same network and seed, only the activation differs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        digits = data.load("digits", transform="normalize", batch_size=32, seed=0)
        losses = {}
        for activation in ("relu", "sigmoid"):
            seed_everything(0)
            net = VGG((16, 16, "M", 32, 32, "M"), 10, 1, hidden=64, pool_size=2, dropout=0.0, activation=activation)
            history = fit(net, digits.train_loader, epochs=4, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                          device="cpu", progress=False)
            losses[activation] = list(history["train_loss"])
    finally:
        torch.set_num_threads(threads)
    first = {a: next((e for e, loss in enumerate(ls, 1) if loss < 1.0), 99) for a, ls in losses.items()}
    assert first["relu"] <= 4, losses
    assert first["relu"] < first["sigmoid"], losses
    assert losses["sigmoid"][-1] > 2.0, losses  # the sigmoid network is still near the uniform guess, ln 10


def test_timeline_counts_equal_torchvision_and_flops_are_plausible() -> None:
    rows = {row.name: row for row in architecture_timeline()}
    assert list(rows) == [a.name for a in ARCHITECTURES]
    for arch in ARCHITECTURES:
        row = rows[arch.name]
        if arch.weights is None:
            continue
        meta = torchvision.models.get_weight(arch.weights).meta
        assert row.parameters == meta["num_params"], arch.name
        # torchvision's _ops are GFLOPs counting a multiply-add once; ours count it twice
        assert row.flops == pytest.approx(2e9 * meta["_ops"], rel=0.02), arch.name
        assert row.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"]
    with torch.device("meta"):
        assert rows["ResNet-18"].parameters == count_parameters(torchvision.models.resnet18()) == 11_689_512
    assert 8.0e9 < rows["ResNet-50"].flops < 8.4e9
    assert 1.3e9 < rows["AlexNet"].flops < 1.5e9
    assert 30e9 < rows["VGG-16"].flops < 32e9
    lenet = rows["LeNet-5"]
    assert (lenet.parameters, lenet.top1, lenet.input_shape) == (61_706, None, (1, 32, 32))
    depths = {name: row.depth for name, row in rows.items()}
    assert depths["LeNet-5"] == 5 and depths["AlexNet"] == 8 and depths["VGG-16"] == 16
    assert depths["GoogLeNet (Inception v1)"] == 22 and depths["ResNet-18"] == 18 and depths["ResNet-50"] == 50
    years = [row.year for row in rows.values()]
    assert years == sorted(years)
    table = format_timeline(list(rows.values()))
    assert table.count("\n") == len(rows) + 1 and "ViT-B/16" in table and "81.1%" in table


def test_lesson_02_smoke_results(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("02_alexnet_vgg")
    runs = results["activation_runs"]
    relu, sigmoid = runs["relu"]["epochs_to_target"], runs["sigmoid"]["epochs_to_target"]
    assert relu is not None and (sigmoid is None or relu < sigmoid), runs
    assert [r["field"] for r in results["receptive_fields"]] == [3, 5, 7, 9]
    assert [r["measured"] for r in results["receptive_fields"]] == [3, 5, 7, 9]
    three = results["receptive_fields"][2]
    assert three["stack_params"] * 49 == three["single_params"] * 27
    assert results["full_size"]["alexnet"]["parameters"] == 61_100_840
    assert results["full_size"]["vgg16"]["parameters"] == 138_357_544
    chance = 1 / results["num_classes"]
    for name, model in results["small_models"].items():
        assert model["test_acc"] > 2 * chance, (name, model)  # about 0.3-0.5 after 3 epochs on 400 images
        assert model["parameters"] > 0 and model["flops"] > 0
    assert len(results["timeline"]) == 9
    assert results["timeline_seconds"] < 20
