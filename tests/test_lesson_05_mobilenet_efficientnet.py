"""Lesson 05: depthwise separable cost, MobileNet v1's multipliers, MBConv and MobileNet v3's block, compound
scaling (Lite0-2 and B0-B7), EfficientNet-Lite0 with real weights, Lite0-2 as frozen features on ants vs bees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import REPO, LessonRunner
from torch import nn

from tlcourse import data
from tlcourse.course.lessons import list_lessons, run_lesson
from tlcourse.data.imagenet import class_index, class_names
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.models.efficientnet import (
    EFFICIENTNET_B_VARIANTS,
    EFFICIENTNET_LITE_VARIANTS,
    efficientnet_b,
    efficientnet_lite,
    efficientnet_lite0,
    lite_transform,
    load_reference_state_dict,
)
from tlcourse.models.mobilenet import (
    ConvBNAct,
    DepthwiseSeparableConv,
    MBConv,
    MobileNetV3Block,
    SamePad2d,
)
from tlcourse.models.mobilenet_v1 import mobilenet_v1
from tlcourse.models.weights import packaged_weights
from tlcourse.transfer.backbones import load_backbone

LESSON = "05_mobilenet_efficientnet"
LESSONS = {lesson.id: lesson for lesson in list_lessons(REPO / "notebooks")}
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


@pytest.mark.parametrize(("alpha", "size", "mult_adds_m", "parameters_m"), [
    (1.0, 224, 569, 4.2), (0.75, 224, 325, 2.6), (0.5, 224, 149, 1.3), (0.25, 224, 41, 0.5),
    (1.0, 192, 418, 4.2), (1.0, 160, 290, 4.2), (1.0, 128, 186, 4.2),
])
def test_mobilenet_v1_matches_the_papers_tables_6_and_7(alpha: float, size: int, mult_adds_m: int, parameters_m: float) -> None:
    """Howard et al. 2017: million mult-adds and parameters of each width and resolution multiplier."""
    with torch.device("meta"):
        model = mobilenet_v1(alpha)
        mult_adds = count_flops(model, (1, 3, size, size)) / 2
    assert mult_adds / 1e6 == pytest.approx(mult_adds_m, abs=1.0)
    assert count_parameters(model) / 1e6 == pytest.approx(parameters_m, abs=0.05)


def test_mobilenet_v1_runs_and_its_cost_scales_with_alpha_and_rho_squared() -> None:
    small = mobilenet_v1(0.25, num_classes=5)
    assert small(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    with torch.device("meta"):
        full, half = mobilenet_v1(1.0), mobilenet_v1(0.5)
        at = lambda m, size: count_flops(m, (1, 3, size, size))
        assert at(full, 128) / at(full, 256) == pytest.approx(0.25, rel=0.01)  # rho halved: a quarter of the cost
        assert 0.25 < at(half, 224) / at(full, 224) < 0.28  # alpha = 1/2: about a quarter (the 3-channel input stays)


def test_mobilenet_v3_block_equals_torchvisions_layers() -> None:
    """Same parameters and FLOPs as torchvision's mobilenet_v3_large blocks (h-swish + SE, and ReLU + SE)."""
    with torch.device("meta"):
        reference = torchvision.models.mobilenet_v3_large(weights=None).features
        for index, block, shape in [
            (12, MobileNetV3Block(112, 672, 112, 3, 1, use_se=True, activation=nn.Hardswish), (1, 112, 14, 14)),
            (4, MobileNetV3Block(24, 72, 40, 5, 2, use_se=True, activation=nn.ReLU), (1, 24, 56, 56)),
            (7, MobileNetV3Block(40, 240, 80, 3, 2, use_se=False, activation=nn.Hardswish), (1, 40, 28, 28)),
        ]:
            assert count_parameters(block) == count_parameters(reference[index]), index
            assert count_flops(block, shape) == count_flops(reference[index], shape), index
    block = MobileNetV3Block(112, 672, 112).eval()
    assert block.use_skip and isinstance(block.depthwise.act, nn.Hardswish)
    assert block.se is not None and block.se.fc1.out_channels == 168 and isinstance(block.se.scale_activation, nn.Hardsigmoid)
    assert block(torch.randn(1, 112, 7, 7)).shape == (1, 112, 7, 7)
    no_expand = MobileNetV3Block(16, 16, 16, use_se=False, activation=nn.ReLU)
    assert no_expand.expand is None and no_expand.se is None


