"""Lesson 05: depthwise separable cost, MBConv, compound scaling, EfficientNet-Lite0 with real weights."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from conftest import LessonRunner
from torch import nn

from tlcourse import data
from tlcourse.data.imagenet import class_index, class_names
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.models.efficientnet import (
    EFFICIENTNET_LITE_VARIANTS,
    efficientnet_lite,
    efficientnet_lite0,
    lite_transform,
    load_reference_state_dict,
)
from tlcourse.models.mobilenet import ConvBNAct, DepthwiseSeparableConv, MBConv, SamePad2d
from tlcourse.models.weights import packaged_weights
from tlcourse.transfer.backbones import load_backbone

LESSON = "05_mobilenet_efficientnet"
ANT, BEE = 310, 309


@pytest.mark.parametrize(("c", "n", "k"), [(32, 64, 3), (128, 256, 3), (64, 64, 5), (16, 8, 7)])
def test_separable_flops_ratio_is_one_over_n_plus_one_over_k_squared(c: int, n: int, k: int) -> None:
    shape = (1, c, 20, 20)
    ratio = count_flops(DepthwiseSeparableConv(c, n, k), shape) / count_flops(ConvBNAct(c, n, k), shape)
    assert ratio == pytest.approx(1 / n + 1 / k**2, rel=0.05)
    # the weights shrink by the same factor
    sep = DepthwiseSeparableConv(c, n, k)
    std = ConvBNAct(c, n, k)
    conv_params = count_parameters(sep.depthwise.conv) + count_parameters(sep.pointwise.conv)
    assert conv_params / count_parameters(std.conv) == pytest.approx(1 / n + 1 / k**2, rel=1e-9)


def test_mbconv_shapes_and_skip() -> None:
    down = MBConv(16, 24, kernel_size=3, stride=2, expand_ratio=6)
    assert not down.use_skip and down.expand is not None and down.expand.conv.out_channels == 96
    assert down(torch.randn(2, 16, 112, 112)).shape == (2, 24, 56, 56)
    widen = MBConv(24, 40, kernel_size=5, stride=1)
    assert not widen.use_skip
    assert widen(torch.randn(1, 24, 28, 28)).shape == (1, 40, 28, 28)
    keep = MBConv(24, 24, kernel_size=5, stride=1, se_ratio=0.25).eval()
    assert keep.use_skip and keep.se is not None and keep.se.fc1.out_channels == 6
    x = torch.randn(1, 24, 28, 28)
    assert keep(x).shape == x.shape
    # the skip really adds the input: with the residual branch zeroed, the block is the identity
    nn.init.zeros_(keep.project.bn.weight)
    nn.init.zeros_(keep.project.bn.bias)
    assert torch.equal(keep(x), x)
    no_expand = MBConv(32, 16, expand_ratio=1)
    assert no_expand.expand is None and no_expand(torch.randn(1, 32, 8, 8)).shape == (1, 16, 8, 8)


def test_same_padding_matches_tensorflow_rule() -> None:
    # stride 2 on an even size: the extra row/column goes bottom/right only; on an odd size: symmetric
    x = torch.ones(1, 1, 6, 6)
    assert SamePad2d(3, 2)(x).shape == (1, 1, 7, 7)
    padded = SamePad2d(3, 2)(x)[0, 0]
    assert padded[0].sum() == 6 and padded[-1].sum() == 0  # top row kept, bottom row added
    assert SamePad2d(3, 2)(torch.ones(1, 1, 7, 7)).shape == (1, 1, 9, 9)
    assert SamePad2d(5, 2)(torch.ones(1, 1, 56, 56)).shape == (1, 1, 59, 59)


def test_imagenet_class_names() -> None:
    names = class_names()
    assert len(names) == 1000
    assert class_index("ant") == ANT and class_index("bee") == BEE
    assert names[ANT] == "ant" and names[BEE] == "bee"
    with pytest.raises(KeyError):
        class_index("antelope-bee")


def test_lite_variants_match_the_reference_architecture() -> None:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    expected = {"lite0": 4_652_008, "lite1": 5_416_680, "lite2": 6_092_072}
    for variant, count in expected.items():
        ours = efficientnet_lite(variant)
        reference = efficientnet.EfficientNet.from_name(f"efficientnet-{variant}")
        assert count_parameters(ours) == count_parameters(reference) == count
    # Lite2 at 260 px meets odd sizes (65, 33, 17) at stride-2 layers: padding must still agree
    ours, reference = efficientnet_lite("lite2").eval(), efficientnet.EfficientNet.from_name("efficientnet-lite2").eval()
    load_reference_state_dict(ours, reference.state_dict())
    x = torch.randn(1, 3, 260, 260)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=0)
    assert EFFICIENTNET_LITE_VARIANTS["lite2"].resolution == 260


def test_lite0_with_packaged_weights_reproduces_the_reference_logits() -> None:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    state_dict = torch.load(packaged_weights("efficientnet_lite0"), map_location="cpu", weights_only=True)
    reference = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(state_dict, strict=True)
    reference.eval()
    ours = efficientnet_lite0(pretrained=True).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.abs().max().item() > 1  # real logits, not a degenerate output
    # PyTorch's symmetric padding with the same weights does NOT reproduce them
    symmetric = efficientnet_lite0(pretrained=True, padding="symmetric").eval()
    with torch.no_grad():
        assert (symmetric(x) - expected).abs().max().item() > 0.1


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite1_and_lite2_with_packaged_weights_reproduce_the_reference_logits(variant: str) -> None:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    state_dict = torch.load(packaged_weights(f"efficientnet_{variant}"), map_location="cpu", weights_only=True)
    reference = efficientnet.EfficientNet.from_name(f"efficientnet-{variant}")
    reference.load_state_dict(state_dict, strict=True)
    reference.eval()
    ours = efficientnet_lite(variant, pretrained=True).eval()
    size = EFFICIENTNET_LITE_VARIANTS[variant].resolution
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.abs().max().item() > 1
    with pytest.raises(ValueError, match="lite0, lite1, lite2"):
        efficientnet_lite("lite3", pretrained=True)


def test_every_packaged_lite_backbone_loads_offline_with_its_own_resolution() -> None:
    for name, size in [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]:
        backbone = load_backbone(name, num_classes=2)
        assert backbone.feature_dim == 1280 and "pytorch-model" in backbone.source
        image = backbone.transform(torch.zeros(3, 300, 400, dtype=torch.uint8))
        assert tuple(image.shape) == (3, size, size)
        with torch.no_grad():
            assert tuple(backbone.model.eval()(image[None]).shape) == (1, 2)


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_pretrained_lite_sees_ants_and_bees_on_all_validation_images(shared_data_root: Path, variant: str) -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    size = EFFICIENTNET_LITE_VARIANTS[variant].resolution
    bundle = data.load("hymenoptera", shared_data_root, transform=lite_transform(size), eval_batch_size=32, download=False)
    assert len(bundle.val) == 153
    model = efficientnet_lite(variant, pretrained=True).eval()
    to_imagenet = torch.tensor([class_index(c.rstrip("s")) for c in bundle.classes])
    assert to_imagenet.tolist() == [ANT, BEE]
    start = time.perf_counter()
    hits = correct = 0
    with torch.no_grad():
        for images, targets in bundle.val_loader:
            top1 = model(images).argmax(1)
            hits += int(((top1 == ANT) | (top1 == BEE)).sum())
            correct += int((top1 == to_imagenet[targets]).sum())
    print(f"{variant}: 153 images in {time.perf_counter() - start:.1f} s: {hits} ant/bee, {correct} correct")
    assert hits / 153 >= 0.6  # measured (lite0): 0.85 (chance over 1,000 classes: 0.002)
    assert correct / 153 >= 0.6


def test_lesson_records_its_claims(smoke_lesson: LessonRunner) -> None:
    results = smoke_lesson.results(LESSON)
    assert results["dataset"] == "hymenoptera"
    assert results["val_images"] == 30  # 15 per class in smoke mode
    for row in results["separable"]:
        assert row["flops_ratio"] == pytest.approx(1 / row["N"] + 1 / row["k"] ** 2, rel=0.05)
    assert results["separable_max_ratio_error"] < 0.05
    # the largest layer (256 -> 256, 3x3, ~1.2 GFLOPs) is faster as a separable convolution even on a busy CPU
    largest = max(results["separable"], key=lambda r: r["flops_standard"])
    assert largest["latency_speedup"] > 1.0, largest
    assert results["lite0_parameters"] == 4_652_008
    assert 0.7e9 < results["lite0_flops"] < 0.85e9
    scaling = {row["variant"]: row for row in results["scaling"]}
    assert scaling["lite0"]["parameters"] < scaling["lite1"]["parameters"] < scaling["lite2"]["parameters"]
    assert scaling["lite0"]["flops"] < scaling["lite1"]["flops"] < scaling["lite2"]["flops"]
    assert [scaling[v]["resolution"] for v in ("lite0", "lite1", "lite2")] == [224, 240, 260]
    # rounding repeats up makes FLOPs grow faster than the d·w²·r² rule of thumb
    assert scaling["lite1"]["flops_factor"] > scaling["lite1"]["rule_flops_factor"]
    assert results["pretrained"]["top1_in_ant_or_bee"] >= 0.6
    assert results["pretrained"]["ant_vs_bee_acc"] >= 0.85
    assert results["random_init"]["top1_in_ant_or_bee"] < 0.05
    assert results["symmetric_padding"]["max_logit_difference"] > 0.1
