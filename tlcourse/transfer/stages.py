"""A network as a list of stages from input to output: what freezing and layer-wise rates work on."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

__all__ = ["Stage", "select_parameters", "stages"]


@dataclass(frozen=True)
class Stage:
    """One stage of a network: a dotted ``name`` and the names of the parameters it owns."""

    name: str
    parameter_names: tuple[str, ...]


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _is_block_list(module: nn.Module) -> bool:
    """A Sequential/ModuleList of at least three children with parameters: a list of blocks to open."""
    return isinstance(module, (nn.Sequential, nn.ModuleList)) and sum(_has_params(c) for c in module.children()) >= 3


def _walk(module: nn.Module, prefix: str, open_inner: bool) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    direct = [f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False)]
    if direct:  # e.g. ViT's class token and position embeddings: they sit next to the input
        out.append((prefix.rstrip(".") or direct[0], direct))
    for name, child in module.named_children():
        if not _has_params(child):
            continue
        full = f"{prefix}{name}"
        if _is_block_list(child):
            for sub, block in child.named_children():
                if _has_params(block):
                    out.append((f"{full}.{sub}", [f"{full}.{sub}.{n}" for n, _ in block.named_parameters()]))
        elif open_inner and any(_is_block_list(g) for g in child.children()):
            out.extend(_walk(child, full + ".", open_inner=False))
        else:
            out.append((full, [f"{full}.{n}" for n, _ in child.named_parameters()]))
    return out


def stages(model: nn.Module) -> list[Stage]:
    """The stages of ``model`` from input to output (the last one holds the head).

    Top-level children with parameters, in registration order; a block list (a Sequential or
    ModuleList of >= 3 parametrised children, directly or one level down) is opened into its blocks.
    EfficientNetLite: ``features.stem``, ``features.stage1`` ... ``features.head``, ``classifier``;
    ResNet: ``conv1``, ``bn1``, ``layer1`` ... ``layer4``, ``fc``.
    """
    grouped: dict[str, list[str]] = {}
    for name, names in _walk(model, "", open_inner=True):
        grouped.setdefault(name, []).extend(names)
    return [Stage(name, tuple(names)) for name, names in grouped.items()]


def select_parameters(model: nn.Module, depth: int | None, names: Sequence[str] | str | None) -> list[str]:
    """Names of the parameters chosen by depth (first ``depth`` stages; negative counts from the end) or by name."""
    all_names = [n for n, _ in model.named_parameters()]
    if depth is None and names is None:
        return all_names
    chosen: list[str] = []
    if depth is not None:
        for stage in stages(model)[:depth]:
            chosen.extend(stage.parameter_names)
    if names is not None:
        patterns = [names] if isinstance(names, str) else list(names)
        for n in all_names:
            for p in patterns:
                if n == p or n.startswith(p.rstrip(".") + ".") or fnmatch.fnmatchcase(n, p):
                    chosen.append(n)
                    break
        if patterns and not any(n in chosen for n in all_names):
            raise ValueError(f"no parameter matches {patterns}; stages are {[s.name for s in stages(model)]}")
    return chosen
