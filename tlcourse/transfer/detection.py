"""What a detector keeps of a classifier: torchvision detectors around the course's backbones, split into parts.

A detector (Faster R-CNN, Mask R-CNN, RetinaNet, SSDlite) is a classification network without its
classifier (the **backbone**, the part with pretrained weights), a **neck** that mixes its feature maps
across strides (a feature pyramid, or SSD's extra layers) and new **heads** (region proposals, boxes,
masks, or one dense head). Everything here builds on ``torch.device("meta")`` by default: shapes and
parameter counts without allocating a single weight.

* :class:`FeaturePyramidBackbone`: a feature extractor ``body`` and torchvision's
  :class:`~torchvision.ops.FeaturePyramidNetwork` ``fpn``, with the attributes torchvision's detectors
  expect (``body``, ``fpn``, ``out_channels``, like :class:`~torchvision.models.detection.backbone_utils.BackboneWithFPN`);
* :func:`resnet_fpn` (``create_feature_extractor``, which traces ``forward``) and :func:`lite_fpn`
  (``BackboneWithFPN``, which runs ``features``' children in order) build one around a course network;
* :func:`build_detectors` assembles the four detectors of lesson 13; :func:`detector_parts` names their
  parts; :func:`part_costs` counts each part's parameters and FLOPs at a fixed input size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.ssd import SSD
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from tlcourse.core.lookup import lookup
from tlcourse.models.efficientnet import EfficientNetLite, efficientnet_lite
from tlcourse.models.resnet import ResNet, resnet50

__all__ = [
    "PART_ROLES",
    "Detector",
    "FeaturePyramidBackbone",
    "PartCost",
    "build_detectors",
    "detector_parts",
    "lite_fpn",
    "part_costs",
    "resnet_fpn",
]

#: What each part is when a detector is trained: copied from the classifier, or new.
PART_ROLES: dict[str, str] = {
    "backbone": "pretrained: the classifier without its classifier",
    "neck": "new: mixes the backbone's feature maps across strides",
    "rpn": "new: proposes regions (objectness and box offsets per anchor)",
    "box head": "new: classifies each region and refines its box",
    "mask head": "new: a 28x28 mask per detected box",
    "head": "new: class scores and box offsets at every anchor of every level",
}


class FeaturePyramidBackbone(nn.Module):
    """``body`` (an ``OrderedDict`` of feature maps, finest first) followed by a feature pyramid ``fpn``.

    ``out_channels`` is every pyramid level's channel count, as torchvision's detectors require.
    """

    def __init__(
        self, body: nn.Module, in_channels: Sequence[int], out_channels: int = 256, extra_blocks: ExtraFPNBlock | None = None
    ) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(list(in_channels), out_channels, extra_blocks=extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def resnet_fpn(model: ResNet, out_channels: int = 256, extra_blocks: ExtraFPNBlock | None = None) -> FeaturePyramidBackbone:
    """``layer1`` ... ``layer4`` of a course ResNet (strides 4, 8, 16, 32) into a feature pyramid (``fc`` dropped).

    The body is ``create_feature_extractor``: it traces ``forward``. (``IntermediateLayerGetter`` would run
    the children in the order they were registered, and the course ResNet registers ``maxpool`` right
    after ``conv1``: the features would come out with the wrong stem.) ``extra_blocks`` defaults to the
    stride-64 max-pooled level of Faster R-CNN (``LastLevelMaxPool``).
    """
    names = {f"layer{i + 1}": str(i) for i in range(model.num_stages)}
    channels = [stage[-1].conv1.out_channels * type(stage[-1]).expansion for stage in model.stages]
    body = create_feature_extractor(model, names)
    return FeaturePyramidBackbone(body, channels, out_channels, extra_blocks or LastLevelMaxPool())


def lite_fpn(
    model: EfficientNetLite, stages: Sequence[str] = ("stage3", "stage5", "stage7"), out_channels: int = 256
) -> BackboneWithFPN:
    """EfficientNet-Lite's stages at strides 8, 16, 32 into a feature pyramid with RetinaNet's P6 and P7.

    ``BackboneWithFPN`` (``IntermediateLayerGetter`` over ``model.features``, which runs in order) keeps
    the stem and stages up to the last one named; the 1x1 ``head`` convolution and the classifier are dropped.
    """
    configs = dict(zip([f"stage{i + 1}" for i in range(len(model.stage_configs))], model.stage_configs))
    channels = [lookup(configs, name, "EfficientNet-Lite stage").out_channels for name in stages]
    return_layers = {name: str(i) for i, name in enumerate(stages)}
    return BackboneWithFPN(model.features, return_layers, channels, out_channels, LastLevelP6P7(out_channels, out_channels))


@dataclass
class Detector:
    """A detector, the classification network its backbone came from, and what that network is."""

    name: str
    model: nn.Module
    classifier: nn.Module
    backbone_name: str
    notes: str = ""


def build_detectors(num_classes: int = 91, device: str | torch.device = "meta") -> dict[str, Detector]:
    """Faster R-CNN and Mask R-CNN (ResNet-50 + FPN), RetinaNet (EfficientNet-Lite0 + FPN), SSDlite (MobileNetV3-Large).

    ResNet-50 and EfficientNet-Lite0 are the course's (:mod:`tlcourse.models`), SSDlite torchvision's own
    builder with ``weights=None, weights_backbone=None``. ``num_classes`` 91: COCO's label space as
    torchvision numbers it. On ``"meta"`` nothing is allocated.
    """
    with torch.device(device):
        r50a, r50b, lite0 = resnet50(), resnet50(), efficientnet_lite("lite0")
        mobilenet = torchvision.models.mobilenet_v3_large(weights=None, reduced_tail=True)
        detectors = [
            Detector("Faster R-CNN", FasterRCNN(resnet_fpn(r50a), num_classes=num_classes), r50a, "ResNet-50 (tlcourse)"),
            Detector("Mask R-CNN", MaskRCNN(resnet_fpn(r50b), num_classes=num_classes), r50b, "ResNet-50 (tlcourse)"),
            Detector("RetinaNet", RetinaNet(lite_fpn(lite0), num_classes=num_classes), lite0, "EfficientNet-Lite0 (tlcourse)"),
            Detector(
                "SSDlite",
                torchvision.models.detection.ssdlite320_mobilenet_v3_large(
                    weights=None, weights_backbone=None, num_classes=num_classes
                ),
                mobilenet,
                "MobileNetV3-Large (torchvision)",
                "without backbone weights torchvision builds the reduced tail (MobileNetV3 paper, table 6)",
            ),
        ]
    return {d.name: d for d in detectors}


def detector_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The parts of a torchvision detector: ``backbone``, ``neck``, then its heads (names in :data:`PART_ROLES`)."""
    if isinstance(model, GeneralizedRCNN):
        roi = model.roi_heads
        parts = {"backbone": model.backbone.body, "neck": model.backbone.fpn, "rpn": model.rpn,
                 "box head": nn.ModuleList([roi.box_head, roi.box_predictor])}  # fmt: skip
        if roi.has_mask():
            parts["mask head"] = nn.ModuleList([roi.mask_head, roi.mask_predictor])
        return parts
    if isinstance(model, SSD):
        return {"backbone": model.backbone.features, "neck": model.backbone.extra, "head": model.head}
    if hasattr(model, "backbone") and hasattr(model, "head"):  # RetinaNet, FCOS
        return {"backbone": model.backbone.body, "neck": model.backbone.fpn, "head": model.head}
    raise TypeError(f"{type(model).__name__} is not a torchvision detector with a backbone, a neck and heads")


