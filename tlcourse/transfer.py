"""Transfer learning in a few calls: freeze, replace the head, layer-wise learning rates, cached features, fine-tune.

The network is seen as a list of **stages** from the input to the output (:func:`stages`): the
top-level children that hold parameters, with a list of blocks (``features`` of EfficientNet/
MobileNet/VGG, ``blocks`` of our ViT, ``encoder.layers`` of torchvision's ViT) opened into its blocks.
The last stage holds the classification head. On top of that:

* :func:`freeze` / :func:`unfreeze` / :func:`freeze_to` by depth (the first ``k`` stages) or by name
  (prefixes or ``fnmatch`` patterns of parameter names); :func:`trainable_report` says what trains;
* :func:`replace_head` swaps the final ``nn.Linear`` for one with a new number of classes;
* :func:`param_groups` gives each stage its learning rate: ``lr`` for the head, times ``decay`` per
  stage going down, or spread geometrically from ``lr / spread`` to ``lr`` (fast.ai's ``slice``);
* :func:`extract_features` runs the backbone **once** (eval mode, no gradients) and returns a
  :class:`Features` whose ``loader()`` trains a head on the cached tensors, optionally kept on disk;
* :func:`fine_tune`: train the head with the backbone frozen, then unfreeze and train everything
  with spread learning rates, both phases with :func:`tlcourse.train.fit`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.callbacks import Callback
from tlcourse.config import cache_dir
from tlcourse.device import get_device
from tlcourse.train import History, fit

__all__ = [
    "Features",
    "FineTuneResult",
    "Stage",
    "StageReport",
    "TrainableReport",
    "extract_features",
    "feature_cache_key",
    "fine_tune",
    "freeze",
    "freeze_to",
    "head_name",
    "param_groups",
    "replace_head",
    "stage_lrs",
    "stages",
    "trainable_report",
    "unfreeze",
]

_BN_HOOK = "_tlcourse_frozen_bn_hook"
HEAD_ATTRIBUTES: tuple[str, ...] = ("classifier", "fc", "head", "heads")


# ---------------------------------------------------------------- stages


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


def _select(model: nn.Module, depth: int | None, names: Sequence[str] | str | None) -> list[str]:
    """Parameter names chosen by depth (first ``depth`` stages; negative counts from the end) or by name."""
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


def _frozen_bn_pre_hook(module: nn.Module, args: Any) -> None:
    module.train(False)  # fit() calls model.train() every epoch; keep frozen batch norms on their statistics


def _set_bn_hooks(model: nn.Module) -> None:
    """Batch norms whose parameters are all frozen stay in eval mode (running statistics not updated)."""
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        frozen = all(not p.requires_grad for p in module.parameters(recurse=False))
        hook = getattr(module, _BN_HOOK, None)
        if frozen and hook is None:
            setattr(module, _BN_HOOK, module.register_forward_pre_hook(_frozen_bn_pre_hook))
        elif not frozen and hook is not None:
            hook.remove()
            delattr(module, _BN_HOOK)


def _set_trainable(model: nn.Module, selected: Iterable[str], trainable: bool, freeze_bn_stats: bool) -> nn.Module:
    params = dict(model.named_parameters())
    for name in selected:
        params[name].requires_grad_(trainable)
    if freeze_bn_stats:
        _set_bn_hooks(model)
    return model


def freeze(
    model: nn.Module,
    stages: int | None = None,
    *,
    names: Sequence[str] | str | None = None,
    freeze_bn_stats: bool = True,
) -> nn.Module:
    """Set ``requires_grad=False`` on the first ``stages`` stages, or on parameters matching ``names``.

    With neither, everything but the last stage (the head) is frozen. ``names`` are parameter-name
    prefixes (``"features.stem"``) or ``fnmatch`` patterns (``"*.bn.*"``). With ``freeze_bn_stats``,
    a batch norm whose parameters are all frozen also stops updating its running statistics.
    """
    if stages is None and names is None:
        stages = -1
    return _set_trainable(model, _select(model, stages, names), False, freeze_bn_stats)


def unfreeze(
    model: nn.Module,
    stages: int | None = None,
    *,
    names: Sequence[str] | str | None = None,
    freeze_bn_stats: bool = True,
) -> nn.Module:
    """Make parameters trainable again: the first ``stages`` stages, those matching ``names``, or (neither) all."""
    return _set_trainable(model, _select(model, stages, names), True, freeze_bn_stats)


def freeze_to(model: nn.Module, n: int, *, freeze_bn_stats: bool = True) -> nn.Module:
    """fast.ai's ``freeze_to``: stages before index ``n`` frozen, the others trainable (``n=-1``: head only)."""
    unfreeze(model, freeze_bn_stats=False)
    return freeze(model, n, freeze_bn_stats=freeze_bn_stats) if n != 0 else _set_trainable(model, [], True, freeze_bn_stats)