@pytest.mark.parametrize("variant", sorted(EFFICIENTNET_B_VARIANTS))
def test_efficientnet_b_equals_torchvision_in_parameters_and_flops(variant: str) -> None:
    size = EFFICIENTNET_B_VARIANTS[variant].resolution
    with torch.device("meta"):
        ours = efficientnet_b(variant)
        reference = getattr(torchvision.models, f"efficientnet_{variant}")(weights=None)
        assert count_parameters(ours) == count_parameters(reference)
        assert count_flops(ours, (1, 3, size, size)) == count_flops(reference, (1, 3, size, size))
    with pytest.raises(ValueError, match="b0"):
        efficientnet_b("b8")


def test_efficientnet_b0_runs() -> None:
    model = efficientnet_b("b0", num_classes=3).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert all(block.se is not None for block in model.blocks())
    assert isinstance(model.features.stem.act, nn.SiLU)


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


@pytest.mark.long  # about 2 minutes on a 2-core CPU: run with `pytest -m long`
def test_full_mode_lite0_to_lite2_transfer(tmp_path: Path) -> None:
    run = run_lesson(LESSONS[LESSON], tmp_path, smoke=False, device="cpu")
    assert run.ok, f"{run.error} (see {run.output_notebook})"
    r = run.results
    assert r["val_images"] == 153 and r["head_seeds"] == 5
    transfer = r["transfer"]
    assert all(t["train_images"] == 244 and t["val_images"] == 153 for t in transfer)
    # measured (seed 0): Lite0 0.944, Lite1 0.965, Lite2 0.961, heads' std <= 0.003; Lite2 - Lite0 +0.017 in [0.000, 0.039]
    assert all(t["mean_acc"] >= 0.92 and t["std_acc"] < 0.02 for t in transfer)
    low, high = r["transfer_gain_ci95"]
    assert -0.03 < low <= r["transfer_gain_lite2_minus_lite0"] <= high < 0.08
    assert r["lesson_seconds"] < 360


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
    # MobileNet v1's multipliers: cost ~ alpha^2 rho^2, parameters ~ alpha^2 and independent of rho
    slopes = results["mobilenet_v1_slopes"]
    assert 1.8 < slopes["mult_adds_alpha"] < 2.0  # 1.89 measured: the 3-channel input layer does not shrink
    assert slopes["mult_adds_rho"] == pytest.approx(2.0, abs=0.03)
    assert slopes["conv_parameters_alpha"] == pytest.approx(2.0, abs=0.06)
    assert not results["mobilenet_v1_parameters_vary_with_rho"]
    rows = [r for r in results["mobilenet_v1_multipliers"] if r["paper_mult_adds_m"] is not None]
    assert len(rows) == 7
    for r in rows:
        assert r["mult_adds"] / 1e6 == pytest.approx(r["paper_mult_adds_m"], abs=1.0)
    # MobileNet v3's block: our counts equal torchvision's; SE adds parameters but under 1% of the FLOPs
    v3 = results["mobilenet_v3_block"]
    ours, tv = v3["MobileNetV3Block (h-swish, SE)"], v3["torchvision mobilenet_v3_large.features[12]"]
    assert ours == tv
    plain = v3["the same without SE"]
    assert ours["parameters"] > 2 * plain["parameters"] and ours["flops"] < 1.01 * plain["flops"]
    assert 0.1 < results["hswish_max_gap_to_swish"] < 0.2
    # B0-B7: counted costs within 5% of Tan & Le's table 2, growing with every variant
    b = results["efficientnet_b"]
    assert [r["resolution"] for r in b] == [224, 240, 260, 300, 380, 456, 528, 600]
    for r in b:
        assert r["parameters"] / 1e6 == pytest.approx(r["paper_parameters_m"], rel=0.05)
        assert r["mult_adds"] / 1e9 == pytest.approx(r["paper_mult_adds_b"], rel=0.05)
    assert all(1.3 < r["cost_step"] < 2.5 for r in b[1:])
    assert results["compound_rule_base"] == pytest.approx(1.92, abs=0.01)
    # transfer: three pretrained backbones, several heads each, all far above the majority class
    transfer = results["transfer"]
    assert [r["variant"] for r in transfer] == ["lite0", "lite1", "lite2"]
    assert transfer[0]["flops"] < transfer[1]["flops"] < transfer[2]["flops"]
    for r in transfer:
        assert r["train_images"] == 20 and r["val_images"] == 30 and len(r["val_accs"]) == results["head_seeds"] == 3
        assert r["mean_acc"] >= 0.8  # measured in smoke mode: 0.90-0.97 (majority class 0.5)
    low, high = results["transfer_gain_ci95"]
    assert low <= results["transfer_gain_lite2_minus_lite0"] <= high
