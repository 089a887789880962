"""A model's layer graph, derived from its own code: which layer feeds which, with shapes and parameters.

:func:`layer_graph` traces ``model.forward`` with ``torch.fx`` (so additions and concatenations, the
skip connections and parallel branches, are part of the graph), runs one all-zeros input through it to
record every output shape, and keeps the layers a diagram should show. Dropout, identities, padding
and stochastic depth pass their input through and are left out, as are operations on shapes.
``tlcourse.measure.diagram.draw_layer_graph`` draws the result.

``leaves`` says how deep to look: a module listed by type or by name (``"layer1.0"``) is one node,
whose label is its type (``BasicBlock``, ``Inception``...) or, for an ``nn.Sequential``, the count and
type of its children. :data:`DEFAULT_LEAVES` (the conv-norm-activation unit, the attention layer, the
patch embedding, squeeze-and-excitation) are always single nodes.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torchvision.ops import SqueezeExcitation, StochasticDepth

from tlcourse.core.modes import inference_mode
from tlcourse.measure.profile import count_parameters
from tlcourse.models.blocks import ConvNormAct, SamePad2d
from tlcourse.models.vit import MultiHeadSelfAttention, PatchEmbedding

__all__ = ["DEFAULT_LEAVES", "KINDS", "LayerGraph", "LayerNode", "layer_graph"]

#: What a node is; the diagram colours boxes by it.
KINDS: tuple[str, ...] = ("input", "conv", "pool", "norm", "act", "linear", "attention", "block", "merge", "other")

#: Modules that are always one node, however deep the trace goes.
DEFAULT_LEAVES: tuple[type[nn.Module], ...] = (ConvNormAct, MultiHeadSelfAttention, PatchEmbedding, SqueezeExcitation)

_PASS_THROUGH = (nn.Dropout, nn.Identity, SamePad2d, StochasticDepth)
_KIND_OF_TYPE: tuple[tuple[type[nn.Module] | tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, PatchEmbedding), "conv"),
    ((nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), "pool"),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm), "norm"),
    ((nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Softmax), "act"),
    (nn.Linear, "linear"),
    ((MultiHeadSelfAttention, nn.MultiheadAttention), "attention"),
    (ConvNormAct, "conv"),
)
_RESHAPES = ("expand", "contiguous", "view", "reshape", "permute", "transpose")
_MERGES = {operator.add: "+", torch.add: "+", operator.mul: "x", torch.mul: "x", torch.cat: "concat"}
_FUNCTION_KINDS = {torch.relu: "act", torch.nn.functional.relu: "act", torch.sigmoid: "act"}


@dataclass(frozen=True)
class LayerNode:
    """One box of the diagram: a layer (or block), an input, or an addition/concatenation."""

    name: str  #: the module's name in the model (``"c1"``, ``"layer1.0"``), or the operation's (``"add"``)
    kind: str  #: one of :data:`KINDS`
    label: str  #: what the box says, e.g. ``"c1: conv 5x5"``
    shape: tuple[int, ...]  #: output shape without the batch dimension
    parameters: int  #: parameters of the module (0 for operations)
    inputs: tuple[str, ...] = ()  #: names of the nodes it reads, in argument order


@dataclass
class LayerGraph:
    """The nodes of :func:`layer_graph` in execution order (inputs first), with their connections."""

    nodes: list[LayerNode]
    model_name: str = ""
    _by_name: dict[str, LayerNode] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {node.name: node for node in self.nodes}

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> LayerNode:
        return self._by_name[name]

    def successors(self, name: str) -> list[str]:
        """Names of the nodes that read ``name``'s output, in execution order."""
        return [node.name for node in self.nodes if name in node.inputs]

    def skips(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The shortcuts: ``(fork, addition, via)`` for every addition whose inputs split off one node.

        ``via`` lists the nodes on the shorter of the two paths: ``()`` for an identity shortcut, the
        projection's layers (e.g. ``("downsample.0", "downsample.1")``) otherwise.
        """
        found = []
        for node in self.nodes:
            if node.kind != "merge" or node.label != "+" or len(node.inputs) != 2:
                continue
            paths = [self._path_to_fork(source) for source in node.inputs]
            forks = {path[-1] for path in paths}
            if len(forks) == 1 and paths[0] != paths[1]:
                shortest = min(paths, key=len)
                found.append((shortest[-1], node.name, tuple(reversed(shortest[:-1]))))
        return found

    def _path_to_fork(self, name: str) -> list[str]:
        """``name`` and the nodes above it, back to the first node whose output goes two ways."""
        path = [name]
        while len(self.successors(path[-1])) < 2 and len(self[path[-1]].inputs) == 1:
            path.append(self[path[-1]].inputs[0])
        return path

    def sequence(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(name, shape)`` of every node, in execution order."""
        return [(node.name, node.shape) for node in self.nodes]


class _Tracer(fx.Tracer):
    def __init__(self, leaf_types: tuple[type[nn.Module], ...], leaf_names: frozenset[str]) -> None:
        super().__init__()
        self.leaf_types, self.leaf_names = leaf_types, leaf_names

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        if qualname in self.leaf_names or isinstance(module, (*self.leaf_types, *_PASS_THROUGH)):
            return True
        return super().is_leaf_module(module, qualname)


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        if isinstance(result, torch.Tensor):
            self.shapes[node.name] = tuple(result.shape)
        return result


def _kind_of_module(module: nn.Module) -> str:
    for types, kind in _KIND_OF_TYPE:
        if isinstance(module, types):
            return kind
    if any(isinstance(m, (MultiHeadSelfAttention, nn.MultiheadAttention)) for m in module.modules()):
        return "attention"
    return "block" if any(True for _ in module.children()) else "other"


def _conv_text(conv: nn.Conv2d) -> str:
    k = conv.kernel_size[0]
    text = f"{k}x{k} conv"
    if conv.groups > 1 and conv.groups == conv.in_channels:
        text = f"{k}x{k} depthwise"
    return text + (f" /{conv.stride[0]}" if conv.stride[0] > 1 else "")


def _describe_module(module: nn.Module) -> str:
    if isinstance(module, ConvNormAct):
        parts = [_conv_text(module.conv)]
        if "bn" in module._modules:
            parts.append("BN")
        if "act" in module._modules:
            parts.append(type(module.act).__name__)
        return ", ".join(parts)
    if isinstance(module, PatchEmbedding):
        return f"patch embedding {module.patch_size}x{module.patch_size}"
    if isinstance(module, nn.Conv2d):
        return _conv_text(module)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return f"{'max' if isinstance(module, nn.MaxPool2d) else 'avg'} pool {k}x{k}" + (f" /{s}" if s > 1 else "")
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return "global avg pool" if module.output_size in (1, (1, 1)) else "adaptive avg pool"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "batch norm"
    if isinstance(module, nn.LayerNorm):
        return "layer norm"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, MultiHeadSelfAttention):
        return f"self-attention, {module.heads} heads"
    if isinstance(module, SqueezeExcitation):
        return "squeeze-excite"
    if isinstance(module, nn.Sequential) and len(module) and not isinstance(module, ConvNormAct):
        types = {type(m).__name__ for m in module}
        return f"{len(module)} x {types.pop()}" if len(types) == 1 else f"{len(module)} layers"
    return type(module).__name__