@dataclass(frozen=True)
class StageReport:
    """Trainable and total parameter counts of one stage."""

    name: str
    trainable: int
    total: int


@dataclass
class TrainableReport:
    """What :func:`trainable_report` found: per-stage counts and the trainable parameter names."""

    stages: list[StageReport]
    trainable_names: list[str] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(s.trainable for s in self.stages)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.stages)

    def __str__(self) -> str:
        width = max(len(s.name) for s in self.stages)
        lines = [f"{'stage':<{width}}  {'trainable':>12}  {'total':>12}"]
        for s in self.stages:
            mark = "" if s.trainable == s.total else ("  frozen" if s.trainable == 0 else "  partly frozen")
            lines.append(f"{s.name:<{width}}  {s.trainable:>12,}  {s.total:>12,}{mark}")
        lines.append(f"{'all':<{width}}  {self.trainable:>12,}  {self.total:>12,}")
        return "\n".join(lines)


def trainable_report(model: nn.Module) -> TrainableReport:
    """Which parameters train: counts per stage (print it for a table) and the trainable names."""
    params = dict(model.named_parameters())
    rows = [
        StageReport(
            s.name,
            sum(params[n].numel() for n in s.parameter_names if params[n].requires_grad),
            sum(params[n].numel() for n in s.parameter_names),
        )
        for s in stages(model)
    ]
    return TrainableReport(rows, [n for n, p in params.items() if p.requires_grad])


# ---------------------------------------------------------------- head


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


# ---------------------------------------------------------------- learning rates


def stage_lrs(n: int, lr: float, *, decay: float | None = None, spread: float | None = None) -> list[float]:
    """Learning rates of ``n`` stages, input first, the last (the head) getting ``lr``.

    ``decay``: each stage down gets ``decay`` times the one above (e.g. 0.5). ``spread``: the rates go
    geometrically from ``lr / spread`` (first stage) to ``lr`` (fast.ai's ``slice(lr / spread, lr)``).
    Neither: ``lr`` everywhere.
    """
    if decay is not None and spread is not None:
        raise ValueError("give decay or spread, not both")
    if n < 1:
        raise ValueError("n must be >= 1")
    if decay is not None:
        return [lr * decay ** (n - 1 - i) for i in range(n)]
    if spread is not None:
        if n == 1:
            return [lr]
        return [lr / spread * spread ** (i / (n - 1)) for i in range(n)]
    return [lr] * n


