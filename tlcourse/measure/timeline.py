"""A timeline of every architecture in the course, measured from the models' definitions.

:func:`architecture_timeline` builds each network from torchvision's definition (no weights:
the models are built on PyTorch's ``meta`` device, which allocates no memory and runs no
arithmetic, so the whole table takes about a second) and measures

* **parameters**: :func:`tlcourse.measure.profile.count_parameters`;
* **FLOPs** of one 224x224 image: :func:`tlcourse.measure.profile.count_flops` (a multiply-add counts
  as 2; convolutions and matrix products only). Papers and torchvision's ``_ops`` count
  multiply-adds, so divide by two to compare: ResNet-50's "4.1 GFLOPs" is 8.2 here;
* **depth**: the number of weight layers (convolutions, fully connected layers, and the input
  and output projections of each attention layer) on the longest path from input to output,
  found on the graph that ``torch.fx`` traces. Parallel branches count once (an Inception
  module adds two, not six), a skip connection adds nothing, and neither do pooling,
  normalisation or activations. The rule gives the names the authors chose: LeNet-5 → 5,
  AlexNet → 8, VGG-16 → 16, GoogLeNet → 22, ResNet-18 → 18, ResNet-50 → 50.

The ImageNet top-1 accuracy is the one torchvision reports in its weights' metadata (for the
first, ``IMAGENET1K_V1`` weights, trained with recipes close to the papers'); reading it needs no
download. LeNet-5 is the course's own (:mod:`tlcourse.models.lenet`), measured at its 32x32
grey input, and has no ImageNet accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torchvision
from torch import nn

from tlcourse.core.lookup import lookup
from tlcourse.measure.profile import count_flops, count_parameters

__all__ = ["ARCHITECTURES", "Architecture", "TimelineRow", "architecture_timeline", "format_timeline", "weight_layer_depth"]


@dataclass(frozen=True)
class Architecture:
    """How to build one network of the timeline and where its reported accuracy comes from."""

    name: str
    year: int
    lesson: str
    builder: str  # a torchvision model name, or "lenet5" for the course's own
    weights: str | None = None  # torchvision weights enum entry holding the reported accuracy
    kwargs: tuple[tuple[str, Any], ...] = ()
    input_shape: tuple[int, int, int] = (3, 224, 224)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("LeNet-5", 1998, "01", "lenet5", input_shape=(1, 32, 32)),
    Architecture("AlexNet", 2012, "02", "alexnet", "AlexNet_Weights.IMAGENET1K_V1"),
    Architecture("VGG-16", 2014, "02", "vgg16", "VGG16_Weights.IMAGENET1K_V1"),
    Architecture(
        "GoogLeNet (Inception v1)", 2014, "03", "googlenet", "GoogLeNet_Weights.IMAGENET1K_V1",
        kwargs=(("aux_logits", False), ("init_weights", False)),
    ),
    Architecture("ResNet-18", 2015, "04", "resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    Architecture("ResNet-50", 2015, "04", "resnet50", "ResNet50_Weights.IMAGENET1K_V1"),
    Architecture("MobileNetV2", 2018, "05", "mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1"),
    Architecture("EfficientNet-B0", 2019, "05", "efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    Architecture("ViT-B/16", 2020, "06", "vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1"),
)


@dataclass
class TimelineRow:
    """One architecture, measured."""

    name: str
    year: int
    lesson: str
    depth: int
    parameters: int
    flops: int
    input_shape: tuple[int, int, int]
    top1: float | None
    weights: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def _layer_weight(module: nn.Module) -> int:
    if isinstance(module, nn.MultiheadAttention):
        return 2  # input projection (queries, keys, values), then output projection
    return 1 if isinstance(module, _WEIGHT_LAYERS) else 0


class _LeafTracer(torch.fx.Tracer):
    """Keeps the weight layers (and attention) as single nodes; traces through everything else."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (*_WEIGHT_LAYERS, nn.MultiheadAttention)) or super().is_leaf_module(m, module_qualified_name)


def weight_layer_depth(model: nn.Module) -> int:
    """Weight layers on the longest input-to-output path of ``model``'s traced graph (see the module doc)."""
    graph = _LeafTracer().trace(model)
    modules = dict(model.named_modules())
    depth: dict[torch.fx.Node, int] = {}
    for node in graph.nodes:
        before = max((depth[n] for n in node.all_input_nodes), default=0)
        here = _layer_weight(modules[str(node.target)]) if node.op == "call_module" else 0
        depth[node] = before + here
    return max(depth.values(), default=0)


def _build(arch: Architecture) -> nn.Module:
    if arch.builder == "lenet5":
        from tlcourse.models.lenet import lenet5

        return lenet5("classic")
    return torchvision.models.get_model(arch.builder, weights=None, **dict(arch.kwargs))


def _reported_top1(weights: str | None) -> float | None:
    if weights is None:
        return None
    return float(torchvision.models.get_weight(weights).meta["_metrics"]["ImageNet-1K"]["acc@1"])


def architecture_timeline(
    names: Sequence[str] | None = None, architectures: Sequence[Architecture] = ARCHITECTURES
) -> list[TimelineRow]:
    """Measure the architectures (all, or those in ``names``) and return one row each, in course order."""
    chosen = [a for a in architectures if names is None or a.name in names or a.builder in names]
    known = {a.name: a for a in architectures} | {a.builder: a for a in architectures}
    for name in names or ():
        lookup(known, name, "architecture")
    rows = []
    for arch in chosen:
        with torch.device("meta"):  # no memory, no arithmetic: shapes and counts only
            model = _build(arch)
        rows.append(
            TimelineRow(
                name=arch.name,
                year=arch.year,
                lesson=arch.lesson,
                depth=weight_layer_depth(model),
                parameters=count_parameters(model),
                flops=count_flops(model, (1, *arch.input_shape)),
                input_shape=arch.input_shape,
                top1=_reported_top1(arch.weights),
                weights=arch.weights,
            )
        )
    return rows


def _human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.{2 if n / scale < 10 else 1}f} {suffix}{unit}"
    return f"{n:.0f} {unit}".strip()


def format_timeline(rows: Sequence[TimelineRow], formatter: Callable[[float, str], str] = _human) -> str:
    """A Markdown table of the rows: year, name, lesson, depth, parameters, FLOPs, input, top-1."""
    lines = [
        "| year | architecture | lesson | depth | parameters | FLOPs | input | ImageNet top-1 |",
        "| ---: | --- | :---: | ---: | ---: | ---: | :---: | ---: |",
    ]
    for r in rows:
        c, h, w = r.input_shape
        top1 = f"{r.top1:.1f}%" if r.top1 is not None else "—"
        lines.append(
            f"| {r.year} | {r.name} | {r.lesson} | {r.depth} | {formatter(r.parameters, '')} | "
            f"{formatter(r.flops, '')} | {c}x{h}x{w} | {top1} |"
        )
    return "\n".join(lines)