def _passes_through(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Dropout, identities, padding, stochastic depth and reshapes: their output stands for their input."""
    if node.op == "call_module":
        return isinstance(modules[node.target], _PASS_THROUGH)
    if node.op == "call_method":
        return node.target in _RESHAPES
    return node.op == "call_function" and getattr(node.target, "__name__", "") in ("stochastic_depth", "dropout")


def _index_text(index: Any) -> str:
    items = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(":" if isinstance(i, slice) and i == slice(None) else str(i) for i in items) + "]"


def _input_example(model: nn.Module, shape: Sequence[int]) -> torch.Tensor:
    tensor = next((t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()), None)
    device = tensor.device if tensor is not None else torch.device("cpu")
    dtype = tensor.dtype if tensor is not None else torch.get_default_dtype()
    return torch.zeros(tuple(int(s) for s in shape), device=device, dtype=dtype)


def layer_graph(
    model: nn.Module,
    inputs_or_shape: torch.Tensor | Sequence[int],
    *,
    leaves: Iterable[type[nn.Module] | str] = (),
) -> LayerGraph:
    """The layer graph of ``model`` for an input of ``inputs_or_shape`` (batch first, e.g. ``(1, 1, 32, 32)``).

    Every node has the output shape of one forward pass (on zeros, in eval mode under ``no_grad``:
    neither the model's modes nor any random generator change). ``leaves`` (module types or names)
    are drawn as one node each, in addition to :data:`DEFAULT_LEAVES`.
    """
    leaves = list(leaves)
    leaf_types = DEFAULT_LEAVES + tuple(leaf for leaf in leaves if isinstance(leaf, type))
    leaf_names = frozenset(leaf for leaf in leaves if isinstance(leaf, str))
    modules = dict(model.named_modules())
    unknown = sorted(leaf_names - set(modules))
    if unknown:
        raise ValueError(f"no modules named {unknown} in {type(model).__name__}; some names: {list(modules)[1:12]}")
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    graph = _Tracer(leaf_types, leaf_names).trace(model, concrete_args=concrete or None)
    module = fx.GraphModule(model, graph)
    x = inputs_or_shape if isinstance(inputs_or_shape, torch.Tensor) else _input_example(model, inputs_or_shape)
    recorder = _ShapeRecorder(module)
    with inference_mode(model):
        recorder.run(x)
    shapes = recorder.shapes

    nodes: list[LayerNode] = []
    visible_names: set[str] = set()
    visible: dict[str, tuple[str, ...]] = {}  # fx node -> the visible nodes that stand for its output

    def sources(node: fx.Node) -> tuple[str, ...]:
        found: list[str] = []
        for arg in node.all_input_nodes:
            found += [s for s in visible.get(arg.name, ()) if s not in found]
        return tuple(found)

    for node in graph.nodes:
        if node.op == "output" or node.name not in shapes:
            continue  # the result, and operations on shapes or settings
        inputs = sources(node)
        if _passes_through(node, modules):
            visible[node.name] = inputs
            continue
        name = node.name
        if node.op == "placeholder":
            name, kind, label, count = "input", "input", "input", 0
        elif node.op == "call_module":
            sub = modules[node.target]
            name = node.target if node.target not in visible_names else node.name  # a module called twice
            kind, text, count = _kind_of_module(sub), _describe_module(sub), count_parameters(sub)
            parts = node.target.split(".")
            short = ".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1]
            label = text if short.lower().replace("_", " ") in text.lower() else f"{short}: {text}"
        elif node.op == "get_attr":
            kind, label, count = "other", node.target.replace("_", " "), math.prod(shapes[node.name])
        elif node.target in _MERGES and len(inputs) > 1:
            kind, label, count = "merge", _MERGES[node.target], 0
        elif node.target is operator.getitem:
            kind, label, count = "other", _index_text(node.args[1]), 0
        else:
            target = node.target if isinstance(node.target, str) else node.target.__name__
            kind, label, count = _FUNCTION_KINDS.get(node.target, "other"), target, 0
        shape = shapes[node.name][1:]  # a parameter's first dimension is 1: broadcast over the batch
        nodes.append(LayerNode(name, kind, label, shape, count, inputs if node.op != "placeholder" else ()))
        visible[node.name] = (name,)
        visible_names.add(name)
    return LayerGraph(nodes, type(model).__name__)