def param_groups(
    model: nn.Module,
    lr: float,
    *,
    decay: float | None = None,
    spread: float | None = None,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per stage, with :func:`stage_lrs` learning rates.

    The rates are set over all stages (so a stage's rate does not depend on what is frozen);
    frozen parameters are left out and stages with nothing to train are dropped. Each group
    carries its stage's ``"name"``. Pass the result to any ``torch.optim`` optimizer.
    """
    all_stages = stages(model)
    params = dict(model.named_parameters())
    groups = []
    for stage, stage_lr in zip(all_stages, stage_lrs(len(all_stages), lr, decay=decay, spread=spread)):
        trainable = [params[n] for n in stage.parameter_names if params[n].requires_grad]
        if trainable:
            group: dict[str, Any] = {"params": trainable, "lr": stage_lr, "name": stage.name}
            if weight_decay is not None:
                group["weight_decay"] = weight_decay
            groups.append(group)
    return groups


# ---------------------------------------------------------------- feature cache


@dataclass
class Features:
    """Backbone features computed once: ``features`` (N, D) and ``targets`` (N,), on the CPU."""

    features: torch.Tensor
    targets: torch.Tensor
    seconds: float = 0.0
    from_disk: bool = False

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def dataset(self) -> TensorDataset:
        return TensorDataset(self.features, self.targets)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Features:
        """The features of the given rows (e.g. a few labelled images per class)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return Features(self.features[index], self.targets[index], self.seconds, self.from_disk)

    def loader(self, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A DataLoader over the cached tensors (no workers: the data is already in memory)."""
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(self.dataset(), batch_size=batch_size, shuffle=shuffle, generator=generator)


def feature_cache_key(*parts: Any) -> str:
    """A short stable key (SHA-256 prefix) from descriptions of model, data and transform."""
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _feature_cache_path(key: str | None, file: str | os.PathLike[str] | None) -> Path:
    return Path(file) if file is not None else cache_dir() / "features" / f"{key}.pt"


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    layer: str | None = None,
    device: str | torch.device = "auto",
    cache_key: str | None = None,
    cache_file: str | os.PathLike[str] | None = None,
) -> Features:
    """Run ``model`` once over ``loader`` in eval mode under ``no_grad`` and keep the input of its head.

    ``layer`` (default :func:`head_name`) is the module whose *input* is the feature: for a
    classifier, the pooled features its final linear layer sees. Only the features are kept.
    With ``cache_key`` (see :func:`feature_cache_key`) the result is saved under
    ``<cache>/features/<key>.pt`` (or ``cache_file``) and read back on the next call instead of
    recomputed. The model's train/eval mode is restored afterwards.
    """
    path = _feature_cache_path(cache_key, cache_file) if (cache_key or cache_file) else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return Features(saved["features"], saved["targets"], 0.0, from_disk=True)

    dev = get_device(device)
    target = model.get_submodule(layer or head_name(model))
    captured: list[torch.Tensor] = []
    handle = target.register_forward_pre_hook(lambda m, args: captured.append(torch.flatten(args[0], 1).float().cpu()))
    was_training = model.training
    model.eval().to(dev)
    targets = []
    start = time.perf_counter()
    try:
        for inputs, labels in loader:
            model(inputs.to(dev))
            targets.append(torch.as_tensor(labels).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    features = Features(torch.cat(captured), torch.cat(targets).long(), time.perf_counter() - start)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"features": features.features, "targets": features.targets}, path)
    return features


# ---------------------------------------------------------------- fine-tuning


@dataclass
class FineTuneResult:
    """The two phases of :func:`fine_tune`: the head alone (backbone frozen), then the unfrozen network."""

    head_history: History | None
    history: History | None
    head_lrs: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_history": self.head_history.to_dict() if self.head_history else None,
            "history": self.history.to_dict() if self.history else None,
            "head_lrs": self.head_lrs,
            "lrs": self.lrs,
        }


Scheduler = Literal["onecycle", "cosine", "none"]


def _make_scheduler(name: Scheduler | None, optimizer: torch.optim.Optimizer, epochs: int, steps: int | None) -> Any:
    if name in (None, "none"):
        return None
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "onecycle":
        if steps is None:
            raise ValueError("scheduler='onecycle' needs a train_loader with a length")
        return lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], epochs=epochs, steps_per_epoch=steps
        )
    raise ValueError(f"unknown scheduler {name!r}; choose onecycle, cosine or none")


def fine_tune(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    epochs: int,
    head_epochs: int = 1,
    lr: float = 1e-3,
    head_lr: float | None = None,
    lr_spread: float | None = 100.0,
    lr_decay: float | None = None,
    freeze_until: int = -1,
    unfreeze_to: int = 0,
    weight_decay: float = 0.01,
    scheduler: Scheduler | None = "onecycle",
    freeze_bn_stats: bool = True,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "auto",
    progress: bool = False,
    **fit_kwargs: Any,
) -> FineTuneResult:
    """fast.ai-style fine-tuning in one call, both phases run by :func:`tlcourse.train.fit`.

    1. ``head_epochs`` epochs with the first ``freeze_until`` stages frozen (default ``-1``: all but the
       head), at ``head_lr`` (default ``2 * lr``);
    2. ``epochs`` epochs with the stages from ``unfreeze_to`` on trainable (default 0: everything), with
       layer-wise rates from :func:`param_groups`: ``lr`` for the head, ``lr / lr_spread`` for the first
       stage (or times ``lr_decay`` per stage; ``lr_spread=None`` and ``lr_decay=None``: ``lr`` everywhere).

    Both phases use AdamW (``weight_decay``) and ``scheduler`` (``"onecycle"`` per batch, ``"cosine"`` per
    epoch, or ``"none"``). Either phase is skipped when its epoch count is 0. Extra keyword arguments
    go to ``fit`` (``amp``, ``grad_clip``, ...). The model is left fully trainable from ``unfreeze_to``.
    """
    if lr_decay is not None:
        lr_spread = None
    steps = len(train_loader) if hasattr(train_loader, "__len__") else None  # type: ignore[arg-type]
    head_history = history = None
    head_lrs: list[float] = []
    lrs: list[float] = []
    if head_epochs > 0:
        freeze_to(model, freeze_until, freeze_bn_stats=freeze_bn_stats)
        groups = param_groups(model, head_lr if head_lr is not None else 2 * lr, weight_decay=weight_decay)
        optimizer = torch.optim.AdamW(groups)
        head_lrs = [g["lr"] for g in groups]
        head_history = fit(
            model, train_loader, val_loader, epochs=head_epochs, optimizer=optimizer,
            scheduler=_make_scheduler(scheduler, optimizer, head_epochs, steps),
            callbacks=callbacks, device=device, progress=progress, **fit_kwargs,
        )  # fmt: skip
    if epochs > 0:
        freeze_to(model, unfreeze_to, freeze_bn_stats=freeze_bn_stats)
        groups = param_groups(model, lr, decay=lr_decay, spread=lr_spread, weight_decay=weight_decay)
        optimizer = torch.optim.AdamW(groups)
        lrs = [g["lr"] for g in groups]
        history = fit(
            model, train_loader, val_loader, epochs=epochs, optimizer=optimizer,
            scheduler=_make_scheduler(scheduler, optimizer, epochs, steps),
            callbacks=callbacks, device=device, progress=progress, **fit_kwargs,
        )  # fmt: skip
    return FineTuneResult(head_history, history, head_lrs, lrs)
