"""Batch norms that keep their running statistics while the rest of the network trains.

``fit`` calls ``model.train()`` every epoch, which would let every batch norm update its running
mean and variance from the (small, new) training set. A forward pre-hook that puts the layer back
in eval mode keeps the statistics it learned on the source task. :func:`freeze_bn_stats` does it
for every batch norm (their weight and bias still train); :func:`sync_frozen_bn_stats` only for
those whose parameters are all frozen, which is what ``freeze(..., freeze_bn_stats=True)`` uses.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["batch_norms", "freeze_bn_stats", "sync_frozen_bn_stats"]

_FROZEN_HOOK = "_tlcourse_frozen_bn_hook"  # set by sync_frozen_bn_stats, follows requires_grad
_PINNED_HOOK = "_tlcourse_pinned_bn_hook"  # set by freeze_bn_stats, stays until removed


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of ``model`` (1d, 2d and 3d)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _eval_pre_hook(module: nn.Module, args: Any) -> None:
    module.train(False)  # a forward pre-hook must return None


def freeze_bn_stats(model: nn.Module) -> list[RemovableHandle]:
    """Keep every batch norm on its running statistics during training; its weight and bias still train.

    Returns the hooks' handles: ``for h in handles: h.remove()`` lets the statistics update again.
    """
    handles = []
    for module in batch_norms(model):
        handle = getattr(module, _PINNED_HOOK, None)
        if handle is None or handle.id not in module._forward_pre_hooks:  # none yet, or removed since
            handle = module.register_forward_pre_hook(_eval_pre_hook)
            setattr(module, _PINNED_HOOK, handle)
        handles.append(handle)
    return handles


def sync_frozen_bn_stats(model: nn.Module) -> None:
    """Batch norms whose parameters are all frozen stay in eval mode; the others update their statistics."""
    for module in batch_norms(model):
        frozen = all(not p.requires_grad for p in module.parameters(recurse=False))
        hook = getattr(module, _FROZEN_HOOK, None)
        if frozen and hook is None:
            setattr(module, _FROZEN_HOOK, module.register_forward_pre_hook(_eval_pre_hook))
        elif not frozen and hook is not None:
            hook.remove()
            delattr(module, _FROZEN_HOOK)