@dataclass
class PartCost:
    """One part's parameters and forward FLOPs, and the shapes it produced (batch of one)."""

    part: str
    role: str
    parameters: int
    flops: int
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _flops(fn, *args) -> tuple[int, object]:
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn(*args)
    return int(counter.get_total_flops()), out


def _shapes(features: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in features.items()}


def part_costs(model: nn.Module, image_size: int = 512) -> list[PartCost]:
    """Parameters and FLOPs of every part of ``model`` (built on ``"meta"`` or any device) for one image.

    The backbone and neck run on a ``1 x 3 x image_size x image_size`` input (the detector's own resizing
    transform is skipped); dense heads on the neck's maps; the box head of a two-stage detector on as many
    7x7 regions as the RPN keeps at test time (``rpn._post_nms_top_n["testing"]``), the mask head on as many
    14x14 regions as the detector returns (``roi_heads.detections_per_img``). RoIAlign, anchors, box
    decoding and NMS are not counted (no formula, and on ``"meta"`` their data-dependent shapes cannot run).
    A multiply-add counts 2 FLOPs (``FlopCounterMode``). The model's mode is restored.
    """
    parts = detector_parts(model)
    tensor = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=tensor.device, dtype=tensor.dtype)
    was_training = model.training
    model.eval()
    costs = []
    try:
        with torch.no_grad():
            if isinstance(model, SSD):
                maps, flops = [], {}
                h = x
                for name, blocks in (("backbone", model.backbone.features), ("neck", model.backbone.extra)):
                    total = 0
                    for block in blocks:
                        f, h = _flops(block, h)
                        total += f
                        maps.append(h)
                    flops[name] = total
                levels = OrderedDict((str(i), m) for i, m in enumerate(maps))
                n_backbone = len(model.backbone.features)
                shapes = {"backbone": _shapes(OrderedDict(list(levels.items())[:n_backbone])),
                          "neck": _shapes(OrderedDict(list(levels.items())[n_backbone:]))}  # fmt: skip
                flops["head"], _ = _flops(model.head, list(levels.values()))
                shapes["head"] = {}
            else:
                flops, shapes = {}, {}
                flops["backbone"], body = _flops(parts["backbone"], x)
                flops["neck"], pyramid = _flops(parts["neck"], body)
                shapes["backbone"], shapes["neck"] = _shapes(body), _shapes(pyramid)
                levels = list(pyramid.values())
                if isinstance(model, GeneralizedRCNN):
                    roi = model.roi_heads
                    flops["rpn"], _ = _flops(model.rpn.head, levels)
                    regions = torch.zeros(model.rpn._post_nms_top_n["testing"], levels[0].shape[1],
                                          *roi.box_roi_pool.output_size, device=x.device, dtype=x.dtype)  # fmt: skip
                    flops["box head"], _ = _flops(lambda r: roi.box_predictor(roi.box_head(r)), regions)
                    shapes["box head"] = {"regions": tuple(regions.shape)}
                    if roi.has_mask():
                        masks = torch.zeros(roi.detections_per_img, levels[0].shape[1], *roi.mask_roi_pool.output_size,
                                            device=x.device, dtype=x.dtype)  # fmt: skip
                        flops["mask head"], out = _flops(lambda r: roi.mask_predictor(roi.mask_head(r)), masks)
                        shapes["mask head"] = {"regions": tuple(masks.shape), "masks": tuple(out.shape)}
                else:
                    flops["head"], _ = _flops(model.head, levels)
    finally:
        model.train(was_training)
    for name, module in parts.items():
        parameters = sum(p.numel() for p in module.parameters())
        costs.append(PartCost(name, PART_ROLES[name], parameters, flops[name], shapes.get(name, {})))
    return costs
