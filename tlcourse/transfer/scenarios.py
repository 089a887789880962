"""When to transfer: source and target tasks built from offline digits, and one transfer strategy run.

Lesson 10 measures the four classic scenarios (target data small or large, similar or different to
the source) with four strategies. The pieces it needs, kept small and reusable:

* :class:`Task`: images and labels of a train and a test split held as tensors, with
  :meth:`Task.few_shot` (``n`` training images per class) and :meth:`Task.permuted` (a fixed
  shuffle of the pixels: same images, no spatial structure left);
* :func:`digit_tensors` decodes mnist5k once; :func:`digit_task` picks some digits and relabels them
  ``0..n-1`` (the source: digits 0-4; the similar target: digits 5-9);
* :func:`transferred_model` copies a source network, gives it a new head, keeps the source's weights
  in the first ``kept`` stages (:func:`tlcourse.transfer.stages`; the rest re-initialised, as in
  Yosinski et al. 2014) and freezes the first ``frozen`` of them;
* :func:`strategy_plan` says what each of :data:`STRATEGIES` keeps and freezes; :func:`train_model`
  trains what is trainable; :func:`run_strategy` does both for one strategy and returns its test accuracy.

Freezing, heads and stages come from :mod:`tlcourse.transfer`; training from :func:`tlcourse.training.fit`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcourse import data
from tlcourse.core.device import seeded
from tlcourse.core.lookup import lookup
from tlcourse.training import evaluate, fit
from tlcourse.transfer import freeze_to, replace_head, stages, trainable_report

__all__ = [
    "STRATEGIES",
    "StrategyResult",
    "Task",
    "digit_task",
    "digit_tensors",
        "pixel_permutation",
    "run_strategy",
    "strategy_plan",
    "train_model",
    "transferred_model",
]

#: The four strategies of the grid, from "reuse the most" to "reuse nothing".
STRATEGIES: tuple[str, ...] = ("feature_extraction", "fine_tune_top", "fine_tune_all", "scratch")


@dataclass(frozen=True)
class Task:
    """A classification task held in memory: ``train_x`` (N, C, H, W), ``train_y`` (N,), the same for test."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def few_shot(self, per_class: int | None, seed: int = 0) -> Task:
        """The same task with ``per_class`` random training images per class (``None``: all); test unchanged."""
        if per_class is None:
            return self
        index = torch.as_tensor(data.per_class_indices(self.train_y.tolist(), per_class, seed, self.classes, sort=False))
        return replace(self, name=f"{self.name} ({per_class}/class)", train_x=self.train_x[index],
                       train_y=self.train_y[index])  # fmt: skip

    def permuted(self, permutation: torch.Tensor, name: str | None = None) -> Task:
        """Every image's pixels shuffled by one fixed ``permutation`` of H*W positions (see :func:`pixel_permutation`)."""

        def shuffle(x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(2)
            return flat[:, :, permutation].reshape(x.shape)

        return replace(self, name=name or f"{self.name}, pixels permuted", train_x=shuffle(self.train_x),
                       test_x=shuffle(self.test_x))  # fmt: skip

    def train_loader(self, batch_size: int = 64, seed: int = 0) -> DataLoader:
        """Shuffled training batches (seeded)."""
        return data.tensor_loader(self.train_x, self.train_y, batch_size=batch_size, shuffle=True, seed=seed)

    def test_loader(self, batch_size: int = 500) -> DataLoader:
        """The test images in order."""
        return data.tensor_loader(self.test_x, self.test_y, batch_size=batch_size)


def digit_tensors(transform: str = "lenet", root: str | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """mnist5k decoded once: ``{"train": (x, y), "val": ..., "test": ...}`` with the given transform preset."""
    bundle = data.load("mnist5k", root, transform=transform, download=False, num_workers=0)
    out = {"train": data.dataset_tensors(bundle.train), "val": data.dataset_tensors(bundle.val)}
    if bundle.test is not None:
        out["test"] = data.dataset_tensors(bundle.test)
    return out


def digit_task(
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]],
    digits: Sequence[int],
    *,
    name: str | None = None,
    train_splits: Sequence[str] = ("train",),
    test_split: str = "test",
) -> Task:
    """The images of ``digits`` only, relabelled ``0..len(digits)-1`` in the given order."""
    lookup = torch.full((10,), -1, dtype=torch.long)
    lookup[torch.as_tensor(list(digits))] = torch.arange(len(digits))

    def pick(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = lookup[y] >= 0
        return x[keep], lookup[y[keep]]

    parts = [pick(*tensors[s]) for s in train_splits]
    train_x, train_y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    test_x, test_y = pick(*tensors[test_split])
    label = name or "digits " + ",".join(str(d) for d in digits)
    return Task(label, train_x, train_y, test_x, test_y, tuple(str(d) for d in digits))


def pixel_permutation(num_pixels: int, seed: int = 0) -> torch.Tensor:
    """A fixed random permutation of ``num_pixels`` positions (seeded)."""
    return torch.randperm(num_pixels, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- models


def strategy_plan(strategy: str, num_stages: int, head_stages: int = 1) -> tuple[int, int]:
    """``(kept, frozen)`` stages of a strategy for a network of ``num_stages`` stages.

    The top ``head_stages`` stages are the classifier, always new; the ones below are the backbone,
    ``B = num_stages - head_stages`` stages. ``kept``: how many stages are copied from the source;
    ``frozen``: how many of them stay fixed. feature extraction: (B, B); fine-tune the top:
    (B, ceil(B / 2)); fine-tune everything: (B, 0); from scratch: (0, 0).
    """
    backbone = num_stages - head_stages
    if backbone < 1:
        raise ValueError(f"a network of {num_stages} stages has no backbone below {head_stages} head stage(s)")
    table = {
        "feature_extraction": (backbone, backbone),
        "fine_tune_top": (backbone, (backbone + 1) // 2),
        "fine_tune_all": (backbone, 0),
        "scratch": (0, 0),
    }
    return lookup(table, strategy, "strategy")


def _reset_stages(model: nn.Module, first: int) -> None:
    """Re-initialise (``reset_parameters``) every module owning parameters in stages ``first`` and above."""
    names = {n for s in stages(model)[first:] for n in s.parameter_names}
    for prefix, module in model.named_modules():
        own = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
        if own and any(n in names for n in own) and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def transferred_model(
    source: nn.Module | None,
    num_classes: int,
    frozen: int,
    *,
    kept: int | None = None,
    factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``source`` with a new ``num_classes`` head and its first ``frozen`` stages frozen.

    ``kept`` (default: all): only the first ``kept`` stages keep the source's weights, the stages above
    are randomly re-initialised (Yosinski et al. 2014 transfer the first ``n`` layers this way).
    ``source=None`` builds a fresh network with ``factory`` (training from scratch). ``seed`` seeds
    every new weight, so two calls with the same arguments give the same network (the caller's
    random generators are left as they were).
    """
    if source is None and factory is None:
        raise ValueError("training from scratch needs a factory")
    if source is None:
        kept = 0
    if kept is not None and frozen > kept:
        raise ValueError(f"cannot freeze {frozen} stages when only {kept} come from the source")
    with seeded(seed):
        if source is None:
            model = factory()
        else:
            model = copy.deepcopy(source)
        replace_head(model, num_classes)
        if kept is not None:
            _reset_stages(model, kept)
    return freeze_to(model, frozen)


@dataclass
class StrategyResult:
    """One trained cell: test ``accuracy``, training seconds, trainable parameters and the epochs it ran."""

    strategy: str
    task: str
    accuracy: float
    seconds: float
    trainable: int
    epochs: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def train_model(
    model: nn.Module,
    task: Task,
    *,
    epochs: int,
    min_steps: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> tuple[float, float, int]:
    """Train ``model``'s trainable parameters on ``task`` (AdamW, cosine schedule over the steps); return
    ``(test accuracy, seconds, epochs)``. ``min_steps`` lengthens tiny training sets to that many updates.
    Training runs under :func:`~tlcourse.core.device.seeded` (``seed``): the caller's generators are untouched."""
    loader = task.train_loader(batch_size, seed)
    epochs = max(epochs, math.ceil(min_steps / len(loader)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    start = time.perf_counter()
    with seeded(seed):
        fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=schedule, scheduler_interval="batch",
            device=device, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    return evaluate(model, task.test_loader(), device=device).accuracy, seconds, epochs


def run_strategy(
    strategy: str,
    source: nn.Module | None,
    task: Task,
    *,
    factory: Callable[[], nn.Module],
    epochs: int,
    head_stages: int = 1,
    min_steps: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> StrategyResult:
    """Train one strategy of :data:`STRATEGIES` (see :func:`strategy_plan`) on ``task`` from ``source``."""
    with seeded(seed):  # a throw-away network, only to count its stages
        num_stages = len(stages(factory()))
    kept, frozen = strategy_plan(strategy, num_stages, head_stages)
    model = transferred_model(source if kept else None, task.num_classes, frozen, kept=kept, factory=factory,
                              seed=seed)  # fmt: skip
    trainable = trainable_report(model).trainable
    accuracy, seconds, ran = train_model(model, task, epochs=epochs, min_steps=min_steps, lr=lr,
                                         batch_size=batch_size, seed=seed, device=device)  # fmt: skip
    return StrategyResult(strategy, task.name, accuracy, seconds, trainable, ran, seed)
