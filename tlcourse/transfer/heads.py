"""The classification head: find it, and replace it by a new one for the target classes."""

from __future__ import annotations

from torch import nn

__all__ = ["HEAD_ATTRIBUTES", "head_name", "replace_head"]

HEAD_ATTRIBUTES: tuple[str, ...] = ("classifier", "fc", "head", "heads")


def head_name(model: nn.Module) -> str:
    """Dotted name of the classification layer: the last ``nn.Linear`` under ``classifier``/``fc``/``head``/``heads``.

    Falls back to the last ``nn.Linear`` of the whole model.
    """
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for attribute in HEAD_ATTRIBUTES:
        inside = [n for n in linears if n == attribute or n.startswith(attribute + ".")]
        if inside:
            return inside[-1]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to replace")
    return linears[-1]


def replace_head(model: nn.Module, num_classes: int | nn.Module, *, bias: bool = True) -> nn.Module:
    """Replace the classification layer (:func:`head_name`) by a fresh ``nn.Linear(in_features, num_classes)``.

    Pass a module instead of a number to put that module there (e.g. ``nn.Identity()`` or a trained head).
    The new layer is trainable and on the old one's device and dtype. Returns ``model``.
    """
    name = head_name(model)
    old = model.get_submodule(name)
    assert isinstance(old, nn.Linear)
    if isinstance(num_classes, nn.Module):
        new = num_classes
    else:
        new = nn.Linear(old.in_features, num_classes, bias=bias)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    model.set_submodule(name, new)
    return model
